// Strided copy of words, the one kernel behind reshape, transpose, slice
// and concatenate:
//   for every index (i0..i{rank-1}) of the copy's shape dims[]:
//     dst[dst_off + sum i_d * ds[d]] = src[src_off + sum i_d * ss[d]]
// The host folds the op into this form and collapses it: dims that stay
// adjacent in both layouts are merged, size-1 dims dropped, so a reshape
// is a rank-1 contiguous copy and a concatenation a rank-2 one per input.
// CONTIGUOUS = 1 is the rank-1, unit-stride path without index arithmetic.
//
// This file is the body of layout.comp (32-bit words), layout_vec4.comp
// (-DVEC4: 16-byte words, for copies whose innermost run, strides and
// offsets are multiples of 16 bytes; the host passes them in vec4s) and
// layout_u16 (-DU16=1 on layout.comp: 2-byte words, for f16 copies that
// cannot move whole 32-bit words, e.g. transposes, odd runs or slices at
// odd starts). Words are moved as integers, so every bit (NaN payloads,
// -0) is kept. The host counts everything in words of the module.

#if defined(U16)
// 16-bit storage only: the words are loaded and stored, never computed on.
#extension GL_EXT_shader_16bit_storage : require
#endif

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 1) const uint CONTIGUOUS = 0;

#define MAX_RANK 6

layout(push_constant) uniform Params {
	uint count;
	uint src_off;  // words
	uint dst_off;
	uint rank;
	uint dims[MAX_RANK];
	uint ss[MAX_RANK];
	uint ds[MAX_RANK];
} pc;

#if defined(U16)
layout(set = 0, binding = 0, std430) readonly restrict buffer BufIn { uint16_t src[]; };
layout(set = 0, binding = 1, std430) writeonly restrict buffer BufOut { uint16_t dst[]; };
#elif defined(VEC4)
layout(set = 0, binding = 0, std430) readonly restrict buffer BufIn { uvec4 src[]; };
layout(set = 0, binding = 1, std430) writeonly restrict buffer BufOut { uvec4 dst[]; };
#else
layout(set = 0, binding = 0, std430) readonly restrict buffer BufIn { uint src[]; };
layout(set = 0, binding = 1, std430) writeonly restrict buffer BufOut { uint dst[]; };
#endif

void main()
{
	const uint threads = gl_NumWorkGroups.x * gl_NumWorkGroups.y * gl_WorkGroupSize.x;
	const uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
	for (uint i = group * gl_WorkGroupSize.x + gl_LocalInvocationID.x; i < pc.count; i += threads) {
		if (CONTIGUOUS != 0) {
			dst[pc.dst_off + i] = src[pc.src_off + i];
			continue;
		}
		uint rest = i, si = 0, di = 0;
		for (int d = int(pc.rank) - 1; d > 0; d--) {
			const uint q = rest / pc.dims[d];
			const uint r = rest - q * pc.dims[d];
			si += r * pc.ss[d];
			di += r * pc.ds[d];
			rest = q;
		}
		si += rest * pc.ss[0];
		di += rest * pc.ds[0];
		dst[pc.dst_off + di] = src[pc.src_off + si];
	}
}
