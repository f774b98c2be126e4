// The GEMM of dense.cpp (shaders/gemm.comp), for other op kernels:
// C[M, N] = A[M, K] @ B[K, N] (+ bias[N]), all row-major f32 tensors laid
// out densely from the start of their views.
#pragma once

#include <cstdint>

#include "kernel.hpp"

namespace flaxdrm::rt {

// A GEMM shader's tile: a workgroup of wg_x * wg_y threads, each a tm x tn
// block, computes a bm() x bn() tile of C, stepping K by bk. Shared with
// the f16 GEMM (dense_f16.cpp), whose shaders follow the same scheme.
struct GemmConfig {
	uint32_t wg_x, wg_y, tm, tn, bk;
	uint32_t bm() const { return wg_y * tm; }
	uint32_t bn() const { return wg_x * tn; }
};

// Fewer rows than cfg's tile: one row of threads, TM rounded up to a power
// of two (at most cfg's), so that M = 1 (inference) computes no dead rows.
inline GemmConfig gemm_config_for_rows(GemmConfig cfg, uint64_t M)
{
	if (M < cfg.bm()) {
		const uint32_t tm = cfg.tm;
		cfg.wg_y = 1;
		cfg.tm = 1;
		while (cfg.tm < M && cfg.tm < tm)
			cfg.tm *= 2;
	}
	return cfg;
}

constexpr uint32_t kGemmFlagBias = 1;

// Push constants of gemm.comp, gemm_sg.comp and gemm_f16.comp.
struct GemmPush {
	uint32_t M, N, K, flags;
	uint32_t a_off, b_off, bias_off, c_off;
};

// Refuses shapes the GEMM cannot bind or dispatch (messages name ctx's op).
void check_gemm(const OpContext& ctx, const TensorView& a, const TensorView& b, uint64_t M, uint64_t N,
		uint64_t K);
void record_gemm(OpContext& ctx, const TensorView& a, const TensorView& b, const TensorView* bias,
		 const TensorView& c, uint64_t M, uint64_t N, uint64_t K);

} // namespace flaxdrm::rt
