// Op kernels: one per opcode, each in its own file under ops/. A kernel
// records the dispatches of one op of a program into the program's command
// buffer; the executor does everything else (checking the program,
// memory, uploads, barriers between ops, timestamps, read-back).
// The executor submits that command buffer again for later runs of the
// same program with the same memory, so what a kernel records must follow
// from the op, the tensors' descriptions and views, and the device alone:
// no per-run state (counters, clocks, host data) in push constants.
//
// Adding an op: write ops/<name>.cpp defining
//   void flaxdrm_register_ops_<name>(KernelRegistry& registry)
// in namespace flaxdrm::rt, which calls registry.add(opcode, kernel).
// runtime/CMakeLists.txt generates the call list from the files present.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include <vulkan/vulkan.h>

#include "flaxdrm/runtime.hpp"
#include "recorder.hpp"

namespace flaxdrm::rt {

class DeviceImpl;
class PipelineCache;

// Where a tensor of the program lives for this run.
struct TensorView {
	uint32_t index = 0;                      // in the program's tensor table
	const drm_flaxdrm_tensor* desc = nullptr;
	VkBuffer buffer = VK_NULL_HANDLE;
	VkDeviceSize offset = 0;                 // aligned to minStorageBufferOffsetAlignment
	VkDeviceSize size = 0;                   // bytes

	uint64_t elements() const;
	// Binding for bytes [begin, end) of the tensor: the binding starts at
	// an aligned offset at or before `begin`, and *elem_offset receives
	// the distance to `begin` in elements of elem_size bytes.
	BufferRange range(uint64_t begin, uint64_t end, uint32_t elem_size, uint32_t* elem_offset,
			  const DeviceImpl& device) const;
	// The whole tensor.
	BufferRange whole() const { return {buffer, offset, size}; }
};

struct OpContext {
	DeviceImpl& device;
	PipelineCache& pipelines;
	Recorder& recorder;
	uint32_t op_index;
	const drm_flaxdrm_op& op;
	std::span<const TensorView> inputs;
	std::span<const TensorView> outputs;

	// "op 3 (Dense)", for messages.
	std::string where() const;
};

class OpKernel {
public:
	virtual ~OpKernel() = default;
	// Refuses (Error(-EINVAL) naming the op and tensor) what the shared
	// rules accept but this kernel or device cannot run. Called for every
	// op before anything is recorded.
	virtual void check(const OpContext& ctx) const { (void)ctx; }
	virtual void record(OpContext& ctx) const = 0;
};

class KernelRegistry {
public:
	void add(uint32_t opcode, std::unique_ptr<OpKernel> kernel);
	const OpKernel* find(uint32_t opcode) const;

	// The registry with every kernel in ops/.
	static const KernelRegistry& instance();

private:
	std::array<std::unique_ptr<OpKernel>, 256> kernels_{};
};

void register_all_ops(KernelRegistry& registry); // generated

// Device limits helpers for kernels that split work into several dispatches.
uint64_t max_binding_bytes(const DeviceImpl& device);

} // namespace flaxdrm::rt
