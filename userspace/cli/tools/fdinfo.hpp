// flaxdrm top: DRM usage stats from /proc/<pid>/fdinfo/<fd>
// (Documentation/gpu/drm-usage-stats.rst).
//
// flaxdrm.ko prints, per open file: drm-driver, drm-client-id,
// drm-engine-compute (ns of engine time; the one engine is the compute engine) and the
// memory: drm-memory-system (KiB, kernels without drm_show_fdinfo) or the DRM
// core's drm-total-/drm-shared-/drm-resident-... keys (6.5+), and
// flaxdrm-jobs-completed / flaxdrm-jobs-failed: jobs/s comes from
// flaxdrm-jobs-completed (any flaxdrm-jobs* key on other kernels) and is "-"
// without one.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace flaxdrm::top {

// key -> value (text after the colon, whitespace-trimmed).
std::map<std::string, std::string> parse_fdinfo(const std::string& text);

// One DRM client (drm-client-id) of the driver, over all fds that show it.
struct Client {
	uint64_t client_id = 0;
	int pid = 0;               // lowest pid holding it
	std::string comm;          // /proc/<pid>/comm
	int fds = 0;               // fds showing this client
	uint64_t engine_ns = 0;    // sum of drm-engine-* (ns)
	std::map<std::string, uint64_t> memory_bytes; // "system", "total-system", "resident-system", ...
	std::optional<uint64_t> jobs; // flaxdrm-jobs* when the kernel prints one
};

// Every client of `driver` under proc_root ("/proc", or a fake tree in tests:
// <root>/<pid>/comm and <root>/<pid>/fdinfo/<fd>). Unreadable entries (other
// users' processes without privilege) are skipped. Sorted by client id.
std::vector<Client> scan(const std::string& proc_root = "/proc", const std::string& driver = "flaxdrm");

struct Row {
	Client client;
	double busy_pct = 0;                 // delta engine ns / delta wall ns
	std::optional<double> jobs_per_s;    // when both samples have jobs
};

// Rows for the clients of `after`, against `before` taken wall_ns earlier
// (a client new in `after` counts from zero).
std::vector<Row> compare(const std::vector<Client>& before, const std::vector<Client>& after, uint64_t wall_ns);

// One line per client, key=value separated by spaces:
//   client_id=5 pid=123 comm=flaxdrm fds=1 engine_ns=1234 busy_pct=12.50 jobs_per_s=- mem_system_bytes=4096
// comm has spaces and '=' replaced by '_'.
std::string format_plain(const std::vector<Row>& rows);
// A table for people.
std::string format_table(const std::vector<Row>& rows, uint64_t wall_ns);

} // namespace flaxdrm::top
