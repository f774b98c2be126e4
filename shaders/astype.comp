// x.astype(dtype) between f32 and f16: out[i] = OUT_T(in[i]) for i < count.
// One source, four modules by defines (the variant lines below): IN_F16
// reads f16, OUT_F16 writes f16; neither is an f32 copy. f32 -> f16 is
// OpFConvert (round to nearest; out of range gives infinity, NaN stays
// NaN). Offsets are in elements; a 1-D grid-stride loop covers any count.
// variant: astype_f32_f16 OUT_F16=1
// variant: astype_f16_f32 IN_F16=1
// variant: astype_f16_f16 IN_F16=1,OUT_F16=1
#version 450
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;

layout(push_constant) uniform Params {
	uint count;
	uint in_off;
	uint out_off;
} pc;

#ifdef IN_F16
#define IN_T float16_t
#else
#define IN_T float
#endif
#ifdef OUT_F16
#define OUT_T float16_t
#else
#define OUT_T float
#endif

layout(set = 0, binding = 0, std430) readonly restrict buffer BufIn { IN_T src[]; };
layout(set = 0, binding = 1, std430) writeonly restrict buffer BufOut { OUT_T dst[]; };

void main()
{
	const uint threads = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
	for (uint i = gl_GlobalInvocationID.x; i < pc.count; i += threads)
		dst[pc.out_off + i] = OUT_T(src[pc.in_off + i]);
}
