// The execution runtime: runs programs in the UAPI program format on a
// Vulkan device. Used in-process by the `local` device and by
// flaxdrm-engine for the `drm` device, so both give identical results.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

extern "C" {
#include "flaxdrm_drm.h"
}

namespace flaxdrm::rt {

// Thrown for anything the runtime refuses or fails to do. `status` is the
// negative errno the engine reports to the kernel (-EINVAL for a program it
// cannot run, -ENOMEM for allocation failures, -EIO for device errors).
class Error : public std::runtime_error {
public:
	Error(int status, const std::string& what) : std::runtime_error(what), status_(status) {}
	int status() const noexcept { return status_; }

private:
	int status_;
};

struct DeviceOptions {
	// Substring of the Vulkan device name to prefer; empty picks the first
	// discrete/integrated GPU, else the first device (lavapipe on a CPU host).
	std::string preferred_name;
	bool enable_validation = false;
	// Testing knobs that force the fallback paths on any device.
	bool disable_push_descriptors = false; // pooled descriptor sets
	bool force_staging = false;            // device buffers unmapped, staging copies
	bool disable_cpu_kernels = false;      // GPU-style kernels even on a CPU device
	// Behave as a device without f16 (f16 programs are then refused); the
	// environment variable FLAXDRM_DISABLE_F16=1 does the same.
	bool disable_f16 = false;
};

struct DeviceInfo {
	std::string name;           // VkPhysicalDeviceProperties::deviceName
	std::string driver;         // driverName/driverInfo
	uint32_t api_version = 0;
	uint32_t vendor_id = 0;
	uint32_t subgroup_size = 0;
	bool timestamps = false;    // timestamp queries usable on the compute queue
	bool pipeline_statistics = false; // compute shader invocations are counted
	// f16 tensors can be computed on: shaderFloat16 and 16-bit storage
	// buffer access are present and enabled.
	bool f16 = false;
};

// Memory the caller provides for one tensor. For INPUT/OUTPUT tensors
// `host` points at size bytes; for VARIABLE tensors `host` may be null when
// the variable is resident (see Executor::load_variable).
struct TensorMemory {
	void* host = nullptr;
	std::size_t size = 0;
	uint64_t var_key = 0;        // VARIABLE: cache key (engine: context ^ var_id)
	uint64_t var_generation = 0; // VARIABLE: changes when rebound
	bool writable = false;       // VARIABLE written by the program: copy back
};

struct OpTiming {
	uint32_t op_index = 0;
	uint32_t opcode = 0;
	uint64_t start_ns = 0;  // device timestamps relative to the run start
	uint64_t end_ns = 0;
};

struct RunStats {
	uint64_t total_ns = 0;           // host wall time of run()
	std::vector<OpTiming> ops;        // empty when the device has no timestamps
	// Compute shader invocations of the run's ops (a pipeline statistics
	// query); 0 when the device has no pipelineStatisticsQuery.
	uint64_t shader_invocations = 0;
	// The run submitted the command buffer recorded by an earlier run of
	// the same program whose memory was laid out the same, instead of
	// recording one.
	bool replayed = false;
	// Device memory the program's TEMP tensors occupy; temporaries whose
	// lifetimes do not overlap share it.
	uint64_t temp_bytes = 0;
	// Ops that wait for the ops before them to finish (a pipeline barrier
	// before the op): those that read what an op since the last barrier
	// wrote, or overwrite memory an op since then read or wrote.
	uint32_t op_barriers = 0;
};

// Command buffers an executor recorded and replayed since its creation,
// and how many programs' recordings it keeps.
struct RecordingStats {
	uint64_t recordings = 0;
	uint64_t replays = 0;
	std::size_t kept = 0;
};

class Device {
public:
	static std::unique_ptr<Device> create(const DeviceOptions& options = {});
	virtual ~Device() = default;
	virtual const DeviceInfo& info() const = 0;
};

struct ExecutorOptions {
	// Bound on waiting for the device in run() and load_variable(); a run
	// that takes longer fails with Error(-ETIMEDOUT).
	uint32_t timeout_ms = 30000;
};

// Runs programs; holds resident variables and cached pipelines. Not
// thread-safe: one executor per thread of work.
class Executor {
public:
	static std::unique_ptr<Executor> create(Device& device);
	static std::unique_ptr<Executor> create(Device& device, const ExecutorOptions& options);
	virtual ~Executor() = default;

	// Makes a variable resident on the device (the `setup` job).
	virtual void load_variable(uint64_t key, uint64_t generation,
				   const drm_flaxdrm_tensor& desc, const void* data) = 0;
	// Drops resident variables (the `cleanup` job); unknown keys are ignored.
	virtual void drop_variable(uint64_t key) = 0;
	virtual std::size_t resident_variables() const = 0;

	// Checks the program with the shared rules (drm/flaxdrm_rules.h) and
	// runs it. memory has one entry per tensor; TEMP entries are ignored.
	// A VARIABLE whose key/generation is resident uses the device copy,
	// otherwise it is uploaded from host (and made resident).
	// Writable VARIABLEs are copied back to host after the run.
	// A VARIABLE with var_key 0 is never cached: it is uploaded from host
	// for this run only.
	// A run records its commands once; later runs of the same program
	// (equal byte for byte) with the same memory layout replay them.
	// Changed shapes or attributes (a new dropout seed), a variable that
	// became resident or was reloaded, and grown memory mean a new
	// recording; the results are the same either way.
	virtual RunStats run(std::span<const drm_flaxdrm_tensor> tensors,
			     std::span<const drm_flaxdrm_op> ops,
			     std::span<TensorMemory> memory) = 0;
	virtual RecordingStats recording_stats() const = 0;
};

} // namespace flaxdrm::rt
