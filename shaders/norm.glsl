// Normalisation layers over f32 (or f16, see F16): LayerNorm, RMSNorm,
// GroupNorm, BatchNorm.
//
// Every one is seen as x[NB, S, G, CG]: a segment is one (nb, g) and holds
// S * CG elements; its statistics normalise it and channel g * CG + c picks
// the scale and bias.
//   LayerNorm / RMSNorm: NB rows, S = product of the extra reduced axes,
//                         G = 1, CG = C (the last axis)
//   GroupNorm:            NB = N, S = spatial positions, G = groups, CG = C / G
//   BatchNorm:            NB = 1, S = rows, G = C, CG = 1; with PER_CHANNEL
//                         (C % 4 == 0) G = C / 4, CG = 4, and each
//                         component of a unit keeps its own statistics
//
// Statistics are in f32 as Flax computes them (mean and E[x^2] - E[x]^2,
// clipped at 0), but accumulated carefully: relative to the segment's first
// element (the same formula, without the cancellation a large mean causes),
// in two levels (blocks of 64 values per invocation, then the blocks; in
// workgroup mode a tree across the workgroup).
//
// LANE_MODE: one invocation per segment (many small segments; the
// invocations never talk, which suits CPU devices); otherwise one workgroup
// per segment with a shared-memory tree.
//
// norm_texel.comp (TEXEL defined) reads x, scale and bias through uniform
// texel buffers: on lavapipe that is a vector gather, where a
// storage-buffer read is a per-lane loop. VEC4 (C / G and all offsets
// multiples of 4) moves vec4s: a quarter of the per-lane stores.
// Included by norm.comp (storage buffers) and norm_texel.comp.
//
// F16 (-DF16=1, the *_f16 variants): every float tensor (x, y, scale,
// bias, running statistics in and out) is f16; loads widen to f32, all the
// arithmetic is the f32 path's, and each store rounds once. The texel
// views are then R16F / RGBA16F (texelFetch still returns f32), so only
// the storage-buffer declarations change.

#include "float_storage.glsl"
#ifdef F16
#define WIDEN(v) float(v)
#define WIDEN4(v) vec4(v)
#define NARROW4(v) f16vec4(v)
#else
// (Not vec4(v): glslang keeps a vec4(vec4) as extracts and a construct.)
#define WIDEN(v) (v)
#define WIDEN4(v) (v)
#define NARROW4(v) (v)
#endif

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 1) const uint MODE = 0;
layout(constant_id = 2) const bool LANE_MODE = false;
layout(constant_id = 3) const bool VEC4 = false;
// PER_CHANNEL (with VEC4, CG = 4, BatchNorm): each component of a vec4
// unit is its own channel with its own statistics, so one segment is a
// texel of 4 channels (G = C / 4) and every fetch serves 4 channels.
layout(constant_id = 4) const bool PER_CHANNEL = false;

#define MODE_LAYER 0u     // mean and variance from the segment
#define MODE_RMS 1u       // mean of squares only
#define MODE_BN_INFER 2u  // mean and variance given (running statistics)
#define MODE_BN_TRAIN 3u  // as MODE_LAYER, and new running statistics

#define FLAG_SCALE 1u
#define FLAG_BIAS 2u

const uint WG = gl_WorkGroupSize.x;
const uint BLOCK = 64u;
const uint UNROLL = 4u;

layout(push_constant) uniform Params {
	uint NB, S, G, CG;
	uint flags;
	float eps;
	float momentum;
	uint x_off;     // elements from the bound ranges
	uint y_off;
	uint scale_off;
	uint bias_off;
	uint mean_off;
	uint var_off;
	uint nmean_off;
	uint nvar_off;
	uint groups_x;  // workgroups per row of the dispatch grid
} pc;

