// Tiled GEMM with optional bias, row-major f32:
//   C[M,N] = A[M,K] @ B[K,N] (+ bias[N])
//
// One workgroup computes a BM x BN tile of C (BM = WG_Y * TM, BN = WG_X * TN),
// stepping through K in chunks of BK staged in shared memory. Each thread
// keeps a TM x TN register block: rows ty + i * WG_Y, columns
// tx + j * WG_X (scalar) or 4-wide groups 4 * (tx + j * WG_X) (VEC4), so
// neighbouring invocations touch neighbouring columns of B and C.
//
// Every load and store is bounds-checked: any M, N, K >= 1 works.
// The VEC4 variant (-DVEC4=1) reads A, B, bias and writes C as vec4 and
// needs K % 4 == 0, N % 4 == 0 and every element offset % 4 == 0; the host
// picks it when those hold.
//
// Offsets are in elements from the bound buffer range, so several tensors
// can share one buffer at any 4-byte (VEC4: 16-byte) position.
//
// The TEXEL variant (-DTEXEL=1) is for CPU devices (lavapipe), where every
// storage-buffer or shared-memory access is a per-lane scalar loop but a
// texel-buffer fetch is a vector gather: no shared memory, A and B read
// through RGBA32F texel buffers (4 consecutive floats per texel), each
// thread a TM x TN register block (rows ty + i * WG_Y, 4-wide column
// groups tx + j * WG_X). Needs K % 4 == 0 and N % 4 == 0.
// variant: gemm_vec4 VEC4=1
// variant: gemm_texel TEXEL=1
#version 450
#extension GL_EXT_control_flow_attributes : enable

layout(local_size_x_id = 0, local_size_y_id = 1, local_size_z = 1) in;
layout(constant_id = 2) const uint TM = 4;  // rows per thread
layout(constant_id = 3) const uint TN = 4;  // columns per thread (VEC4: multiple of 4)
layout(constant_id = 4) const uint BK = 16; // K step (VEC4: multiple of 4)

const uint WG_X = gl_WorkGroupSize.x;
const uint WG_Y = gl_WorkGroupSize.y;
const uint THREADS = WG_X * WG_Y;
const uint BM = WG_Y * TM;
const uint BN = WG_X * TN;

#define GEMM_FLAG_BIAS 1u

layout(push_constant) uniform Params {
	uint M;
	uint N;
	uint K;
	uint flags;
	uint a_off;    // elements
	uint b_off;
	uint bias_off;
	uint c_off;
} pc;

#if defined(TEXEL)
layout(set = 0, binding = 0) uniform samplerBuffer a4;  // texel offsets in pc.a_off / 4
layout(set = 0, binding = 1) uniform samplerBuffer b4;
layout(set = 0, binding = 2, std430) readonly restrict buffer BufBias { vec4 bias[]; };
layout(set = 0, binding = 3, std430) writeonly restrict buffer BufC { vec4 c[]; };

const uint TNV = TN / 4;

void main()
{
	const uint M = pc.M, N = pc.N, K = pc.K;
	const uint KV = K / 4, NV = N / 4;
	const uint tx = gl_LocalInvocationID.x;
	const uint ty = gl_LocalInvocationID.y;
	const uint m0 = gl_WorkGroupID.y * BM + ty;
	const uint q0 = gl_WorkGroupID.x * WG_X * TNV + tx;

	// Clamped indices keep every fetch in range; stores are guarded.
	int arow[TM];
	int bcol[TNV];
	[[unroll]] for (uint i = 0; i < TM; i++)
		arow[i] = int(pc.a_off / 4 + min(m0 + i * WG_Y, M - 1) * KV);
	[[unroll]] for (uint j = 0; j < TNV; j++)
		bcol[j] = int(pc.b_off / 4 + min(q0 + j * WG_X, NV - 1));

	vec4 acc[TM][TNV];
	[[unroll]] for (uint i = 0; i < TM; i++)
		[[unroll]] for (uint j = 0; j < TNV; j++)
			acc[i][j] = vec4(0.0);

	for (uint kq = 0; kq < KV; kq++) {
		vec4 av[TM];
		[[unroll]] for (uint i = 0; i < TM; i++)
			av[i] = texelFetch(a4, arow[i] + int(kq));
		[[unroll]] for (uint kk = 0; kk < 4; kk++) {
			const int brow = int((4 * kq + kk) * NV);
			vec4 bv[TNV];
			[[unroll]] for (uint j = 0; j < TNV; j++)
				bv[j] = texelFetch(b4, brow + bcol[j]);
			[[unroll]] for (uint i = 0; i < TM; i++)
				[[unroll]] for (uint j = 0; j < TNV; j++)
					acc[i][j] = fma(vec4(av[i][kk]), bv[j], acc[i][j]);
		}
	}

	const bool has_bias = (pc.flags & GEMM_FLAG_BIAS) != 0u;
	[[unroll]] for (uint j = 0; j < TNV; j++) {
		const uint q = q0 + j * WG_X;
		if (q >= NV)
			continue;
		const vec4 bv = has_bias ? bias[pc.bias_off / 4 + q] : vec4(0.0);
		[[unroll]] for (uint i = 0; i < TM; i++) {
			const uint m = m0 + i * WG_Y;
			if (m < M)
				c[pc.c_off / 4 + m * NV + q] = acc[i][j] + bv;
		}
	}
}
#else // storage-buffer variants

