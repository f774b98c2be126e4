// What every kernel that runs f16 tensors shares: refusing them, with the
// op and tensor named, on a device without f16 (DeviceImpl::f16()).
#pragma once

#include <string>

#include "device.hpp"
#include "kernel.hpp"
#include "vk_util.hpp"

namespace flaxdrm::rt {

// Whether any operand of the op is f16.
inline bool op_uses_f16(const OpContext& ctx)
{
	for (const auto* views : {&ctx.inputs, &ctx.outputs})
		for (const TensorView& t : *views)
			if (t.desc->dtype == FLAXDRM_DTYPE_F16)
				return true;
	return false;
}

// Throws Error(-EINVAL) when the op has an f16 operand and the device
// cannot compute on f16.
inline void require_f16_device(const OpContext& ctx)
{
	if (ctx.device.f16())
		return;
	for (const auto* views : {&ctx.inputs, &ctx.outputs})
		for (const TensorView& t : *views)
			if (t.desc->dtype == FLAXDRM_DTYPE_F16)
				fail(-EINVAL, ctx.where() + ": tensor " + std::to_string(t.index) +
						      " is f16, which this device (" + ctx.device.info().name +
						      ") cannot run: it needs shaderFloat16 and 16-bit storage buffers"
						      " (or they were turned off by FLAXDRM_DISABLE_F16 or"
						      " DeviceOptions::disable_f16)");
}

// Throws Error(-EINVAL) when the op has an f16 operand: for kernels that
// have no f16 modules yet.
inline void refuse_f16(const OpContext& ctx)
{
	if (op_uses_f16(ctx))
		fail(-EINVAL, ctx.where() + ": f16 tensors are not implemented for this op by this runtime");
}

} // namespace flaxdrm::rt
