// GEMM for CPU devices (lavapipe), row-major f32, optional bias:
//   C[M,N] = A[M,K] @ B[K,N] (+ bias[N])
//
// lavapipe runs 8 invocations as the 8 lanes of one AVX2 vector: the
// SIMD dimension is the invocation, and every texel fetch is a gather
// across the lanes. So here the 8 lanes of a subgroup are 8 neighbouring
// column groups of C (contiguous texels of a B row), and each invocation
// keeps a TM x TN register block (TM rows, TN columns: TN / 4 vec4 groups,
// or TN scalars in the SCALAR variant). A is read once per 8 lanes' worth
// of K: lane l fetches A[row][k0 + 4l .. 4l + 3] (SCALAR: A[row][k0 + l])
// and subgroupBroadcast hands each k's value to every lane, i.e. a
// broadcast instead of a gather per k and row.
//
// Spec constants: 0 = WG_X (must be 8), 1 = WG_Y (subgroups per group),
// 2 = TM, 3 = TN (floats; multiple of 4 unless SCALAR), 4 = BK (K per
// step), 5 = KCH (K per barrier, a multiple of BK; 0: no barrier).
// A workgroup covers WG_Y * TM rows and 8 * TN columns.
//
// KCH: llvmpipe runs the subgroups of a workgroup one after another, each
// to its next barrier (as coroutines). Without barriers each subgroup
// streams the whole K x 8 TN panel of B on its own; with a barrier every
// KCH rows of K the WG_Y subgroups take turns on the same KCH-row slab of
// B while it is still in L2. Rows of B that are 4 KiB apart (N = 1024)
// share L2 sets, so only ~256 such rows fit at once whatever the width:
// a panel of K = 1024 rows never stays cached, a 128-row slab does.
// Measured on lavapipe 22.3 (2 loaded cores), worker CPU per GEMM against
// KCH = 0 with WG_Y = 4: 1024^3 -10..30%, 2048^3 -15..40%.
//
// Default variant: A and B are RGBA32F texel buffers (4 consecutive floats
// per texel); needs K % 4 == 0, N % 4 == 0 and offsets % 4 == 0.
// SCALAR (-DSCALAR=1): A and B are R32F texel buffers; any M, N, K, offset.
// Subgroups of another size than 8 take the per-k path (correct anywhere).
//
// What llvmpipe 22.3 (LLVM 15) makes of the alternatives, read from the
// JIT code (perf samples, code dumped from the process):
// - texelFetch (samplerBuffer) is a call of a generated function (8
//   16-byte loads, a 4x8 transpose, a bounds mask); every vector register
//   is caller-saved, so the accumulators live on the stack. Only RGBA8
//   UNORM fetches are inlined (lp_build_sample_soa's "simple" formats).
// - imageLoad (storage texel buffer) is the same gather, inline. With
//   blocks that fit the 32 ymm registers (6 x 4, 4 x 8) it was still ~2x
//   slower per GEMM: each gather of B feeds only TM rows, and rows of B
//   4 KiB apart miss L1/L2; with 16 x 16 blocks LLVM spills chaotically.
// - subgroupBroadcast(x, constant) scans the exec mask for the first
//   active lane in an 8-iteration loop per call, in loops and at the top
//   level alike; subgroupShuffle(x, constant) becomes one vpermilps /
//   vbroadcastsd.
// - fma() is lowered to vmulps + vaddps (nir lower_ffma32).
// - A by subgroupShuffle instead (each lane fetches a different texel of
//   A once per 32 k, a constant-lane shuffle per k and row): 8x fewer A
//   fetches, yet ~30% more worker CPU per 1024^3 GEMM than every lane
//   fetching the same A texel (which stays in L1).
// - B packed into per-workgroup column panels (each group's K x 128
//   floats contiguous, simulated by indexing): the same time at 512^3,
//   1024^3 and 2048^3 (0.39x either way), so with the slab barriers B's
//   layout is not what limits this kernel; the per-fetch call and the
//   accumulator traffic are.
// - storage-buffer and shared-memory loads whose offset is not provably
//   uniform (nir_src_is_always_uniform: constants, push constants, not
//   loop counters or gl_WorkGroupID) are per-lane loops with branches;
//   UBO loads are branch-free 8-lane scalar gathers (64 KiB windows).
// variant: gemm_sg_scalar SCALAR=1
#version 450
#extension GL_EXT_control_flow_attributes : enable
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_ballot : enable

layout(local_size_x_id = 0, local_size_y_id = 1, local_size_z = 1) in;
layout(constant_id = 2) const uint TM = 4;
layout(constant_id = 3) const uint TN = 8;
layout(constant_id = 4) const uint BK = 4; // K per step (multiple of 4 unless SCALAR)
layout(constant_id = 5) const uint KCH = 0; // K per barrier (multiple of BK), 0: none

const uint WG_X = gl_WorkGroupSize.x;
const uint WG_Y = gl_WorkGroupSize.y;

#define GEMM_FLAG_BIAS 1u

layout(push_constant) uniform Params {
	uint M;
	uint N;
	uint K;
	uint flags;
	uint a_off; // elements
	uint b_off;
	uint bias_off;
	uint c_off;
} pc;

layout(set = 0, binding = 0) uniform samplerBuffer ta;
layout(set = 0, binding = 1) uniform samplerBuffer tb;

