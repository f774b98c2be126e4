// matmul.comp on f16 tensors (f16 MATMUL with transposes or batched b,
// and f16 Embed.attend): the same strided batched product, A, B and C f16,
// products and sums in f32, C rounded to f16 at the store. From
// matmul.comp:
//
// Batched matmul with strides (MATMUL with transposes and broadcast batch
// dims, Embed.attend): for batch z (pc.z_base + gl_WorkGroupID.z),
//   C_z[m, n] = sum_k A[a_z + m * sam + k * sak] * B[b_z + k * sbk + n * sbn]
// C_z is dense [M, N] at c_off + (z - z_base) * M * N. The batch index z
// is decomposed over the output batch dims bd[0..3] (bd[3] innermost);
// a_z / b_z sum idx[i] * as[i] / bs[i] (stride 0 for a broadcast dim).
// Portable storage-buffer path: each invocation computes a TM x TN block
// (rows ty + i * WG_Y, columns tx + j * WG_X). Offsets in elements.
#version 450
#extension GL_EXT_control_flow_attributes : enable
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require

layout(local_size_x_id = 0, local_size_y_id = 1, local_size_z = 1) in;
layout(constant_id = 2) const uint TM = 4;
layout(constant_id = 3) const uint TN = 4;

const uint WG_X = gl_WorkGroupSize.x;
const uint WG_Y = gl_WorkGroupSize.y;

layout(push_constant) uniform Params {
	uint M, N, K, z_base;
	uint a_off, b_off, c_off, pad0;
	uint sam, sak, sbk, sbn;
	uvec4 bd;
	uvec4 as_;
	uvec4 bs;
} pc;

layout(set = 0, binding = 0, std430) readonly restrict buffer BufA { float16_t a[]; };
layout(set = 0, binding = 1, std430) readonly restrict buffer BufB { float16_t b[]; };
layout(set = 0, binding = 2, std430) writeonly restrict buffer BufC { float16_t c[]; };

void main()
{
	const uint z = pc.z_base + gl_WorkGroupID.z;
	uint rem = z, ab = pc.a_off, bb = pc.b_off;
	[[unroll]] for (int i = 3; i >= 0; i--) {
		const uint idx = rem % pc.bd[i];
		rem /= pc.bd[i];
		ab += idx * pc.as_[i];
		bb += idx * pc.bs[i];
	}
	const uint m0 = gl_WorkGroupID.y * WG_Y * TM + gl_LocalInvocationID.y;
	const uint n0 = gl_WorkGroupID.x * WG_X * TN + gl_LocalInvocationID.x;

	uint arow[TM], bcol[TN];
	[[unroll]] for (uint i = 0; i < TM; i++)
		arow[i] = ab + min(m0 + i * WG_Y, pc.M - 1u) * pc.sam;
	[[unroll]] for (uint j = 0; j < TN; j++)
		bcol[j] = bb + min(n0 + j * WG_X, pc.N - 1u) * pc.sbn;

	float acc[TM][TN];
	[[unroll]] for (uint i = 0; i < TM; i++)
		[[unroll]] for (uint j = 0; j < TN; j++)
			acc[i][j] = 0.0;

	for (uint k = 0; k < pc.K; k++) {
		float av[TM], bv[TN];
		[[unroll]] for (uint i = 0; i < TM; i++)
			av[i] = float(a[arow[i] + k * pc.sak]);
		[[unroll]] for (uint j = 0; j < TN; j++)
			bv[j] = float(b[bcol[j] + k * pc.sbk]);
		[[unroll]] for (uint i = 0; i < TM; i++)
			[[unroll]] for (uint j = 0; j < TN; j++)
				acc[i][j] = fma(av[i], bv[j], acc[i][j]);
	}

	const uint cb = pc.c_off + gl_WorkGroupID.z * pc.M * pc.N;
	[[unroll]] for (uint i = 0; i < TM; i++) {
		const uint m = m0 + i * WG_Y;
		if (m >= pc.M)
			break;
		[[unroll]] for (uint j = 0; j < TN; j++) {
			const uint n = n0 + j * WG_X;
			if (n < pc.N)
				c[cb + m * pc.N + n] = float16_t(acc[i][j]);
		}
	}
}
