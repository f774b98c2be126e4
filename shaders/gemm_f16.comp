// GEMM on f16 tensors with f32 accumulation, optional bias (Flax's
// Dense(dtype=jnp.float16)): C[M,N] = f16(A[M,K] @ B[K,N] (+ bias[N])),
// A, B, bias and C row-major f16; products and sums in f32, one rounding
// to f16 at the store. Push constants as gemm.comp's; offsets in elements.
//
// Storage variant (default): portable, any M, N, K and offsets. A
// workgroup computes a BM x BN tile of C (BM = WG_Y * TM, BN = WG_X * TN)
// through K in steps of BK staged in shared memory as f32; each thread
// keeps a TM x TN block (rows ty + i * WG_Y, columns tx + j * WG_X).
//
// TEXEL variant (-DTEXEL=1, CPU devices such as lavapipe): the layout of
// gemm_sg.comp. A and B are read through RGBA16F texel buffers (4
// consecutive halfs per texel, converted to f32 by the fetch), which
// lavapipe turns into vector gathers; 8 lanes of a subgroup are 8
// neighbouring column groups of C, each invocation a TM x TN register
// block (TM rows, TN / 4 vec4 groups). Needs K % 4 == 0, N % 4 == 0 and
// offsets % 4 == 0. TEXEL + SCALAR: R16F texel buffers, any shape, with a
// subgroup broadcast of A (8 lanes share 8 consecutive k).
//
// Spec constants: 0 = WG_X (TEXEL: 8), 1 = WG_Y, 2 = TM, 3 = TN, 4 = BK.
// variant: gemm_f16_texel TEXEL=1
// variant: gemm_f16_texel_scalar TEXEL=1,SCALAR=1
#version 450
#extension GL_EXT_control_flow_attributes : enable
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#ifdef TEXEL
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_ballot : enable
#endif

layout(local_size_x_id = 0, local_size_y_id = 1, local_size_z = 1) in;
layout(constant_id = 2) const uint TM = 4;
layout(constant_id = 3) const uint TN = 4;
layout(constant_id = 4) const uint BK = 16;

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

#if defined(TEXEL)
layout(set = 0, binding = 0) uniform samplerBuffer ta;
layout(set = 0, binding = 1) uniform samplerBuffer tb;

#ifdef SCALAR
#define VT float
#define HT float16_t
#define W 1u
#define COMP(v, c) (v)
const bool SG_BROADCAST = true;
#else
#define VT vec4
#define HT f16vec4
#define W 4u
#define COMP(v, c) ((v)[c])
const bool SG_BROADCAST = false;
#endif
const uint TNV = TN / W;
const uint KC = 8u * W;
const uint KQ = BK / W;

layout(set = 0, binding = 2, std430) readonly restrict buffer BufBias { HT bias[]; };
layout(set = 0, binding = 3, std430) writeonly restrict buffer BufC { HT c[]; };

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
	const uint KV = K / W, NV = N / W;
	const uint lane = gl_LocalInvocationID.x;
	const uint m0 = (gl_WorkGroupID.y * WG_Y + gl_LocalInvocationID.y) * TM;
	const uint q0 = gl_WorkGroupID.x * WG_X * TNV + lane;

	// Clamped indices keep every fetch in range; stores are guarded.
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
	// All fetches of a K step first (each is a call that clobbers the
	// vector registers on lavapipe), then the FMAs.
	for (; k0 + BK <= K; k0 += BK) {
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
					acc[i][j] = fma(VT(COMP(av[i][kk / W], kk % W)), bv[kk][j], acc[i][j]);
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
		const VT bv = has_bias ? VT(bias[pc.bias_off / W + q]) : VT(0.0);
		[[unroll]] for (uint i = 0; i < TM; i++) {
			const uint m = m0 + i;
			if (m < M)
				c[pc.c_off / W + m * NV + q] = HT(acc[i][j] + bv);
		}
	}
}
#else // storage variant

const uint THREADS = WG_X * WG_Y;
const uint BM = WG_Y * TM;
const uint BN = WG_X * TN;

layout(set = 0, binding = 0, std430) readonly restrict buffer BufA { float16_t a[]; };
layout(set = 0, binding = 1, std430) readonly restrict buffer BufB { float16_t b[]; };
layout(set = 0, binding = 2, std430) readonly restrict buffer BufBias { float16_t bias[]; };
layout(set = 0, binding = 3, std430) writeonly restrict buffer BufC { float16_t c[]; };

shared float As[BK * BM]; // transposed: As[k * BM + m]
shared float Bs[BK * BN]; // Bs[k * BN + n]

void main()
{
	const uint tx = gl_LocalInvocationID.x;
	const uint ty = gl_LocalInvocationID.y;
	const uint lid = gl_LocalInvocationIndex;
	const uint m0 = gl_WorkGroupID.y * BM;
	const uint n0 = gl_WorkGroupID.x * BN;
	const uint M = pc.M, N = pc.N, K = pc.K;

	float acc[TM][TN];
	[[unroll]] for (uint i = 0; i < TM; i++)
		[[unroll]] for (uint j = 0; j < TN; j++)
			acc[i][j] = 0.0;

	for (uint k0 = 0; k0 < K; k0 += BK) {
		for (uint e = lid; e < BM * BK; e += THREADS) {
			const uint m = e / BK, k = e % BK;
			float v = 0.0;
			if (m0 + m < M && k0 + k < K)
				v = float(a[pc.a_off + (m0 + m) * K + k0 + k]);
			As[k * BM + m] = v;
		}
		for (uint e = lid; e < BK * BN; e += THREADS) {
			const uint k = e / BN, n = e % BN;
			float v = 0.0;
			if (k0 + k < K && n0 + n < N)
				v = float(b[pc.b_off + (k0 + k) * N + n0 + n]);
			Bs[k * BN + n] = v;
		}
		memoryBarrierShared();
		barrier();

		[[unroll]] for (uint k = 0; k < BK; k++) {
			float ar[TM], br[TN];
			[[unroll]] for (uint i = 0; i < TM; i++)
				ar[i] = As[k * BM + ty + i * WG_Y];
			[[unroll]] for (uint j = 0; j < TN; j++)
				br[j] = Bs[k * BN + tx + j * WG_X];
			[[unroll]] for (uint i = 0; i < TM; i++)
				[[unroll]] for (uint j = 0; j < TN; j++)
					acc[i][j] = fma(ar[i], br[j], acc[i][j]);
		}
		memoryBarrierShared();
		barrier();
	}

	const bool has_bias = (pc.flags & GEMM_FLAG_BIAS) != 0u;
	[[unroll]] for (uint j = 0; j < TN; j++) {
		const uint n = n0 + tx + j * WG_X;
		if (n >= N)
			continue;
		const float bv = has_bias ? float(bias[pc.bias_off + n]) : 0.0;
		[[unroll]] for (uint i = 0; i < TM; i++) {
			const uint m = m0 + ty + i * WG_Y;
			if (m < M)
				c[pc.c_off + m * N + n] = float16_t(acc[i][j] + bv);
		}
	}
}
#endif
