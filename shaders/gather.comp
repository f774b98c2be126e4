// Embed lookup as jnp.take(table, idx, axis=0): y[i, f] = table[r, f] with
// r = idx[i], plus rows when idx[i] is in [-rows, 0); NaN outside [-rows,
// rows) (JAX's fill mode). One invocation per
// output element, grid-stride over pc.count elements from pc.base (y is
// bound from element base on; idx and table whole). Offsets in elements.
//
// gather_f16 (-DF16=1): table and y are f16, moved as 16-bit integers (so
// bits, NaN payloads included, are copied exactly; 16-bit storage, no f16
// arithmetic); the fill is f16's quiet NaN 0x7e00. idx stays I32.
// variant: gather_f16 F16=1
#version 450

#ifdef F16
#extension GL_EXT_shader_16bit_storage : require
#define ELEM uint16_t
#define FILL 0x7e00u
#define LOAD(i) uint(table[i])
#define STORE(i, v) y[i] = uint16_t(v)
#else
#define ELEM float
#define FILL 0x7fc00000u
#define LOAD(i) floatBitsToUint(table[i])
#define STORE(i, v) y[i] = uintBitsToFloat(v)
#endif

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;

layout(push_constant) uniform Params {
	uint rows, F, base, count;
	uint idx_off, t_off, y_off, pad0;
} pc;

layout(set = 0, binding = 0, std430) readonly restrict buffer BufIdx { int idx[]; };
layout(set = 0, binding = 1, std430) readonly restrict buffer BufT { ELEM table[]; };
layout(set = 0, binding = 2, std430) writeonly restrict buffer BufY { ELEM y[]; };

void main()
{
	const uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
	for (uint i = gl_GlobalInvocationID.x; i < pc.count; i += stride) {
		const uint e = pc.base + i;
		int r = idx[pc.idx_off + e / pc.F];
		// the bits as a uint: 16-bit values only in memory (no Int16)
		uint v = FILL;
		// rows <= 2^31 - 1 (a tensor dim fits the table), so no overflow
		if (r < 0 && uint(-(r + 1)) < pc.rows)
			r += int(pc.rows);
		if (r >= 0 && uint(r) < pc.rows)
			v = LOAD(pc.t_off + uint(r) * pc.F + e % pc.F);
		STORE(pc.y_off + i, v);
	}
}
