// flaxdrm-engine: fetches jobs from flaxdrm.ko and runs them on Vulkan.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "flaxdrm/runtime.hpp"

namespace flaxdrm::engine {

// stderr logging, enabled by -v.
extern bool verbose;
void log(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// The executor's cache key of a variable binding: a mix of the client's
// context and the kernel's var_id, never 0 (0 means "do not cache").
uint64_t variable_key(uint64_t context, uint64_t var_id);

struct JobResult {
	int status = 0;        // 0 or a negative errno for the client
	uint64_t exec_ns = 0;  // time spent running the job
	std::string message;   // why it failed
	// CALL profile for ENGINE_COMPLETE: one timing per op in program order
	// (empty when the device has no timestamps), and compute shader
	// invocations (0: the runtime does not count them).
	std::vector<drm_flaxdrm_op_timing> op_timings;
	uint64_t shader_invocations = 0;
};

// ENGINE_COMPLETE with the job's profile. A kernel that refuses profile
// fields (EINVAL) gets the plain COMPLETE instead, and *kernel_takes_profile
// is cleared so later jobs skip the first attempt. Returns 0 or -errno.
int complete_job(int fd, uint64_t job_id, const JobResult& result, bool* kernel_takes_profile);

// Runs one fetched job (the ENGINE_FETCH buffer, `size` bytes written):
// maps its BOs through `fd`, runs it, unmaps. Never throws.
JobResult run_job(int fd, rt::Executor& executor, std::span<const uint8_t> buffer);

// Compiles the common pipelines by running tiny programs (before attaching).
void warm_up(rt::Executor& executor);

// The fetch/run/complete loop until `stop` is set. Returns the exit code.
int serve(int fd, rt::Executor& executor, const std::atomic<bool>& stop);

} // namespace flaxdrm::engine