#ifdef VEC4
#define ELEM vec4
const uint TNV = TN / 4;
const uint BKV = BK / 4;
const uint BNV = BN / 4;
#else
#define ELEM float
const uint TNV = TN;
const uint BNV = BN;
#endif

layout(set = 0, binding = 0, std430) readonly restrict buffer BufA { ELEM a[]; };
layout(set = 0, binding = 1, std430) readonly restrict buffer BufB { ELEM b[]; };
layout(set = 0, binding = 2, std430) readonly restrict buffer BufBias { ELEM bias[]; };
layout(set = 0, binding = 3, std430) writeonly restrict buffer BufC { ELEM c[]; };

shared float As[BK * BM];   // transposed: As[k * BM + m]
shared ELEM Bs[BK * BNV];   // Bs[k * BNV + n]

void main()
{
	const uint tx = gl_LocalInvocationID.x;
	const uint ty = gl_LocalInvocationID.y;
	const uint lid = gl_LocalInvocationIndex;
	const uint m0 = gl_WorkGroupID.y * BM;
	const uint n0 = gl_WorkGroupID.x * BN;   // in floats
	const uint M = pc.M, N = pc.N, K = pc.K;

	ELEM acc[TM][TNV];
	[[unroll]] for (uint i = 0; i < TM; i++)
		[[unroll]] for (uint j = 0; j < TNV; j++)
			acc[i][j] = ELEM(0.0);

	for (uint k0 = 0; k0 < K; k0 += BK) {
#ifdef VEC4
		// A tile: BM rows x BKV vec4 along K, stored transposed.
		const uint a_base = pc.a_off / 4;
		const uint KV = K / 4;
		for (uint e = lid; e < BM * BKV; e += THREADS) {
			const uint m = e / BKV, kq = e % BKV;
			vec4 v = vec4(0.0);
			if (m0 + m < M && k0 + 4 * kq < K)
				v = a[a_base + (m0 + m) * KV + k0 / 4 + kq];
			As[(4 * kq + 0) * BM + m] = v.x;
			As[(4 * kq + 1) * BM + m] = v.y;
			As[(4 * kq + 2) * BM + m] = v.z;
			As[(4 * kq + 3) * BM + m] = v.w;
		}
		// B tile: BK rows x BNV vec4 along N.
		const uint b_base = pc.b_off / 4;
		const uint NV = N / 4;
		for (uint e = lid; e < BK * BNV; e += THREADS) {
			const uint k = e / BNV, nq = e % BNV;
			vec4 v = vec4(0.0);
			if (k0 + k < K && n0 + 4 * nq < N)
				v = b[b_base + (k0 + k) * NV + n0 / 4 + nq];
			Bs[k * BNV + nq] = v;
		}
#else
		for (uint e = lid; e < BM * BK; e += THREADS) {
			const uint m = e / BK, k = e % BK;
			float v = 0.0;
			if (m0 + m < M && k0 + k < K)
				v = a[pc.a_off + (m0 + m) * K + k0 + k];
			As[k * BM + m] = v;
		}
		for (uint e = lid; e < BK * BN; e += THREADS) {
			const uint k = e / BN, n = e % BN;
			float v = 0.0;
			if (k0 + k < K && n0 + n < N)
				v = b[pc.b_off + (k0 + k) * N + n0 + n];
			Bs[k * BN + n] = v;
		}
#endif
		memoryBarrierShared();
		barrier();

		[[unroll]] for (uint k = 0; k < BK; k++) {
			float ar[TM];
			ELEM br[TNV];
			[[unroll]] for (uint i = 0; i < TM; i++)
				ar[i] = As[k * BM + ty + i * WG_Y];
			[[unroll]] for (uint j = 0; j < TNV; j++)
				br[j] = Bs[k * BNV + tx + j * WG_X];
			[[unroll]] for (uint i = 0; i < TM; i++)
				[[unroll]] for (uint j = 0; j < TNV; j++)
					acc[i][j] = fma(ELEM(ar[i]), br[j], acc[i][j]);
		}
		memoryBarrierShared();
		barrier();
	}

	const bool has_bias = (pc.flags & GEMM_FLAG_BIAS) != 0u;
#ifdef VEC4
	const uint NV = N / 4;
	[[unroll]] for (uint j = 0; j < TNV; j++) {
		const uint nq = n0 / 4 + tx + j * WG_X;
		if (4 * nq >= N)
			continue;
		const vec4 bv = has_bias ? bias[pc.bias_off / 4 + nq] : vec4(0.0);
		[[unroll]] for (uint i = 0; i < TM; i++) {
			const uint m = m0 + ty + i * WG_Y;
			if (m < M)
				c[pc.c_off / 4 + m * NV + nq] = acc[i][j] + bv;
		}
	}
#else
	[[unroll]] for (uint j = 0; j < TNV; j++) {
		const uint n = n0 + tx + j * WG_X;
		if (n >= N)
			continue;
		const float bv = has_bias ? bias[pc.bias_off + n] : 0.0;
		[[unroll]] for (uint i = 0; i < TM; i++) {
			const uint m = m0 + ty + i * WG_Y;
			if (m < M)
				c[pc.c_off + m * N + n] = acc[i][j] + bv;
		}
	}
#endif
}
#endif // storage-buffer variants
