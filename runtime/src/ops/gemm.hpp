// The GEMM of dense.cpp (shaders/gemm.comp), for other op kernels:
// C[M, N] = A[M, K] @ B[K, N] (+ bias[N]), all row-major f32 tensors laid
// out densely from the start of their views.
#pragma once

#include <cstdint>

#include "kernel.hpp"

namespace flaxdrm::rt {

// Refuses shapes the GEMM cannot bind or dispatch (messages name ctx's op).
void check_gemm(const OpContext& ctx, const TensorView& a, const TensorView& b, uint64_t M, uint64_t N,
		uint64_t K);
void record_gemm(OpContext& ctx, const TensorView& a, const TensorView& b, const TensorView* bias,
		 const TensorView& c, uint64_t M, uint64_t N, uint64_t K);

} // namespace flaxdrm::rt
