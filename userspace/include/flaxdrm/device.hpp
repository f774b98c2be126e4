// Devices: one API over the kernel path (`drm`, through libflaxdrm and the
// flaxdrm render node) and the in-process runtime (`local`).
//
//   auto dev = flaxdrm::Device::open("drm");
//   auto bound = dev->bind(model, variables, input.shape);  // setup job
//   flaxdrm::Tensor y = bound->apply(input);                 // call job
//   bound->close();                                          // cleanup job
//   for (auto& t : bound->timings()) ...
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "flaxdrm/model.hpp"
#include "flaxdrm/tensor.hpp"
#include "flaxdrm/variables.hpp"

namespace flaxdrm {

struct DeviceOptions {
	std::string node;          // drm: device node; empty finds the render node by driver name
	int64_t timeout_ms = 0;    // drm: wait per job; 0: the kernel's job timeout + 10 s
	std::string vulkan_device; // local: substring of the Vulkan device name to prefer
	bool profile = false;      // drm: JOB_QUERY after each call (BoundModule::last_call())
};

struct JobTiming {
	std::string job;      // "setup", "call", "cleanup"
	uint64_t wall_ns = 0; // submit to completion, as the client sees it
};

// The profile of the last `call` (flaxdrm profile).
struct CallProfile {
	uint64_t job_id = 0;  // drm: the CALL's job id; 0 on local
	uint64_t wall_ns = 0; // submit to completion, as the client sees it
	// drm with DeviceOptions::profile: JOB_QUERY's result, 0 or -errno
	// (-EINVAL/-ENOTTY: a kernel without JOB_QUERY); 1: not queried
	int query_status = 1;
	uint64_t queue_ns = 0, exec_ns = 0, shader_invocations = 0;
	struct Op {
		uint32_t op_index = 0, opcode = 0;
		uint64_t start_ns = 0, end_ns = 0; // device time relative to the run's start
	};
	std::vector<Op> ops; // one per op in program order; empty when unavailable
};

// A model with its variables made resident on a device (Flax's bind).
class BoundModule {
public:
	virtual ~BoundModule() = default;
	// Runs the model on one input (a `call` job). Inputs of any batch shape
	// whose last dim matches the bound in_features.
	virtual Tensor apply(const Tensor& input) = 0;
	// Releases the device resources (a `cleanup` job). Idempotent; the
	// destructor calls it and ignores errors.
	virtual void close() = 0;
	const std::vector<JobTiming>& timings() const { return timings_; }
	const CallProfile& last_call() const { return last_call_; }

protected:
	std::vector<JobTiming> timings_;
	CallProfile last_call_;
};

class Device {
public:
	// kind: "drm" or "local".
	static std::unique_ptr<Device> open(const std::string& kind, const DeviceOptions& options = {});
	static std::unique_ptr<Device> open_drm(const DeviceOptions& options = {});
	static std::unique_ptr<Device> open_local(const DeviceOptions& options = {});

	virtual ~Device() = default;
	virtual std::string kind() const = 0;
	// "drm /dev/dri/renderD128 (flaxdrm 1.0.0)", "local (llvmpipe ...)"
	virtual std::string description() const = 0;

	// Checks the variables against the model for inputs shaped like
	// input_shape (all mismatches in one error), then makes the module
	// tree and its variables resident (a `setup` job).
	virtual std::unique_ptr<BoundModule> bind(const Model& model, const Variables& variables,
						  const Shape& input_shape) = 0;
};

} // namespace flaxdrm
