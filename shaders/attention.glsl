// Scaled dot-product attention, fused (flash-attention style): one pass
// over the keys with a streaming softmax, never materialising Lq x Lk.
//
//   q[B, Lq, H, D], k[B, Lk, H, D], v[B, Lk, H, Dv] -> o[B, Lq, H, Dv]
//   o[b, i, h] = sum_j softmax_j(logit[i, j]) v[b, j, h]
//   logit[i, j] = scale * q[b, i, h] . k[b, j, h], or the lowest f32 where
//   masked (a mask value of 0, or j > i under CAUSAL) as Flax does, so a
//   fully masked row averages v uniformly.
//
// Grid: (query blocks, H, B). A workgroup of WG invocations takes WG * TQ
// consecutive queries of one (b, h); each invocation keeps TQ query rows
// (scaled) and their output rows in registers and walks the keys in blocks
// of BK: the block's logits, their maximum, one rescale of the running sum
// and output, then the block's weighted values. No shared memory and no
// talk between invocations: on lavapipe (where a workgroup is SIMD lanes
// and shared memory is per-lane loops) that is what runs fast, and on a GPU
// it is a plain row-per-thread flash kernel.
//
// Under CAUSAL an invocation stops after its last query's key (later keys
// would be masked, adding nothing), unless every key so far was masked for
// one of its rows: then that row's softmax is uniform over all Lk keys
// (every logit the lowest value) and it goes on to the end, as JAX does.
//
// Reads go through LOADQ/LOADK/LOADV (one float), LOADQ4/LOADK4/LOADV4
// (one vec4, index in vec4s) and LOADMASK, which the two entry files
// define: attention.comp (storage buffers) and attention_texel.comp
// (uniform texel buffers, vector gathers on lavapipe).
//
// Specialization: WG, TQ, D4 = ceil(D / 4), DV4 = ceil(Dv / 4), BK, and
// VEC: D, Dv and the q/k/v offsets are multiples of 4 (vec4 reads; for
// F16 also the output's offset, for f16vec4 stores).
//
// F16 (-DF16=1, the *_f16 variants): q, k, v and o are f16 tensors. The
// entry files' loads return f32 (texel views RGBA16F / R16F convert; the
// storage form converts each f16 load), everything here stays f32 (logits,
// running max and sum, the accumulators; masked logits the lowest f32, as
// in the f32 path) and each output is rounded to f16 once, at the store.
// The entry file enables the 16-bit extensions (#extension must come
// before its buffer declarations).

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 1) const uint TQ = 2;
layout(constant_id = 2) const uint D4 = 16;
layout(constant_id = 3) const uint DV4 = 16;
layout(constant_id = 4) const uint BK = 8;
layout(constant_id = 5) const bool VEC = true;

const uint WG = gl_WorkGroupSize.x;

#define FLAG_CAUSAL 1u
#define FLAG_MASK 2u

layout(push_constant) uniform Params {
	uint B, Lq, Lk, H;
	uint D, Dv;
	uint flags;
	float scale;
	uint q_off;   // elements from the bound ranges
	uint k_off;
	uint v_off;
	uint o_off;
	uint m_off;
	uint m_sb;    // mask strides in elements (0 where broadcast)
	uint m_sh;
	uint m_sq;
	uint m_sk;
} pc;

#ifdef F16
#define OUT_T float16_t
#else
#define OUT_T float
#endif
layout(set = 0, binding = 4, std430) writeonly restrict buffer BufO { OUT_T o[]; };
#ifdef F16
// f16 output rows as f16vec4 (VEC: the host also makes o's offset a
// multiple of 4 then): lavapipe compiles scalar 16-bit stores into much
// more code, about doubling the compile time of the whole kernel.
layout(set = 0, binding = 4, std430) writeonly restrict buffer BufO4 { f16vec4 o4[]; };
#endif

const float LOWEST = -3.40282347e38;

// 4 consecutive elements d4 * 4.. of a row (of len valid ones).
#define DEFINE_LOAD4(name, vec_fetch, scalar_fetch)                  \
	vec4 name(uint row, uint d4, uint len)                       \
	{                                                            \
		if (VEC)                                             \
			return vec_fetch((row + 4u * d4) / 4u);      \
		vec4 r = vec4(0.0);                                  \
		[[unroll]] for (uint c = 0; c < 4u; c++)             \
			if (4u * d4 + c < len)                       \
				r[c] = scalar_fetch(row + 4u * d4 + c); \
		return r;                                            \
	}
DEFINE_LOAD4(loadq, LOADQ4, LOADQ)
DEFINE_LOAD4(loadk, LOADK4, LOADK)
DEFINE_LOAD4(loadv, LOADV4, LOADV)