#ifdef TEXEL
// R32F views, or RGBA32F views when VEC4 (R16F, RGBA16F when F16).
layout(set = 0, binding = 0) uniform samplerBuffer xt;
layout(set = 0, binding = 2) uniform samplerBuffer scalet;
layout(set = 0, binding = 3) uniform samplerBuffer biast;
// (An R32F fetch returns (r, 0, 0, 1): keep only r.)
#define TEXEL4(t, i) (VEC4 ? texelFetch(t, int(i)) : vec4(texelFetch(t, int(i)).x, 0.0, 0.0, 0.0))
#define LOADX4(i) TEXEL4(xt, i)
#define SCALE4(i) TEXEL4(scalet, i)
#define BIAS4(i) TEXEL4(biast, i)
#else
layout(set = 0, binding = 0, std430) readonly restrict buffer BufX { ELEM xs[]; };
layout(set = 0, binding = 2, std430) readonly restrict buffer BufScale { ELEM scale[]; };
layout(set = 0, binding = 3, std430) readonly restrict buffer BufBias { ELEM bias[]; };
layout(set = 0, binding = 0, std430) readonly restrict buffer BufX4 { ELEM4 xs4[]; };
layout(set = 0, binding = 2, std430) readonly restrict buffer BufScale4 { ELEM4 scale4[]; };
layout(set = 0, binding = 3, std430) readonly restrict buffer BufBias4 { ELEM4 bias4[]; };
#define LOADX4(i) (VEC4 ? WIDEN4(xs4[i]) : vec4(WIDEN(xs[i]), 0.0, 0.0, 0.0))
#define SCALE4(i) (VEC4 ? WIDEN4(scale4[i]) : vec4(WIDEN(scale[i]), 0.0, 0.0, 0.0))
#define BIAS4(i) (VEC4 ? WIDEN4(bias4[i]) : vec4(WIDEN(bias[i]), 0.0, 0.0, 0.0))
#endif
layout(set = 0, binding = 1, std430) writeonly restrict buffer BufY { ELEM y[]; };
layout(set = 0, binding = 1, std430) writeonly restrict buffer BufY4 { ELEM4 y4[]; };
layout(set = 0, binding = 4, std430) readonly restrict buffer BufMean { ELEM rmean[]; };
layout(set = 0, binding = 5, std430) readonly restrict buffer BufVar { ELEM rvar[]; };
layout(set = 0, binding = 6, std430) writeonly restrict buffer BufNMean { ELEM nmean[]; };
layout(set = 0, binding = 7, std430) writeonly restrict buffer BufNVar { ELEM nvar[]; };

shared vec4 red1[WG];
shared vec4 red2[WG];

// Work goes in units of U elements: vec4s when VEC4 (CG and every offset
// multiples of 4), else single floats carried in .x of a vec4 (the other
// components stay 0 and add nothing).
const uint U = VEC4 ? 4u : 1u;

// Unit (s, c) of the segment: base + s * row + c, in units.
struct Walk {
	uint s, c;
};

void store(uint i, vec4 v)
{
	if (VEC4)
		y4[i] = NARROW4(v);
	else
		y[i] = ELEM(v.x);
}