#ifdef SCALAR
#define VT float
#define W 1u
#define COMP(v, c) (v)
#else
#define VT vec4
#define W 4u
#define COMP(v, c) ((v)[c])
#endif
const uint TNV = TN / W;   // fetches of B per k
const uint KC = 8u * W;    // K per A chunk (8 lanes)
const uint KQ = BK / W;    // A fetches per row and K step
#ifdef SCALAR
const bool SG_BROADCAST = true;
#else
const bool SG_BROADCAST = false;
#endif

layout(set = 0, binding = 2, std430) readonly restrict buffer BufBias { VT bias[]; };
layout(set = 0, binding = 3, std430) writeonly restrict buffer BufC { VT c[]; };

VT fetch(samplerBuffer t, int i)
{
#ifdef SCALAR
	return texelFetch(t, i).x;
#else
	return texelFetch(t, i);
#endif
}

void main()
{
	const uint M = pc.M, N = pc.N, K = pc.K;
	const uint KV = K / W, NV = N / W; // in fetch units (W floats)
	const uint lane = gl_LocalInvocationID.x;
	const uint m0 = (gl_WorkGroupID.y * WG_Y + gl_LocalInvocationID.y) * TM;
	const uint q0 = gl_WorkGroupID.x * WG_X * TNV + lane;

	int arow[TM];
	int bcol[TNV];
	[[unroll]] for (uint i = 0; i < TM; i++)
		arow[i] = int(pc.a_off / W + min(m0 + i, M - 1) * KV);
	[[unroll]] for (uint j = 0; j < TNV; j++)
		bcol[j] = int(pc.b_off / W + min(q0 + j * WG_X, NV - 1));

	VT acc[TM][TNV];
	[[unroll]] for (uint i = 0; i < TM; i++)
		[[unroll]] for (uint j = 0; j < TNV; j++)
			acc[i][j] = VT(0.0);

	uint k0 = 0;
	if (SG_BROADCAST && gl_SubgroupSize == 8u && WG_X == 8u) {
		for (; k0 + KC <= K; k0 += KC) {
			VT av[TM];
			[[unroll]] for (uint i = 0; i < TM; i++)
				av[i] = fetch(ta, arow[i] + int(k0 / W + lane));
			[[unroll]] for (uint kk = 0; kk < KC; kk++) {
				const int brow = int((k0 + kk) * NV);
				VT bv[TNV];
				[[unroll]] for (uint j = 0; j < TNV; j++)
					bv[j] = fetch(tb, brow + bcol[j]);
				[[unroll]] for (uint i = 0; i < TM; i++) {
					const float a = subgroupBroadcast(COMP(av[i], kk % W), kk / W);
					[[unroll]] for (uint j = 0; j < TNV; j++)
						acc[i][j] = fma(VT(a), bv[j], acc[i][j]);
				}
			}
		}
	}
	// The rest of K (or all of it): every lane fetches the same A texel.
	// Each fetch is a call that clobbers every vector register, so all
	// fetches of a K step come first, then the FMAs block by block (an
	// accumulator is loaded and stored once per step of BK).
	// Slabs of KCH rows of K (all of K when KCH is 0), a barrier after
	// each: the trip counts depend on K only, so every invocation of the
	// workgroup meets the same barriers.
	while (k0 + BK <= K) {
		const uint kend = KCH == 0u ? K : min(K, k0 + KCH);
		for (; k0 + BK <= kend; k0 += BK) {
			VT av[TM][KQ];
			VT bv[BK][TNV];
			[[unroll]] for (uint i = 0; i < TM; i++)
				[[unroll]] for (uint q = 0; q < KQ; q++)
					av[i][q] = fetch(ta, arow[i] + int(k0 / W + q));
			[[unroll]] for (uint kk = 0; kk < BK; kk++)
				[[unroll]] for (uint j = 0; j < TNV; j++)
					bv[kk][j] = fetch(tb, int((k0 + kk) * NV) + bcol[j]);
			[[unroll]] for (uint i = 0; i < TM; i++)
				[[unroll]] for (uint j = 0; j < TNV; j++)
					[[unroll]] for (uint kk = 0; kk < BK; kk++)
						acc[i][j] = fma(VT(COMP(av[i][kk / W], kk % W)), bv[kk][j],
								acc[i][j]);
		}
		if (KCH != 0u)
			barrier();
	}
	for (; k0 < K; k0 += W) {
		VT av[TM];
		VT bv[W][TNV];
		[[unroll]] for (uint i = 0; i < TM; i++)
			av[i] = fetch(ta, arow[i] + int(k0 / W));
		[[unroll]] for (uint kk = 0; kk < W; kk++)
			[[unroll]] for (uint j = 0; j < TNV; j++)
				bv[kk][j] = fetch(tb, int((k0 + kk) * NV) + bcol[j]);
		[[unroll]] for (uint i = 0; i < TM; i++)
			[[unroll]] for (uint j = 0; j < TNV; j++)
				[[unroll]] for (uint kk = 0; kk < W; kk++)
					acc[i][j] = fma(VT(COMP(av[i], kk)), bv[kk][j], acc[i][j]);
	}

	const bool has_bias = (pc.flags & GEMM_FLAG_BIAS) != 0u;
	[[unroll]] for (uint j = 0; j < TNV; j++) {
		const uint q = q0 + j * WG_X;
		if (q >= NV)
			continue;
		const VT bv = has_bias ? bias[pc.bias_off / W + q] : VT(0.0);
		[[unroll]] for (uint i = 0; i < TM; i++) {
			const uint m = m0 + i;
			if (m < M)
				c[pc.c_off / W + m * NV + q] = acc[i][j] + bv;
		}
	}
}
