// Reductions over f32 (and f16): sum, mean, max over any set of axes.
//
// The host collapses the input into alternating groups of kept and reduced
// dims (size-1 dims dropped, adjacent dims of one kind merged): at most 3
// kept dims (kdims, kstrides) and 3 reduced dims (rdims, rstrides), strides
// in elements of the input. Output element o (row-major over the kept dims,
// which is the output's layout with or without keepdims) reduces the R =
// prod(rdims) elements at base(o) + offset(r).
//
// PER_GROUP = 1: one workgroup per output (R large): threads stride over r
// and meet in a shared-memory tree. PER_GROUP = 0: one thread per output,
// r sequential (many outputs, e.g. reducing a leading axis: neighbouring
// threads read neighbouring elements). Outputs are a grid-stride loop.
//
// max propagates NaN like jnp.max.
//
// This file is the body of reduce.comp (scalar) and reduce_vec4.comp
// (-DVEC4, one thread per output or per 4 outputs, reading vec4s; offsets,
// strides and dims in elements except in_off, in vec4s):
//   VMODE 0 (inner): the reduced run is the innermost group, contiguous,
//     R a multiple of 4 (nr == 1): a thread (PER_GROUP = 0) or a
//     workgroup (PER_GROUP = 1) reduces vec4s along it;
//   VMODE 1 (outer): the innermost group is kept and contiguous, a
//     multiple of 4: a thread reduces 4 neighbouring outputs at once.
//
// F16 (-DF16=1 with either, modules reduce_f16 and reduce_vec4_f16): x and
// y are f16; elements are loaded as f16, accumulated in f32 exactly as for
// f32 (same order), and rounded to f16 once, on the store (mean divides
// in f32 first).

#include "float_storage.glsl"

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 1) const uint OP = 0;
layout(constant_id = 2) const uint PER_GROUP = 0;
layout(constant_id = 3) const uint VMODE = 0;

#define OP_SUM 0u
#define OP_MEAN 1u
#define OP_MAX 2u

layout(push_constant) uniform Params {
	uint outputs;
	uint R;
	uint in_off;    // elements
	uint out_off;
	uint nk;        // kept dims used (0..3)
	uint nr;        // reduced dims used (1..3)
	uint kdims[3];
	uint kstrides[3];
	uint rdims[3];
	uint rstrides[3];
} pc;

#if defined(VEC4)
layout(set = 0, binding = 0, std430) readonly restrict buffer BufIn { ELEM4 src[]; };
#define LOAD(i) vec4(src[i])
#else
layout(set = 0, binding = 0, std430) readonly restrict buffer BufIn { ELEM src[]; };
#define LOAD(i) float(src[i])
#endif
layout(set = 0, binding = 1, std430) writeonly restrict buffer BufOut { ELEM dst[]; };
#define STORE(i, v) dst[i] = ELEM(v)

const uint WG = gl_WorkGroupSize.x;
shared float red[WG];

float identity()
{
	return OP == OP_MAX ? uintBitsToFloat(0xff800000u) : 0.0;
}

float combine(float a, float b)
{
	if (OP == OP_MAX)
		return (b > a || isnan(b)) ? b : a;
	return a + b;
}

uint kept_offset(uint o)
{
	uint off = 0;
	for (int d = int(pc.nk) - 1; d >= 0; d--) {
		const uint q = o / pc.kdims[d];
		off += (o - q * pc.kdims[d]) * pc.kstrides[d];
		o = q;
	}
	return off;
}

uint reduced_offset(uint r)
{
	uint off = 0;
	for (int d = int(pc.nr) - 1; d > 0; d--) {
		const uint q = r / pc.rdims[d];
		off += (r - q * pc.rdims[d]) * pc.rstrides[d];
		r = q;
	}
	return off + r * pc.rstrides[0];
}

float finish(float acc)
{
	return OP == OP_MEAN ? acc / float(pc.R) : acc;
}

