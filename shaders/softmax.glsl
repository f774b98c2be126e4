// softmax and log_softmax over the last axis of f32 (or f16, see F16) rows:
//   m = max(x), s = sum(exp(x - m)),
//   softmax = exp(x - m) / s, log_softmax = (x - m) - log(s)
// as jax.nn computes them (max-subtracted). Like JAX, a row of all -inf
// gives NaN (x - m is NaN), a +inf or a NaN anywhere in the row gives a row
// of NaN.
//
// PER_GROUP = 1: one workgroup per row (long rows): each thread strides
// over the row, partial maxima and sums meet in a shared-memory tree.
// PER_GROUP = 0: one thread per row (short rows). Rows are a grid-stride
// loop over the dispatch, so any number of rows works.
//
// This file is the body of softmax.comp (scalar) and softmax_vec4.comp
// (-DVEC4: rows read and written as vec4, for row lengths and offsets that
// are multiples of 4; len and the offsets are then in vec4s).
//
// F16 (-DF16=1, the *_f16 variants): rows are f16 (f16vec4 = 8 bytes in
// the vec4 form). Each load converts to f32, the max, sum and outputs are
// computed exactly as for f32 rows, and each output is rounded to f16 once
// at its store.

#ifdef F16
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#endif

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 1) const uint LOG = 0;       // 1: log_softmax
layout(constant_id = 2) const uint PER_GROUP = 1;

layout(push_constant) uniform Params {
	uint rows;
	uint len;
	uint in_off;   // elements
	uint out_off;
} pc;

#if defined(VEC4)
#define VEC vec4
#ifdef F16
#define ELEM f16vec4
#else
#define ELEM vec4
#endif
#else
#define VEC float
#ifdef F16
#define ELEM float16_t
#else
#define ELEM float
#endif
#endif
layout(set = 0, binding = 0, std430) readonly restrict buffer BufIn { ELEM src[]; };
layout(set = 0, binding = 1, std430) writeonly restrict buffer BufOut { ELEM dst[]; };
// Row element i in f32, and a result as stored.
#ifdef F16
#define LOAD(i) VEC(src[i])
#define STORE(v) ELEM(v)
#else
#define LOAD(i) src[i]
#define STORE(v) (v)
#endif

const uint WG = gl_WorkGroupSize.x;
shared float red[WG];

// max that propagates NaN (a NaN never compares greater).
float nanmax(float a, float b)
{
	return (b > a || isnan(b)) ? b : a;
}

#if defined(VEC4)
float vmax(vec4 v)
{
	return nanmax(nanmax(v.x, v.y), nanmax(v.z, v.w));
}
float vsum(vec4 v)
{
	return (v.x + v.y) + (v.z + v.w);
}
#else
float vmax(float v)
{
	return v;
}
float vsum(float v)
{
	return v;
}
#endif

float group_max(float v)
{
	const uint t = gl_LocalInvocationID.x;
	red[t] = v;
	barrier();
	for (uint s = WG / 2; s > 0; s >>= 1) {
		if (t < s)
			red[t] = nanmax(red[t], red[t + s]);
		barrier();
	}
	const float r = red[0];
	barrier();
	return r;
}

float group_sum(float v)
{
	const uint t = gl_LocalInvocationID.x;
	red[t] = v;
	barrier();
	for (uint s = WG / 2; s > 0; s >>= 1) {
		if (t < s)
			red[t] += red[t + s];
		barrier();
	}
	const float r = red[0];
	barrier();
	return r;
}

void write_row(uint in_base, uint out_base, uint first, uint step, float m, float s)
{
	if (LOG != 0) {
		const float ls = log(s);
		for (uint j = first; j < pc.len; j += step)
			dst[out_base + j] = STORE((LOAD(in_base + j) - m) - ls);
	} else {
		const VEC inv = VEC(1.0 / s);
		for (uint j = first; j < pc.len; j += step)
			dst[out_base + j] = STORE(exp(LOAD(in_base + j) - m) * inv);
	}
}

void main()
{
	const uint groups = gl_NumWorkGroups.x * gl_NumWorkGroups.y;
	const uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
	if (PER_GROUP != 0) {
		const uint t = gl_LocalInvocationID.x;
		for (uint row = group; row < pc.rows; row += groups) {
			const uint ib = pc.in_off + row * pc.len;
			const uint ob = pc.out_off + row * pc.len;
			float m = uintBitsToFloat(0xff800000u); // -inf
			for (uint j = t; j < pc.len; j += WG)
				m = nanmax(m, vmax(LOAD(ib + j)));
			m = group_max(m);
			float s = 0.0;
			for (uint j = t; j < pc.len; j += WG)
				s += vsum(exp(LOAD(ib + j) - m));
			s = group_sum(s);
			write_row(ib, ob, t, WG, m, s);
		}
	} else {
		const uint threads = groups * WG;
		for (uint row = group * WG + gl_LocalInvocationID.x; row < pc.rows; row += threads) {
			const uint ib = pc.in_off + row * pc.len;
			const uint ob = pc.out_off + row * pc.len;
			float m = uintBitsToFloat(0xff800000u); // -inf
			for (uint j = 0; j < pc.len; j++)
				m = nanmax(m, vmax(LOAD(ib + j)));
			float s = 0.0;
			for (uint j = 0; j < pc.len; j++)
				s += vsum(exp(LOAD(ib + j) - m));
			write_row(ib, ob, 0, 1, m, s);
		}
	}
}
