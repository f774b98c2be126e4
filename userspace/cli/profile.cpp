// flaxdrm profile --model M.json --params P --input X.npy [--device drm|local]
//                 [--runs N] [--warmup N] [--trace out.json]
//
// Runs the model N times (after warm-up calls that are not counted) and
// prints a per-op table (op, module, calls, total and mean time, share,
// GFLOP/s and GB/s from the program's shapes: client/op_costs.cpp). Per-op
// times come from the runtime's timestamps on `local` and from JOB_QUERY on
// `drm`; a kernel without JOB_QUERY leaves job-level times only, and says so.
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>

#include "command.hpp"
#include "flaxdrm/device.hpp"
#include "flaxdrm/error.hpp"
#include "flaxdrm/lowering.hpp"
#include "flaxdrm/model.hpp"
#include "flaxdrm/npy.hpp"
#include "flaxdrm/variables.hpp"
#include "tools/profile_report.hpp"

using namespace flaxdrm;

namespace {

struct ProfileOptions {
	std::string model, params, input, trace;
	std::string device = "drm";
	std::string node, vulkan_device;
	int64_t timeout_ms = 0;
	int runs = 10;
	int warmup = 1;
};

uint64_t now_ns()
{
	return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
					     std::chrono::steady_clock::now().time_since_epoch())
					     .count());
}

int cmd_profile(const ProfileOptions& o)
{
	Model model = read_model_json(o.model);
	Variables variables = read_variables(o.params);
	Tensor input = read_npy(o.input);
	check_variables(model, variables, input.shape, o.params);

	DeviceOptions dopts;
	dopts.node = o.node;
	dopts.timeout_ms = o.timeout_ms;
	dopts.vulkan_device = o.vulkan_device;
	dopts.profile = true;
	auto device = Device::open(o.device, dopts);
	auto bound = device->bind(model, variables, input.shape);

	// the program the device runs: same lowering, synthetic module handles
	std::vector<uint32_t> handles(model.num_modules);
	std::iota(handles.begin(), handles.end(), 1u);
	const Program program = lower(model, input.shape, handles);
	const std::vector<profile::OpInfo> ops = profile::describe(program);

	for (int i = 0; i < o.warmup; i++)
		bound->apply(input);
	std::vector<profile::Run> runs;
	uint64_t t0 = 0;
	int query_status = 1;
	for (int i = 0; i < o.runs; i++) {
		uint64_t start = now_ns();
		if (i == 0)
			t0 = start;
		bound->apply(input);
		const CallProfile& c = bound->last_call();
		profile::Run r;
		r.start_ns = start - t0;
		r.wall_ns = c.wall_ns;
		r.job_id = c.job_id;
		r.shader_invocations = c.shader_invocations;
		if (device->kind() == "local") {
			r.have_job_times = true;
			r.exec_ns = c.exec_ns;
		} else if (c.query_status == 0) {
			r.have_job_times = r.have_queue = true;
			r.queue_ns = c.queue_ns;
			r.exec_ns = c.exec_ns;
		}
		query_status = c.query_status;
		r.ops = c.ops;
		runs.push_back(std::move(r));
	}
	bound->close();

	std::printf("device: %s\nmodel: %s, input %s, %zu ops, %d run(s) after %d warm-up\n",
		    device->description().c_str(), o.model.c_str(), shape_str(input.shape).c_str(), ops.size(),
		    o.runs, o.warmup);
	bool have_ops = !runs.empty() && runs.back().ops.size() == ops.size() && !ops.empty();
	if (!have_ops) {
		if (device->kind() == "drm" && query_status != 0)
			std::printf("per-op timings: unavailable from this kernel (JOB_QUERY: %s); job-level times only\n",
				    errno_string(query_status).c_str());
		else
			std::printf("per-op timings: unavailable (the %s reported none: no device timestamps); "
				    "job-level times only\n",
				    device->kind() == "drm" ? "engine" : "runtime");
	}
	if (!runs.empty() && runs.back().shader_invocations)
		std::printf("shader invocations per call: %llu\n",
			    static_cast<unsigned long long>(runs.back().shader_invocations));
	std::fputs(profile::format_table(ops, runs).c_str(), stdout);

	if (!o.trace.empty()) {
		std::string title = "flaxdrm profile " + o.model + " (" + device->description() + ")";
		std::string text = profile::make_trace(ops, runs, title);
		std::ofstream f(o.trace, std::ios::binary);
		f << text;
		f.close();
		if (!f)
			throw Error(o.trace + ": cannot write the trace");
		std::printf("trace: %s (open in https://ui.perfetto.dev or chrome://tracing)\n", o.trace.c_str());
	}
	return 0;
}

cli::Registrar reg{
	"profile", "run a model N times and print per-op times, GFLOP/s and GB/s; write a Perfetto trace", 30,
	[](CLI::App& sub) -> cli::Action {
		auto o = std::make_shared<ProfileOptions>();
		sub.add_option("--model", o->model, "model JSON")->required();
		sub.add_option("--params", o->params, "Flax variables (msgpack or .safetensors)")->required();
		sub.add_option("--input", o->input, "input .npy")->required();
		sub.add_option("--device", o->device, "drm (default) or local")->check(CLI::IsMember({"drm", "local"}));
		sub.add_option("--runs", o->runs, "measured calls (default 10)")->check(CLI::PositiveNumber);
		sub.add_option("--warmup", o->warmup, "calls before measuring, not counted (default 1)")
			->check(CLI::NonNegativeNumber);
		sub.add_option("--trace", o->trace, "write a Chrome/Perfetto trace JSON here");
		sub.add_option("--node", o->node, "drm: render node (default: found by driver name)");
		sub.add_option("--timeout-ms", o->timeout_ms, "drm: wait per job");
		sub.add_option("--vulkan-device", o->vulkan_device, "local: prefer this Vulkan device");
		return [o] { return cmd_profile(*o); };
	}};

} // namespace