#if defined(VEC4)
vec4 combine4(vec4 a, vec4 b)
{
	return vec4(combine(a.x, b.x), combine(a.y, b.y), combine(a.z, b.z), combine(a.w, b.w));
}

void main()
{
	const uint groups = gl_NumWorkGroups.x * gl_NumWorkGroups.y;
	const uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
	const uint threads = groups * WG;
	const uint first = group * WG + gl_LocalInvocationID.x;
	if (VMODE == 0 && PER_GROUP != 0) {
		// a workgroup per output: threads stride over the run's vec4s
		const uint t = gl_LocalInvocationID.x;
		const uint R4 = pc.R / 4;
		for (uint o = group; o < pc.outputs; o += groups) {
			const uint base = pc.in_off + kept_offset(o) / 4;
			vec4 acc = vec4(identity());
			for (uint r = t; r < R4; r += WG)
				acc = combine4(acc, LOAD(base + r));
			red[t] = combine(combine(acc.x, acc.y), combine(acc.z, acc.w));
			barrier();
			for (uint s = WG / 2; s > 0; s >>= 1) {
				if (t < s)
					red[t] = combine(red[t], red[t + s]);
				barrier();
			}
			if (t == 0)
				STORE(pc.out_off + o, finish(red[0]));
			barrier();
		}
	} else if (VMODE == 0) {
		const uint R4 = pc.R / 4;
		for (uint o = first; o < pc.outputs; o += threads) {
			const uint base = pc.in_off + kept_offset(o) / 4;
			vec4 acc = vec4(identity());
			for (uint r = 0; r < R4; r++)
				acc = combine4(acc, LOAD(base + r));
			STORE(pc.out_off + o, finish(combine(combine(acc.x, acc.y), combine(acc.z, acc.w))));
		}
	} else {
		for (uint o4 = first; o4 < pc.outputs / 4; o4 += threads) {
			const uint base = pc.in_off + kept_offset(4 * o4) / 4;
			vec4 acc = vec4(identity());
			for (uint r = 0; r < pc.R; r++)
				acc = combine4(acc, LOAD(base + reduced_offset(r) / 4));
			const uint o = pc.out_off + 4 * o4;
			STORE(o, finish(acc.x));
			STORE(o + 1, finish(acc.y));
			STORE(o + 2, finish(acc.z));
			STORE(o + 3, finish(acc.w));
		}
	}
}
#else

void main()
{
	const uint groups = gl_NumWorkGroups.x * gl_NumWorkGroups.y;
	const uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
	if (PER_GROUP != 0) {
		const uint t = gl_LocalInvocationID.x;
		for (uint o = group; o < pc.outputs; o += groups) {
			const uint base = pc.in_off + kept_offset(o);
			float acc = identity();
			if (pc.nr == 1) {
				const uint st = pc.rstrides[0];
				for (uint r = t; r < pc.R; r += WG)
					acc = combine(acc, LOAD(base + r * st));
			} else {
				for (uint r = t; r < pc.R; r += WG)
					acc = combine(acc, LOAD(base + reduced_offset(r)));
			}
			red[t] = acc;
			barrier();
			for (uint s = WG / 2; s > 0; s >>= 1) {
				if (t < s)
					red[t] = combine(red[t], red[t + s]);
				barrier();
			}
			if (t == 0)
				STORE(pc.out_off + o, finish(red[0]));
			barrier();
		}
	} else {
		const uint threads = groups * WG;
		for (uint o = group * WG + gl_LocalInvocationID.x; o < pc.outputs; o += threads) {
			const uint base = pc.in_off + kept_offset(o);
			float acc = identity();
			if (pc.nr == 1) {
				const uint st = pc.rstrides[0];
				for (uint r = 0; r < pc.R; r++)
					acc = combine(acc, LOAD(base + r * st));
			} else {
				for (uint r = 0; r < pc.R; r++)
					acc = combine(acc, LOAD(base + reduced_offset(r)));
			}
			STORE(pc.out_off + o, finish(acc));
		}
	}
}
#endif
