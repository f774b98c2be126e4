// Elementwise unary ops over f32: out[i] = f(in[i]) for i < count.
// The op is a specialization constant (OP), so each op is its own pipeline
// with no runtime branching; adding an op is a new case below and a new
// constant on the host (runtime/src/ops/elementwise.cpp).
//
// A 1-D grid-stride loop over a 2-D dispatch covers any count.
#version 450

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 1) const uint OP = 0;

#define OP_RELU 0u

layout(push_constant) uniform Params {
	uint count;
	uint in_off;   // elements
	uint out_off;  // elements
	uint pad;
} pc;

layout(set = 0, binding = 0, std430) readonly restrict buffer BufIn { float src[]; };
layout(set = 0, binding = 1, std430) writeonly restrict buffer BufOut { float dst[]; };

float apply(float x)
{
	switch (OP) {
	case OP_RELU:
		return max(x, 0.0);
	default:
		return x;
	}
}

void main()
{
	const uint threads = gl_NumWorkGroups.x * gl_NumWorkGroups.y * gl_WorkGroupSize.x;
	const uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
	for (uint i = group * gl_WorkGroupSize.x + gl_LocalInvocationID.x; i < pc.count; i += threads)
		dst[pc.out_off + i] = apply(src[pc.in_off + i]);
}
