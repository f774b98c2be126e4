// Elementwise unary ops over f32: out[i] = f(in[i]) for i < count.
// The op is a specialization constant (OP), so each op is its own pipeline
// with no runtime branching; adding an op is a new case below and a new
// constant on the host (runtime/src/ops/elementwise.cpp, dropout.cpp).
//
// Semantics follow jax.nn (float32), including NaN and infinity handling:
//   relu(NaN) = NaN (jnp.maximum propagates NaN), silu(-inf) = NaN,
//   gelu(-inf) = NaN (x * cdf with cdf = 0), softplus stable as
//   max(x, 0) + log1p(exp(-|x|)), elu via an accurate expm1.
// GLSL's own tanh/erf are not used: tanh may be computed as
// (e^2x - 1) / (e^2x + 1), which is NaN for large |x|, and there is no erf.
//
// A 1-D grid-stride loop over a 2-D dispatch covers any count.
//
// This file is the body of three modules: elementwise.comp (scalar
// storage buffers), elementwise_vec4.comp (-DVEC4: 4 elements per
// invocation through vec4 storage buffers) and elementwise_texel.comp
// (-DTEXEL: reads through an RGBA32F texel buffer, which lavapipe turns
// into vector gathers, and vec4 stores). In the vec4 forms count and the
// offsets are in vec4s; the host runs the tail (count % 4) on the scalar
// module.

// F16 (-DF16=1, with any of the three): x and y are f16 tensors (texel
// buffers RGBA16F), stored as f16 and computed in f32, rounded once.

#include "float_storage.glsl"

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 1) const uint OP = 0;

#define OP_RELU 0u
#define OP_GELU_TANH 1u
#define OP_GELU_ERF 2u
#define OP_SILU 3u
#define OP_SIGMOID 4u
#define OP_TANH 5u
#define OP_ELU 6u
#define OP_LEAKY_RELU 7u
#define OP_SOFTPLUS 8u
#define OP_DROPOUT 9u
#define OP_COPY 10u

layout(push_constant) uniform Params {
	uint count;
	uint in_off;    // elements
	uint out_off;   // elements
	float alpha;    // ELU alpha, leaky_relu slope; DROPOUT: 1 - rate
	uint threshold; // DROPOUT: drop when hash < threshold (rate * 2^32)
	uint key0;      // DROPOUT: seed words (low, high)
	uint key1;
	uint base;      // DROPOUT: element index of in[in_off] in the tensor
} pc;

#if defined(TEXEL)
layout(set = 0, binding = 0) uniform samplerBuffer src4; // RGBA32F
layout(set = 0, binding = 1, std430) writeonly restrict buffer BufOut { ELEM4 dst4[]; };
#define LOAD4(i) texelFetch(src4, int(i))
#elif defined(VEC4)
layout(set = 0, binding = 0, std430) readonly restrict buffer BufIn { ELEM4 src4[]; };
layout(set = 0, binding = 1, std430) writeonly restrict buffer BufOut { ELEM4 dst4[]; };
#define LOAD4(i) vec4(src4[i])
#else
layout(set = 0, binding = 0, std430) readonly restrict buffer BufIn { ELEM src[]; };
layout(set = 0, binding = 1, std430) writeonly restrict buffer BufOut { ELEM dst[]; };
#endif

// tanh(x) for all x: an odd Taylor series near 0 (|x| < 0.2, terms to
// x^11, truncation error < 1e-10 relative), elsewhere (1 - t) / (1 + t)
// with t = exp(-2|x|) <= 0.67, which never overflows and loses at most a
// few ulp. tanh(+-inf) = +-1, tanh(NaN) = NaN.
float tanh_f(float x)
{
	const float ax = abs(x);
	if (ax < 0.2) {
		const float x2 = x * x;
		float p = -1382.0 / 155925.0;
		p = p * x2 + 62.0 / 2835.0;
		p = p * x2 - 17.0 / 315.0;
		p = p * x2 + 2.0 / 15.0;
		p = p * x2 - 1.0 / 3.0;
		return x + x * x2 * p;
	}
	const float t = exp(-2.0 * ax);
	const float r = (1.0 - t) / (1.0 + t);
	return x < 0.0 ? -r : (isnan(x) ? x : r);
}

// erf(x) as Eigen and XLA compute it in float32: x clamped to [-4, 4] (erf
// is +-1 in f32 beyond) and a rational function p(x^2) * x / q(x^2);
// maximum absolute error 6.5e-8 when evaluated exactly.
float erf_f(float x)
{
	if (isnan(x))
		return x;
	x = clamp(x, -4.0, 4.0);
	const float x2 = x * x;
	float p = -2.72614225801306e-10;
	p = p * x2 + 2.77068142495902e-08;
	p = p * x2 - 2.10102402082508e-06;
	p = p * x2 - 5.69250639462346e-05;
	p = p * x2 - 7.34990630326855e-04;
	p = p * x2 - 2.95459980854025e-03;
	p = p * x2 - 1.60960333262415e-02;
	float q = -1.45660718464996e-05;
	q = q * x2 - 2.13374055278905e-04;
	q = q * x2 - 1.68282697438203e-03;
	q = q * x2 - 7.37332916720468e-03;
	q = q * x2 - 1.42647390514189e-02;
	return x * p / q;
}