void main()
{
	const uint group = gl_WorkGroupID.y * pc.groups_x + gl_WorkGroupID.x;
	const uint lane = LANE_MODE ? 0u : gl_LocalInvocationID.x;
	const uint seg = LANE_MODE ? group * WG + gl_LocalInvocationID.x : group;
	const uint segs = pc.NB * pc.G;
	if (seg >= segs)
		return; // workgroup mode: uniform across the workgroup, no barrier is skipped unevenly
	const uint nb = seg / pc.G, g = seg % pc.G;
	const uint cg = pc.CG / U;                    // units per s
	const uint row = pc.G * cg;                   // units between two s
	const uint x_off = pc.x_off / U, y_off = pc.y_off / U;
	const uint base = nb * pc.S * row + g * cg;
	const uint n = pc.S * cg;                     // units in the segment
	const uint step = LANE_MODE ? 1u : WG;
	// Stepping (s, c) by `step` units in segment order.
	const uint step_s = step / cg, step_c = step % cg;
	// (Not a const: glslang folds a const select of composites on a
	// specialization constant with the constant's default.)
	vec4 live = vec4(1.0, 0.0, 0.0, 0.0);
	if (VEC4)
		live = vec4(1.0);

	// y = ((x - shift) - m1) * mul: the mean is shift + m1, never rounded
	// to one float (which would cost its large part's ulp). Per component
	// when PER_CHANNEL, else the same value in every live component.
	vec4 shift = vec4(0.0), m1 = vec4(0.0), var = vec4(0.0);
	const uint ch0 = g * cg;                      // in units
	if (MODE == MODE_BN_INFER) {
		[[unroll]] for (uint c = 0; c < 4u; c++) {
			const uint ch = PER_CHANNEL ? 4u * g + c : g;
			m1[c] = WIDEN(rmean[pc.mean_off + ch]);
			var[c] = WIDEN(rvar[pc.var_off + ch]);
		}
	} else {
		if (MODE != MODE_RMS) {
			const vec4 first = LOADX4(x_off + base);
			shift = PER_CHANNEL ? first : first.x * live;
		}
		vec4 t1 = vec4(0.0), t2 = vec4(0.0), p1 = vec4(0.0), p2 = vec4(0.0);
		uint cnt = 0u;
		Walk w = Walk(lane / cg, lane % cg);
		// One lane per segment whose units are evenly spaced (G = 1:
		// contiguous, LayerNorm and RMSNorm; or one unit a row,
		// BatchNorm): the same sums in the same order, without the
		// (s, c) walk, UNROLL fetches issued together (each is a call;
		// grouped, their memory accesses overlap).
		const bool direct = LANE_MODE && (pc.G == 1u || cg == 1u);
		const uint stride = pc.G == 1u ? 1u : row;
		for (uint k0 = 0; direct && k0 < n; k0 += BLOCK / U) {
			const uint k1 = min(k0 + BLOCK / U, n);
			uint k = k0;
			for (; k + UNROLL <= k1; k += UNROLL) {
				vec4 v[UNROLL];
				[[unroll]] for (uint j = 0; j < UNROLL; j++)
					v[j] = LOADX4(x_off + base + (k + j) * stride);
				[[unroll]] for (uint j = 0; j < UNROLL; j++) {
					v[j] -= shift;
					p1 += v[j];
					p2 = fma(v[j], v[j], p2);
				}
			}
			for (; k < k1; k++) {
				const vec4 v = LOADX4(x_off + base + k * stride) - shift;
				p1 += v;
				p2 = fma(v, v, p2);
			}
			t1 += p1;
			t2 += p2;
			p1 = p2 = vec4(0.0);
		}
		for (uint k = direct ? n : lane; k < n; k += step) {
			const vec4 v = LOADX4(x_off + base + w.s * row + w.c) - shift;
			p1 += v;
			p2 = fma(v, v, p2);
			if (++cnt == BLOCK / U) {
				t1 += p1;
				t2 += p2;
				p1 = p2 = vec4(0.0);
				cnt = 0u;
			}
			w.c += step_c;
			w.s += step_s;
			if (w.c >= cg) {
				w.c -= cg;
				w.s++;
			}
		}
		t1 += p1;
		t2 += p2;
		vec4 s1 = t1, s2 = t2;
		if (!PER_CHANNEL) {
			s1 = vec4((t1.x + t1.y) + (t1.z + t1.w));
			s2 = vec4((t2.x + t2.y) + (t2.z + t2.w));
		}
		if (!LANE_MODE) {
			red1[lane] = s1;
			red2[lane] = s2;
			memoryBarrierShared();
			barrier();
			[[unroll]] for (uint h = WG / 2u; h > 0u; h /= 2u) {
				if (lane < h) {
					red1[lane] += red1[lane + h];
					red2[lane] += red2[lane + h];
				}
				memoryBarrierShared();
				barrier();
			}
			s1 = red1[0];
			s2 = red2[0];
		}
		// Elements per statistic: S per channel, or the segment's S * CG.
		const float inv_n = 1.0 / float(PER_CHANNEL ? pc.S : pc.S * pc.CG);
		m1 = s1 * inv_n;
		const vec4 m2 = s2 * inv_n;
		// Clipped at 0 as Flax does; NaN (inf - inf) stays NaN, which
		// max() might drop.
		const vec4 d = m2 - m1 * m1;
		var = mix(max(d, vec4(0.0)), d, isnan(d));
		if (MODE == MODE_RMS) {
			var = m2;
			m1 = vec4(0.0);
		}
		if (MODE == MODE_BN_TRAIN && lane == 0u) {
			[[unroll]] for (uint c = 0; c < (PER_CHANNEL ? 4u : 1u); c++) {
				const uint ch = PER_CHANNEL ? 4u * g + c : g;
				const float mean = shift[c] + m1[c];
				nmean[pc.nmean_off + ch] =
					ELEM(pc.momentum * WIDEN(rmean[pc.mean_off + ch]) + (1.0 - pc.momentum) * mean);
				nvar[pc.nvar_off + ch] =
					ELEM(pc.momentum * WIDEN(rvar[pc.var_off + ch]) + (1.0 - pc.momentum) * var[c]);
			}
		}
	}

	const vec4 mul = inversesqrt(var + pc.eps);
	const bool has_scale = (pc.flags & FLAG_SCALE) != 0u;
	const bool has_bias = (pc.flags & FLAG_BIAS) != 0u;
	const uint scale_off = pc.scale_off / U, bias_off = pc.bias_off / U;
	if (cg == 1u) {
		// One unit of channels per segment (BatchNorm): hoist its
		// parameters.
		const vec4 m = has_scale ? mul * SCALE4(scale_off + ch0) : mul;
		const vec4 b = has_bias ? BIAS4(bias_off + ch0) : vec4(0.0);
		uint s = lane;
		for (; LANE_MODE && s + UNROLL <= pc.S; s += UNROLL) {
			vec4 v[UNROLL];
			[[unroll]] for (uint j = 0; j < UNROLL; j++)
				v[j] = LOADX4(x_off + base + (s + j) * row);
			[[unroll]] for (uint j = 0; j < UNROLL; j++)
				store(y_off + base + (s + j) * row, fma((v[j] - shift) - m1, m, b));
		}
		for (; s < pc.S; s += step) {
			const uint i = base + s * row;
			store(y_off + i, fma((LOADX4(x_off + i) - shift) - m1, m, b));
		}
		return;
	}
	if (LANE_MODE && pc.G == 1u && pc.S == 1u) {
		// One contiguous row per lane (LayerNorm, RMSNorm over the
		// last axis): unit k is channel k.
		uint k = 0;
		for (; k + UNROLL <= n; k += UNROLL) {
			vec4 v[UNROLL], m[UNROLL], b[UNROLL];
			[[unroll]] for (uint j = 0; j < UNROLL; j++) {
				v[j] = LOADX4(x_off + base + k + j);
				m[j] = has_scale ? SCALE4(scale_off + k + j) : vec4(1.0);
				b[j] = has_bias ? BIAS4(bias_off + k + j) : vec4(0.0);
			}
			[[unroll]] for (uint j = 0; j < UNROLL; j++)
				store(y_off + base + k + j, fma((v[j] - shift) - m1, has_scale ? mul * m[j] : mul, b[j]));
		}
		for (; k < n; k++) {
			const vec4 m = has_scale ? mul * SCALE4(scale_off + k) : mul;
			const vec4 b = has_bias ? BIAS4(bias_off + k) : vec4(0.0);
			store(y_off + base + k, fma((LOADX4(x_off + base + k) - shift) - m1, m, b));
		}
		return;
	}
	Walk w = Walk(lane / cg, lane % cg);
	for (uint k = lane; k < n; k += step) {
		const uint i = base + w.s * row + w.c;
		const uint ch = ch0 + w.c;
		const vec4 m = has_scale ? mul * SCALE4(scale_off + ch) : mul;
		const vec4 b = has_bias ? BIAS4(bias_off + ch) : vec4(0.0);
		store(y_off + i, fma((LOADX4(x_off + i) - shift) - m1, m, b));
		w.c += step_c;
		w.s += step_s;
		if (w.c >= cg) {
			w.c -= cg;
			w.s++;
		}
	}
}
