// flaxdrm profile: the per-op table and the trace (see profile_report.hpp).
#include "profile_report.hpp"

#include <algorithm>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "flaxdrm_rules.h"

namespace flaxdrm::profile {

std::vector<OpInfo> describe(const Program& p)
{
	std::vector<OpInfo> out;
	for (uint32_t i = 0; i < p.ops.size(); i++) {
		OpInfo o;
		o.index = i;
		o.opcode = p.ops[i].opcode;
		o.name = flaxdrm_op_name(o.opcode);
		const Module* m = i < p.op_modules.size() ? p.op_modules[i] : nullptr;
		o.module = m ? m->display_path() : "-";
		o.cost = op_cost(p.ops[i], p.tensors);
		out.push_back(std::move(o));
	}
	return out;
}

namespace {

bool has_ops(const Run& r, std::size_t num_ops)
{
	return num_ops && r.ops.size() == num_ops;
}

std::string fmt(const char* f, double v)
{
	char buf[64];
	std::snprintf(buf, sizeof(buf), f, v);
	return buf;
}

} // namespace

std::string format_table(const std::vector<OpInfo>& ops, const std::vector<Run>& runs)
{
	std::string out;
	char buf[512];
	// job level
	uint64_t wall = 0, wall_min = UINT64_MAX, exec = 0, queue = 0;
	int timed = 0, queued = 0;
	for (const Run& r : runs) {
		wall += r.wall_ns;
		wall_min = std::min(wall_min, r.wall_ns);
		if (r.have_job_times) {
			exec += r.exec_ns;
			timed++;
		}
		if (r.have_queue) {
			queue += r.queue_ns;
			queued++;
		}
	}
	if (runs.empty())
		return "no runs\n";
	std::snprintf(buf, sizeof(buf), "jobs: %zu call(s), wall mean %.3f ms, min %.3f ms", runs.size(),
		      wall / 1e6 / runs.size(), wall_min / 1e6);
	out += buf;
	if (timed) {
		std::snprintf(buf, sizeof(buf), ", exec mean %.3f ms", exec / 1e6 / timed);
		out += buf;
	}
	if (queued) {
		std::snprintf(buf, sizeof(buf), ", queue mean %.3f ms", queue / 1e6 / queued);
		out += buf;
	}
	out += "\n";

	std::vector<uint64_t> total(ops.size(), 0);
	uint64_t calls = 0, all = 0;
	for (const Run& r : runs) {
		if (!has_ops(r, ops.size()))
			continue;
		calls++;
		for (std::size_t i = 0; i < ops.size(); i++) {
			uint64_t d = r.ops[i].end_ns > r.ops[i].start_ns ? r.ops[i].end_ns - r.ops[i].start_ns : 0;
			total[i] += d;
			all += d;
		}
	}
	if (!calls) {
		out += "per-op timings: none (job-level times only)\n";
		return out;
	}
	std::snprintf(buf, sizeof(buf), "%3s  %-12s %-28s %5s %11s %10s %6s %9s %9s\n", "#", "op", "module", "calls",
		      "total ms", "mean us", "share", "GFLOP/s", "GB/s");
	out += buf;
	for (std::size_t i = 0; i < ops.size(); i++) {
		const OpInfo& o = ops[i];
		double secs = total[i] / 1e9;
		double flops = double(o.cost.flops) * calls;
		double bytes = double(o.cost.bytes_read + o.cost.bytes_written) * calls;
		std::string gflops = secs > 0 ? fmt("%9.3g", flops / secs / 1e9) : "        -";
		std::string gbs = secs > 0 ? fmt("%9.3g", bytes / secs / 1e9) : "        -";
		std::snprintf(buf, sizeof(buf), "%3zu  %-12.12s %-28.28s %5llu %11.3f %10.1f %5.1f%% %s %s\n", i,
			      o.name.c_str(), o.module.c_str(), (unsigned long long)calls, total[i] / 1e6,
			      total[i] / 1e3 / calls, all ? 100.0 * total[i] / all : 0.0, gflops.c_str(), gbs.c_str());
		out += buf;
	}
	uint64_t flops_all = 0, bytes_all = 0;
	for (const OpInfo& o : ops) {
		flops_all += o.cost.flops;
		bytes_all += o.cost.bytes_read + o.cost.bytes_written;
	}
	std::snprintf(buf, sizeof(buf), "%3s  %-12s %-28s %5llu %11.3f %10.1f %5.1f%% %9.3g %9.3g\n", "", "all ops",
		      "", (unsigned long long)calls, all / 1e6, all / 1e3 / calls, 100.0,
		      all ? double(flops_all) * calls / all : 0.0, all ? double(bytes_all) * calls / all : 0.0);
	out += buf;
	return out;
}

std::string make_trace(const std::vector<OpInfo>& ops, const std::vector<Run>& runs, const std::string& title)
{
	using nlohmann::json;
	constexpr int kPid = 1, kJobs = 1, kOps = 2;
	json events = json::array();
	events.push_back({{"ph", "M"}, {"pid", kPid}, {"tid", 0}, {"name", "process_name"},
			  {"args", {{"name", title}}}});
	events.push_back({{"ph", "M"}, {"pid", kPid}, {"tid", kJobs}, {"name", "thread_name"},
			  {"args", {{"name", "jobs"}}}});
	events.push_back({{"ph", "M"}, {"pid", kPid}, {"tid", kOps}, {"name", "thread_name"},
			  {"args", {{"name", "ops"}}}});
	events.push_back({{"ph", "M"}, {"pid", kPid}, {"tid", kJobs}, {"name", "thread_sort_index"},
			  {"args", {{"sort_index", 1}}}});
	events.push_back({{"ph", "M"}, {"pid", kPid}, {"tid", kOps}, {"name", "thread_sort_index"},
			  {"args", {{"sort_index", 2}}}});
	auto us = [](uint64_t ns) { return double(ns) / 1e3; };
	for (std::size_t n = 0; n < runs.size(); n++) {
		const Run& r = runs[n];
		json args = {{"run", n}, {"wall_ns", r.wall_ns}};
		if (r.job_id)
			args["job_id"] = r.job_id;
		if (r.have_queue)
			args["queue_ns"] = r.queue_ns;
		if (r.have_job_times)
			args["exec_ns"] = r.exec_ns;
		if (r.shader_invocations)
			args["shader_invocations"] = r.shader_invocations;
		events.push_back({{"ph", "X"}, {"pid", kPid}, {"tid", kJobs}, {"cat", "job"}, {"name", "call"},
				  {"ts", us(r.start_ns)}, {"dur", us(r.wall_ns)}, {"args", args}});
		if (!has_ops(r, ops.size()))
			continue;
		// ops start when the engine got the job (drm) or at the run's start
		const uint64_t base = r.start_ns + (r.have_queue ? r.queue_ns : 0);
		uint64_t prev_end = 0;
		for (std::size_t i = 0; i < ops.size(); i++) {
			const OpInfo& o = ops[i];
			uint64_t s = std::max(r.ops[i].start_ns, prev_end);
			uint64_t e = std::max(r.ops[i].end_ns, s);
			prev_end = e;
			double secs = double(r.ops[i].end_ns > r.ops[i].start_ns ? r.ops[i].end_ns - r.ops[i].start_ns : 0) /
				      1e9;
			double gflops = secs > 0 ? double(o.cost.flops) / secs / 1e9 : 0.0;
			double gbs = secs > 0 ? double(o.cost.bytes_read + o.cost.bytes_written) / secs / 1e9 : 0.0;
			events.push_back({{"ph", "X"}, {"pid", kPid}, {"tid", kOps}, {"cat", "op"}, {"name", o.name},
					  {"ts", us(base + s)}, {"dur", us(e - s)},
					  {"args",
					   {{"run", n},
					    {"op_index", o.index},
					    {"module", o.module},
					    {"flops", o.cost.flops},
					    {"bytes_read", o.cost.bytes_read},
					    {"bytes_written", o.cost.bytes_written}}}});
			events.push_back({{"ph", "C"}, {"pid", kPid}, {"name", "throughput"}, {"ts", us(base + s)},
					  {"args", {{"GFLOP/s", gflops}, {"GB/s", gbs}}}});
		}
		events.push_back({{"ph", "C"}, {"pid", kPid}, {"name", "throughput"}, {"ts", us(base + prev_end)},
				  {"args", {{"GFLOP/s", 0.0}, {"GB/s", 0.0}}}});
	}
	json trace = {{"traceEvents", events}, {"displayTimeUnit", "ns"}};
	return trace.dump(1) + "\n";
}

} // namespace flaxdrm::profile
