// flaxdrm top: DRM usage stats from fdinfo (see fdinfo.hpp).
#include "fdinfo.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <dirent.h>

namespace flaxdrm::top {
namespace {

std::string trim(const std::string& s)
{
	auto b = s.find_first_not_of(" \t\r\n");
	if (b == std::string::npos)
		return {};
	auto e = s.find_last_not_of(" \t\r\n");
	return s.substr(b, e - b + 1);
}

bool read_text(const std::string& path, std::string& out)
{
	std::ifstream f(path);
	if (!f)
		return false;
	std::ostringstream ss;
	ss << f.rdbuf();
	if (f.bad())
		return false;
	out = ss.str();
	return true;
}

std::vector<std::string> list_dir(const std::string& path)
{
	std::vector<std::string> names;
	if (DIR* d = opendir(path.c_str())) {
		while (dirent* e = readdir(d))
			if (e->d_name[0] != '.')
				names.push_back(e->d_name);
		closedir(d);
	}
	return names;
}

bool all_digits(const std::string& s)
{
	return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "123 ns", "4096 KiB", "12 MiB", "77": the number, scaled to the base unit
std::optional<uint64_t> parse_quantity(const std::string& v)
{
	std::istringstream in(v);
	uint64_t n;
	if (!(in >> n))
		return std::nullopt;
	std::string unit;
	in >> unit;
	if (unit == "KiB")
		return n << 10;
	if (unit == "MiB")
		return n << 20;
	if (unit == "GiB")
		return n << 30;
	return n;
}

std::string plain_word(std::string s)
{
	for (char& c : s)
		if (c == ' ' || c == '=' || c == '\t' || c == '\n')
			c = '_';
	return s.empty() ? "-" : s;
}

} // namespace

std::map<std::string, std::string> parse_fdinfo(const std::string& text)
{
	std::map<std::string, std::string> kv;
	std::istringstream in(text);
	std::string line;
	while (std::getline(in, line)) {
		auto colon = line.find(':');
		if (colon == std::string::npos)
			continue;
		kv[trim(line.substr(0, colon))] = trim(line.substr(colon + 1));
	}
	return kv;
}

std::vector<Client> scan(const std::string& proc_root, const std::string& driver)
{
	std::map<uint64_t, Client> clients;
	std::vector<std::string> pids = list_dir(proc_root);
	std::sort(pids.begin(), pids.end(), [](const std::string& a, const std::string& b) {
		return a.size() != b.size() ? a.size() < b.size() : a < b;
	});
	for (const std::string& pid : pids) {
		if (!all_digits(pid))
			continue;
		const std::string dir = proc_root + "/" + pid + "/fdinfo";
		std::string comm;
		bool have_comm = false;
		for (const std::string& fd : list_dir(dir)) {
			std::string text;
			if (!all_digits(fd) || !read_text(dir + "/" + fd, text))
				continue;
			auto kv = parse_fdinfo(text);
			auto drv = kv.find("drm-driver");
			auto id = kv.find("drm-client-id");
			if (drv == kv.end() || drv->second != driver || id == kv.end())
				continue;
			auto cid = parse_quantity(id->second);
			if (!cid)
				continue;
			if (!have_comm) {
				read_text(proc_root + "/" + pid + "/comm", comm);
				comm = trim(comm);
				have_comm = true;
			}
			Client& c = clients[*cid];
			c.fds++;
			if (c.fds > 1)
				continue; // the same file seen again (dup, fork, SCM_RIGHTS)
			c.client_id = *cid;
			c.pid = std::stoi(pid);
			c.comm = comm;
			for (const auto& [key, value] : kv) {
				auto q = parse_quantity(value);
				if (!q)
					continue;
				if (key.rfind("drm-engine-", 0) == 0 && key.rfind("drm-engine-capacity-", 0) != 0)
					c.engine_ns += *q;
				else if (key.rfind("drm-memory-", 0) == 0)
					c.memory_bytes[key.substr(11)] = *q;
				else if (key.rfind("drm-total-", 0) == 0 || key.rfind("drm-resident-", 0) == 0 ||
					 key.rfind("drm-shared-", 0) == 0)
					c.memory_bytes[key.substr(4)] = *q;
				else if (key == "flaxdrm-jobs-completed" ||
					 (key.rfind("flaxdrm-jobs", 0) == 0 && !kv.count("flaxdrm-jobs-completed") && !c.jobs))
					c.jobs = *q;
			}
		}
	}
	std::vector<Client> out;
	for (auto& [id, c] : clients)
		out.push_back(std::move(c));
	return out;
}

std::vector<Row> compare(const std::vector<Client>& before, const std::vector<Client>& after, uint64_t wall_ns)
{
	std::vector<Row> rows;
	for (const Client& c : after) {
		Row r;
		r.client = c;
		const Client* b = nullptr;
		for (const Client& x : before)
			if (x.client_id == c.client_id)
				b = &x;
		uint64_t e0 = b ? b->engine_ns : 0;
		uint64_t d = c.engine_ns >= e0 ? c.engine_ns - e0 : 0;
		r.busy_pct = wall_ns ? std::min(100.0, 100.0 * double(d) / double(wall_ns)) : 0.0;
		if (c.jobs && wall_ns) {
			uint64_t j0 = b && b->jobs ? *b->jobs : 0;
			r.jobs_per_s = double(*c.jobs >= j0 ? *c.jobs - j0 : 0) * 1e9 / double(wall_ns);
		}
		rows.push_back(std::move(r));
	}
	return rows;
}

std::string format_plain(const std::vector<Row>& rows)
{
	std::string out;
	char buf[64];
	for (const Row& r : rows) {
		const Client& c = r.client;
		out += "client_id=" + std::to_string(c.client_id) + " pid=" + std::to_string(c.pid) +
		       " comm=" + plain_word(c.comm) + " fds=" + std::to_string(c.fds) +
		       " engine_ns=" + std::to_string(c.engine_ns);
		std::snprintf(buf, sizeof(buf), " busy_pct=%.2f", r.busy_pct);
		out += buf;
		if (r.jobs_per_s) {
			std::snprintf(buf, sizeof(buf), " jobs_per_s=%.2f", *r.jobs_per_s);
			out += buf;
		} else {
			out += " jobs_per_s=-";
		}
		for (const auto& [region, bytes] : c.memory_bytes)
			out += " mem_" + plain_word(region) + "_bytes=" + std::to_string(bytes);
		out += "\n";
	}
	return out;
}

std::string format_table(const std::vector<Row>& rows, uint64_t wall_ns)
{
	std::string out;
	char buf[512];
	std::snprintf(buf, sizeof(buf), "flaxdrm top: %zu client(s), interval %.0f ms%s\n", rows.size(),
		      wall_ns / 1e6,
		      rows.empty() ? " (no flaxdrm clients; other users' processes need privilege)" : "");
	out += buf;
	std::snprintf(buf, sizeof(buf), "%8s %7s %-16s %7s %9s %14s %12s\n", "CLIENT", "PID", "COMMAND", "BUSY%",
		      "JOBS/S", "ENGINE", "MEMORY");
	out += buf;
	for (const Row& r : rows) {
		const Client& c = r.client;
		uint64_t mem = 0;
		// one memory figure: the total if the core prints it, else the sum
		for (const auto& [region, bytes] : c.memory_bytes)
			if (region.rfind("total-", 0) == 0 || region.find('-') == std::string::npos)
				mem += bytes;
		char jobs[32];
		if (r.jobs_per_s)
			std::snprintf(jobs, sizeof(jobs), "%.1f", *r.jobs_per_s);
		else
			std::snprintf(jobs, sizeof(jobs), "-");
		std::snprintf(buf, sizeof(buf), "%8llu %7d %-16.16s %6.1f%% %9s %11.3f ms %9.1f MiB\n",
			      (unsigned long long)c.client_id, c.pid, c.comm.c_str(), r.busy_pct, jobs,
			      c.engine_ns / 1e6, mem / 1048576.0);
		out += buf;
	}
	return out;
}

} // namespace flaxdrm::top
