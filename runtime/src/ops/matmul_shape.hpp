// The shape of a matmul or Embed.attend as the strided batched GEMM shaders
// (matmul.comp, gemm_f16_batched.comp) see it, and their tiles; shared by
// the f32 (matmul.cpp) and f16 (dense_f16.cpp) paths so both agree on
// transposes, broadcasting and when one plain GEMM suffices.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernel.hpp"

namespace flaxdrm::rt {

// Push constants of matmul.comp and gemm_f16_batched.comp.
struct MatmulPush {
	uint32_t M, N, K, z_base;
	uint32_t a_off, b_off, c_off, pad0;
	uint32_t sam, sak, sbk, sbn;
	uint32_t bd[4];
	uint32_t as[4];
	uint32_t bs[4];
};

struct MatmulShape {
	uint64_t M = 0, N = 0, K = 0, batch = 1;
	uint64_t sam = 0, sak = 0, sbk = 0, sbn = 0; // element strides of a and b
	uint64_t bd[4] = {1, 1, 1, 1}, as[4] = {0, 0, 0, 0}, bs[4] = {0, 0, 0, 0};
	bool plain_gemm = false; // no transposes, no batch in b: one GEMM over a's rows

	// The push constants without the offsets and z_base.
	MatmulPush push() const
	{
		MatmulPush pc{};
		pc.M = uint32_t(M), pc.N = uint32_t(N), pc.K = uint32_t(K);
		pc.sam = uint32_t(sam), pc.sak = uint32_t(sak), pc.sbk = uint32_t(sbk), pc.sbn = uint32_t(sbn);
		for (int i = 0; i < 4; i++)
			pc.bd[i] = uint32_t(bd[i]), pc.as[i] = uint32_t(as[i]), pc.bs[i] = uint32_t(bs[i]);
		return pc;
	}
};

// MATMUL (attrs[0]: bit 0 transposes a, bit 1 b; NumPy-broadcast batch
// dims) or ATTEND (q[..., F] @ table[N, F]^T).
inline MatmulShape describe_matmul(const OpContext& ctx)
{
	const drm_flaxdrm_tensor& a = *ctx.inputs[0].desc;
	const drm_flaxdrm_tensor& b = *ctx.inputs[1].desc;
	MatmulShape s;
	if (ctx.op.opcode == FLAXDRM_OP_ATTEND) {
		s.K = a.dims[a.rank - 1];
		s.M = ctx.inputs[0].elements() / s.K;
		s.N = b.dims[0];
		s.sam = s.K, s.sak = 1, s.sbk = 1, s.sbn = s.K;
		return s;
	}
	const bool ta = ctx.op.attrs[0] & 1, tb = ctx.op.attrs[0] & 2;
	const uint32_t ra = a.rank, rb = b.rank;
	s.M = a.dims[ra - 2 + ta];
	s.K = a.dims[ra - 1 - ta];
	s.N = b.dims[rb - 1 - tb];
	s.sam = ta ? 1 : s.K, s.sak = ta ? s.M : 1;
	s.sbk = tb ? 1 : s.N, s.sbn = tb ? s.K : 1;
	// Batch dims aligned from the right into bd[0..3] (bd[3] innermost).
	uint64_t a_stride = s.M * s.K, b_stride = s.K * s.N, b_batch = 1;
	for (uint32_t i = 0; i < 4; i++) {
		const uint32_t da = i + 2 < ra ? a.dims[ra - 3 - i] : 1;
		const uint32_t db = i + 2 < rb ? b.dims[rb - 3 - i] : 1;
		s.bd[3 - i] = std::max(da, db);
		s.as[3 - i] = da == 1 ? 0 : a_stride;
		s.bs[3 - i] = db == 1 ? 0 : b_stride;
		a_stride *= da;
		b_stride *= db;
		b_batch *= db;
		s.batch *= s.bd[3 - i];
	}
	s.plain_gemm = !ta && !tb && b_batch == 1;
	if (s.plain_gemm)
		s.M *= a_stride / (s.M * s.K), s.batch = 1;
	return s;
}

// A workgroup of wg_x * wg_y threads, each a tm x tn block of C.
struct MatmulTile {
	uint32_t wg_x, wg_y, tm, tn;
	uint32_t bm() const { return wg_y * tm; }
	uint32_t bn() const { return wg_x * tn; }
};

// Fewer rows than a tile: tm a power of two and fewer row threads, so
// that M = 1 does not compute dead rows.
inline MatmulTile matmul_tile(uint64_t M)
{
	if (M >= 64)
		return {16, 16, 4, 4};
	uint32_t tm = 1;
	while (tm < M && tm < 4)
		tm *= 2;
	return {64, uint32_t(std::max<uint64_t>(1, std::min<uint64_t>(4, (M + tm - 1) / tm))), tm, 4};
}

} // namespace flaxdrm::rt