void main()
{
	const uint h = gl_WorkGroupID.y, b = gl_WorkGroupID.z;
	const uint Lq = pc.Lq, Lk = pc.Lk, H = pc.H;
	const uint q0 = (gl_WorkGroupID.x * WG + gl_LocalInvocationID.x) * TQ;
	const bool causal = (pc.flags & FLAG_CAUSAL) != 0u;
	const bool masked = (pc.flags & FLAG_MASK) != 0u;

	uint qi[TQ];
	vec4 qr[TQ][D4];
	vec4 acc[TQ][DV4];
	float m[TQ], l[TQ];
	[[unroll]] for (uint t = 0; t < TQ; t++) {
		qi[t] = min(q0 + t, Lq - 1u);
		const uint row = pc.q_off + ((b * Lq + qi[t]) * H + h) * pc.D;
		[[unroll]] for (uint d = 0; d < D4; d++)
			qr[t][d] = loadq(row, d, pc.D) * pc.scale;
		[[unroll]] for (uint e = 0; e < DV4; e++)
			acc[t][e] = vec4(0.0);
		m[t] = uintBitsToFloat(0xff800000u); // -inf: nothing seen yet
		l[t] = 0.0;
	}
	const uint mrow = pc.m_off + b * pc.m_sb + h * pc.m_sh;

	uint kend = causal ? min(Lk, qi[TQ - 1u] + 1u) : Lk;
	for (uint j0 = 0; j0 < kend; j0 += BK) {
		float s[TQ][BK];
		[[unroll]] for (uint jj = 0; jj < BK; jj++) {
			const uint j = j0 + jj;
			const uint krow = pc.k_off + ((b * Lk + min(j, Lk - 1u)) * H + h) * pc.D;
			vec4 kv[D4];
			[[unroll]] for (uint d = 0; d < D4; d++)
				kv[d] = loadk(krow, d, pc.D);
			[[unroll]] for (uint t = 0; t < TQ; t++) {
				vec4 dv = qr[t][0] * kv[0];
				[[unroll]] for (uint d = 1; d < D4; d++)
					dv = fma(qr[t][d], kv[d], dv);
				float sc = (dv.x + dv.y) + (dv.z + dv.w);
				bool keep = !causal || j <= qi[t];
				if (masked)
					keep = keep && LOADMASK(mrow + qi[t] * pc.m_sq + min(j, Lk - 1u) * pc.m_sk) != 0;
				sc = keep ? sc : LOWEST;
				// Keys past the end do not exist: weight exactly 0.
				s[t][jj] = j < Lk ? sc : uintBitsToFloat(0xff800000u);
			}
		}
		float p[TQ][BK];
		[[unroll]] for (uint t = 0; t < TQ; t++) {
			float mb = s[t][0];
			[[unroll]] for (uint jj = 1; jj < BK; jj++)
				mb = max(mb, s[t][jj]);
			const float mn = max(m[t], mb);
			const float alpha = exp(m[t] - mn);
			m[t] = mn;
			float sum = 0.0;
			[[unroll]] for (uint jj = 0; jj < BK; jj++) {
				p[t][jj] = exp(s[t][jj] - mn);
				sum += p[t][jj];
			}
			l[t] = fma(l[t], alpha, sum);
			[[unroll]] for (uint e = 0; e < DV4; e++)
				acc[t][e] *= alpha;
		}
		[[unroll]] for (uint jj = 0; jj < BK; jj++) {
			const uint vrow = pc.v_off + ((b * Lk + min(j0 + jj, Lk - 1u)) * H + h) * pc.Dv;
			[[unroll]] for (uint e = 0; e < DV4; e++) {
				const vec4 vv = loadv(vrow, e, pc.Dv);
				[[unroll]] for (uint t = 0; t < TQ; t++)
					acc[t][e] = fma(vec4(p[t][jj]), vv, acc[t][e]);
			}
		}
		// A row whose keys so far were all masked continues to the end.
		if (j0 + BK >= kend && kend < Lk) {
			bool uniform_row = false;
			[[unroll]] for (uint t = 0; t < TQ; t++)
				uniform_row = uniform_row || m[t] == LOWEST;
			if (uniform_row)
				kend = Lk;
		}
	}

	[[unroll]] for (uint t = 0; t < TQ; t++) {
		if (q0 + t >= Lq)
			continue;
		const float inv = 1.0 / l[t];
		const uint orow = pc.o_off + ((b * Lq + q0 + t) * H + h) * pc.Dv;
#ifdef F16
		if (VEC) {
			[[unroll]] for (uint e = 0; e < DV4; e++)
				o4[orow / 4u + e] = f16vec4(acc[t][e] * inv);
			continue;
		}
#endif
		[[unroll]] for (uint e = 0; e < DV4; e++)
			[[unroll]] for (uint c = 0; c < 4u; c++)
				if (4u * e + c < pc.Dv)
					o[orow + 4u * e + c] = OUT_T(acc[t][e][c] * inv);
	}
}
