// flaxdrm profile: the per-op table and the Chrome/Perfetto trace.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "flaxdrm/device.hpp"
#include "flaxdrm/lowering.hpp"
#include "flaxdrm/op_costs.hpp"

namespace flaxdrm::profile {

struct OpInfo {
	uint32_t index = 0;
	uint32_t opcode = 0;
	std::string name;   // "dense", "relu", ...
	std::string module; // module path ("/Dense_0", "/layers_1 (relu)")
	OpCost cost;
};

// One entry per op of the program, in program order.
std::vector<OpInfo> describe(const Program& program);

// One measured call.
struct Run {
	uint64_t start_ns = 0;  // submit time, relative to the first run's
	uint64_t wall_ns = 0;   // submit to completion, as the client sees it
	bool have_job_times = false; // queue_ns/exec_ns valid (drm JOB_QUERY, local: exec only)
	bool have_queue = false; // queue_ns valid (drm)
	uint64_t queue_ns = 0;  // submit to handed to the engine (drm)
	uint64_t exec_ns = 0;   // execution (engine or in-process run)
	uint64_t job_id = 0;    // drm
	uint64_t shader_invocations = 0;
	std::vector<CallProfile::Op> ops; // per-op device times, empty when unavailable
};

// Per-op rows: op, module, calls, total and mean time, share %, GFLOP/s,
// GB/s. Runs without per-op times are left out of the op rows; with none,
// the table says so and shows the job-level times only.
std::string format_table(const std::vector<OpInfo>& ops, const std::vector<Run>& runs);

// Chrome trace-event JSON (Perfetto, chrome://tracing): one process (pid 1,
// named after `title`), thread 1 "jobs" with one complete event ("X",
// cat "job") per run, thread 2 "ops" with one per op per run (cat "op";
// ops of a run that overlap are clipped to start where the previous one
// ended, as a track must nest), counter events ("C") "throughput" with
// GFLOP/s and GB/s per op, and metadata events ("M") naming the tracks.
// Times in microseconds.
std::string make_trace(const std::vector<OpInfo>& ops, const std::vector<Run>& runs, const std::string& title);

} // namespace flaxdrm::profile
