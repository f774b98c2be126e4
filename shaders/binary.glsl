// Binary elementwise ops over f32 with NumPy broadcasting:
//   out[i] = f(a[ia(i)], b[ib(i)]) for i < count.
//
// The host collapses the broadcast into at most 6 dims (adjacent dims
// merged where both operands stay contiguous, size-1 dims dropped) with a
// stride per operand and dim, 0 where the operand is broadcast. MODE picks
// a path without index arithmetic for the common cases:
//   MODE_SAME     a and b contiguous, same shape
//   MODE_SCALAR_B b is one element (stride 0 everywhere), a contiguous
//   MODE_SCALAR_A a is one element, b contiguous
//   MODE_GENERAL  per-dim strides
// OP and MODE are specialization constants.
//
// This file is the body of three modules: binary.comp (scalar, every
// mode), binary_vec4.comp (-DVEC4) and binary_texel.comp (-DTEXEL, reads
// through RGBA32F texel buffers: vector gathers on lavapipe). The vector
// forms take 4 output elements per invocation; they need each operand
// contiguous in (stride 1) or broadcast along (stride 0) the innermost
// collapsed dim, not both broadcast, that dim and the tensors' offsets
// multiples of 4, and count and offsets in vec4s. There every mode takes the general index walk (trivial at rank
// 1), and MODE_SCALAR_A/B mean that a (b) is broadcast along the innermost
// dim (a scalar, or a column [M, 1] against [M, N]): it is read as one
// float per invocation from binding 3, a storage buffer (its offset in
// elements), binding 0 (1) then being a dummy.
//
// maximum/minimum propagate NaN like jnp.maximum/jnp.minimum (GLSL's
// max/min leave the result undefined for NaN).

// F16 (-DF16=1, with any of the three): a, b and out are f16 tensors
// (texel buffers RGBA16F), computed in f32 and rounded once.

#include "float_storage.glsl"

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 1) const uint OP = 0;
layout(constant_id = 2) const uint MODE = 0;

#define OP_ADD 0u
#define OP_SUB 1u
#define OP_MUL 2u
#define OP_DIV 3u
#define OP_MAX 4u
#define OP_MIN 5u

#define MODE_SAME 0u
#define MODE_SCALAR_B 1u
#define MODE_SCALAR_A 2u
#define MODE_GENERAL 3u

#define MAX_RANK 6

layout(push_constant) uniform Params {
	uint count;
	uint a_off;  // elements
	uint b_off;
	uint out_off;
	uint rank;   // MODE_GENERAL: dims used, innermost last
	uint dims[MAX_RANK];
	uint sa[MAX_RANK];
	uint sb[MAX_RANK];
} pc;

#if defined(TEXEL)
layout(set = 0, binding = 0) uniform samplerBuffer a4;
layout(set = 0, binding = 1) uniform samplerBuffer b4;
layout(set = 0, binding = 2, std430) writeonly restrict buffer BufOut { ELEM4 dst4[]; };
layout(set = 0, binding = 3, std430) readonly restrict buffer BufS { ELEM scalar[]; };
#define LOAD_A(i) texelFetch(a4, int(i))
#define LOAD_B(i) texelFetch(b4, int(i))
#elif defined(VEC4)
layout(set = 0, binding = 0, std430) readonly restrict buffer BufA { ELEM4 a4[]; };
layout(set = 0, binding = 1, std430) readonly restrict buffer BufB { ELEM4 b4[]; };
layout(set = 0, binding = 2, std430) writeonly restrict buffer BufOut { ELEM4 dst4[]; };
layout(set = 0, binding = 3, std430) readonly restrict buffer BufS { ELEM scalar[]; };
#define LOAD_A(i) vec4(a4[i])
#define LOAD_B(i) vec4(b4[i])
#else
layout(set = 0, binding = 0, std430) readonly restrict buffer BufA { ELEM a[]; };
layout(set = 0, binding = 1, std430) readonly restrict buffer BufB { ELEM b[]; };
layout(set = 0, binding = 2, std430) writeonly restrict buffer BufOut { ELEM dst[]; };
#endif

float apply(float x, float y)
{
	switch (OP) {
	case OP_ADD:
		return x + y;
	case OP_SUB:
		return x - y;
	case OP_MUL:
		return x * y;
	case OP_DIV:
		return x / y;
	case OP_MAX:
		return isnan(x) || isnan(y) ? x + y : max(x, y);
	case OP_MIN:
		return isnan(x) || isnan(y) ? x + y : min(x, y);
	default:
		return x;
	}
}

// Offsets of output element e in a and b (general mode).
void offsets(uint e, out uint ia, out uint ib)
{
	uint rest = e;
	ia = 0;
	ib = 0;
	for (int d = int(pc.rank) - 1; d > 0; d--) {
		const uint q = rest / pc.dims[d];
		const uint r = rest - q * pc.dims[d];
		ia += r * pc.sa[d];
		ib += r * pc.sb[d];
		rest = q;
	}
	ia += rest * pc.sa[0];
	ib += rest * pc.sb[0];
}

void main()
{
	const uint threads = gl_NumWorkGroups.x * gl_NumWorkGroups.y * gl_WorkGroupSize.x;
	const uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
	for (uint i = group * gl_WorkGroupSize.x + gl_LocalInvocationID.x; i < pc.count; i += threads) {
#if defined(VEC4) || defined(TEXEL)
		vec4 x, y;
		uint ia, ib;
		offsets(4 * i, ia, ib);
		if (MODE == MODE_SCALAR_B) {
			x = LOAD_A(pc.a_off + ia / 4);
			y = vec4(float(scalar[pc.b_off + ib]));
		} else if (MODE == MODE_SCALAR_A) {
			x = vec4(float(scalar[pc.a_off + ia]));
			y = LOAD_B(pc.b_off + ib / 4);
		} else {
			x = LOAD_A(pc.a_off + ia / 4);
			y = LOAD_B(pc.b_off + ib / 4);
		}
		dst4[pc.out_off + i] = ELEM4(vec4(apply(x.x, y.x), apply(x.y, y.y), apply(x.z, y.z), apply(x.w, y.w)));
#else
		float x, y;
		if (MODE == MODE_SAME) {
			x = a[pc.a_off + i];
			y = b[pc.b_off + i];
		} else if (MODE == MODE_SCALAR_B) {
			x = a[pc.a_off + i];
			y = b[pc.b_off];
		} else if (MODE == MODE_SCALAR_A) {
			x = a[pc.a_off];
			y = b[pc.b_off + i];
		} else {
			uint ia, ib;
			offsets(i, ia, ib);
			x = a[pc.a_off + ia];
			y = b[pc.b_off + ib];
		}
		dst[pc.out_off + i] = ELEM(apply(x, y));
#endif
	}
}
