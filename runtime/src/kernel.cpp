#include "kernel.hpp"

#include <algorithm>

#include "device.hpp"
#include "flaxdrm_rules.h"
#include "vk_util.hpp"

namespace flaxdrm::rt {

uint64_t TensorView::elements() const
{
	uint64_t n = 1;
	for (uint32_t i = 0; i < desc->rank; i++)
		n *= desc->dims[i];
	return n;
}

BufferRange TensorView::range(uint64_t begin, uint64_t end, uint32_t elem_size, uint32_t* elem_offset,
			      const DeviceImpl& device) const
{
	// Good for storage and texel-buffer bindings alike.
	const uint64_t align = std::max<uint64_t>({device.limits().minStorageBufferOffsetAlignment,
						   device.limits().minTexelBufferOffsetAlignment, 16});
	const uint64_t abs_begin = offset + begin;
	const uint64_t base = abs_begin / align * align;
	*elem_offset = uint32_t((abs_begin - base) / elem_size);
	return {buffer, base, offset + end - base};
}

std::string OpContext::where() const
{
	return "op " + std::to_string(op_index) + " (" + flaxdrm_op_name(op.opcode) + ")";
}

void KernelRegistry::add(uint32_t opcode, std::unique_ptr<OpKernel> kernel)
{
	if (opcode >= kernels_.size())
		fail(-EINVAL, "opcode out of range for the kernel registry");
	kernels_[opcode] = std::move(kernel);
}

const OpKernel* KernelRegistry::find(uint32_t opcode) const
{
	return opcode < kernels_.size() ? kernels_[opcode].get() : nullptr;
}

const KernelRegistry& KernelRegistry::instance()
{
	static const KernelRegistry registry = [] {
		KernelRegistry r;
		register_all_ops(r);
		return r;
	}();
	return registry;
}

uint64_t max_binding_bytes(const DeviceImpl& device)
{
	// Also keep element indices (uint in the shaders) well inside 32 bits.
	return std::min<uint64_t>(device.limits().maxStorageBufferRange, 1ull << 31) & ~uint64_t(255);
}

} // namespace flaxdrm::rt
