// The f16 paths of Dense/DenseGeneral (dense.cpp), matmul and Embed.attend
// (matmul.cpp): those kernels hand an op whose first input is f16 here
// (the shared rules make all its tensors f16 then). f16 in and out, f32
// accumulation: shaders/gemm_f16*.comp.
#pragma once

#include "kernel.hpp"

namespace flaxdrm::rt {

// Whether the op runs on the f16 path.
bool f16_gemm_op(const OpContext& ctx);
// OpKernel::check and record for DENSE, MATMUL and ATTEND on f16.
void check_f16_gemm_op(const OpContext& ctx);
void record_f16_gemm_op(OpContext& ctx);

} // namespace flaxdrm::rt