// erfc(z) for z >= 0.5 (Numerical Recipes' erfcc, a Chebyshev fit with
// relative error < 1.2e-7): accurate in the tail where 1 - erf(z) cancels.
float erfc_tail(float z)
{
	const float t = 1.0 / (1.0 + 0.5 * z);
	float p = 0.17087277;
	p = p * t - 0.82215223;
	p = p * t + 1.48851587;
	p = p * t - 1.13520398;
	p = p * t + 0.27886807;
	p = p * t - 0.18628806;
	p = p * t + 0.09678418;
	p = p * t + 0.37409196;
	p = p * t + 1.00002368;
	p = p * t - 1.26551223;
	return t * exp(p - z * z);
}

// The standard normal CDF Phi(x) = (1 + erf(x / sqrt(2))) / 2, through
// erfc where erf(x / sqrt(2)) is near -1.
float normal_cdf(float x)
{
	const float z = x * 0.7071067811865476;
	if (z < -0.5)
		return 0.5 * erfc_tail(-z);
	return 0.5 * (1.0 + erf_f(z));
}

// exp(x) - 1 without cancellation: Taylor series to x^8 for |x| < 0.1
// (error < 3e-14 relative), exp(x) - 1 elsewhere (<= 10 ulp).
float expm1_f(float x)
{
	if (abs(x) < 0.1) {
		float p = 1.0 / 40320.0;
		p = p * x + 1.0 / 5040.0;
		p = p * x + 1.0 / 720.0;
		p = p * x + 1.0 / 120.0;
		p = p * x + 1.0 / 24.0;
		p = p * x + 1.0 / 6.0;
		p = p * x + 0.5;
		return x + x * x * p;
	}
	return exp(x) - 1.0;
}

// log(1 + u) for u >= 0 (Goldberg's trick: the rounding of 1 + u is
// corrected by u / ((1 + u) - 1)).
float log1p_f(float u)
{
	const float w = 1.0 + u;
	if (w == 1.0)
		return u;
	return log(w) * (u / (w - 1.0));
}

float sigmoid_f(float x)
{
	return 1.0 / (1.0 + exp(-x));
}

// lowbias32 (Chris Wellons' hash-prospector): a bijective 32-bit mixer.
uint mix32(uint x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

// Dropout's counter-based RNG. For the 64-bit seed (s0 low, s1 high) and
// the element index i (row-major position in the tensor):
//   k0 = mix32(s0 ^ mix32(s1 ^ 0x9e3779b9))
//   k1 = mix32(s1 ^ mix32(k0 ^ 0x85ebca6b))
//   h  = mix32(mix32(i ^ k0) + k1)
// and the element is kept when h >= threshold, threshold = rate * 2^32
// (rounded), so P(keep) = 1 - rate up to 2^-32. The host computes the same
// function for tests (tests/host/reference_elementwise.hpp).
uint dropout_hash(uint i)
{
	const uint k0 = mix32(pc.key0 ^ mix32(pc.key1 ^ 0x9e3779b9u));
	const uint k1 = mix32(pc.key1 ^ mix32(k0 ^ 0x85ebca6bu));
	return mix32(mix32(i ^ k0) + k1);
}

float apply(float x, uint i)
{
	switch (OP) {
	case OP_RELU:
		return isnan(x) ? x : max(x, 0.0);
	case OP_GELU_TANH: {
		// jax.nn.gelu(approximate=True)
		const float k = 0.7978845608028654; // sqrt(2 / pi)
		return x * (0.5 * (1.0 + tanh_f(k * (x + 0.044715 * (x * x * x)))));
	}
	case OP_GELU_ERF:
		// jax.nn.gelu(approximate=False): x * (erf(x / sqrt(2)) + 1) / 2,
		// with the negative tail through erfc (no cancellation)
		return isnan(x) ? x : x * normal_cdf(x);
	case OP_SILU:
		return x * sigmoid_f(x);
	case OP_SIGMOID:
		return sigmoid_f(x);
	case OP_TANH:
		return tanh_f(x);
	case OP_ELU:
		return x > 0.0 ? x : pc.alpha * expm1_f(x);
	case OP_LEAKY_RELU:
		return x >= 0.0 ? x : pc.alpha * x;
	case OP_SOFTPLUS:
		// jnp.logaddexp(x, 0)
		if (isnan(x))
			return x;
		return max(x, 0.0) + log1p_f(exp(-abs(x)));
	case OP_DROPOUT:
		return dropout_hash(pc.base + i) >= pc.threshold ? x / pc.alpha : 0.0;
	case OP_COPY:
	default:
		return x;
	}
}

void main()
{
	const uint threads = gl_NumWorkGroups.x * gl_NumWorkGroups.y * gl_WorkGroupSize.x;
	const uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
#if defined(VEC4) || defined(TEXEL)
	// count, in_off and out_off in vec4s here
	for (uint i = group * gl_WorkGroupSize.x + gl_LocalInvocationID.x; i < pc.count; i += threads) {
		const vec4 v = LOAD4(pc.in_off + i);
		dst4[pc.out_off + i] = ELEM4(vec4(apply(v.x, 4 * i), apply(v.y, 4 * i + 1), apply(v.z, 4 * i + 2),
						  apply(v.w, 4 * i + 3)));
	}
#else
	for (uint i = group * gl_WorkGroupSize.x + gl_LocalInvocationID.x; i < pc.count; i += threads)
		dst[pc.out_off + i] = ELEM(apply(float(src[pc.in_off + i]), i));
#endif
}
