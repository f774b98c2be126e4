// Pooling over x[N, H, W, C] (lax.reduce_window as Flax's avg_pool and
// max_pool use it): window (wh, ww), strides, explicit padding.
//   max: padding is -inf; NaN propagates (as lax.max).
//   avg: window sum / (wh * ww) with count_include_pad, else / the number
//        of window positions inside the input (Flax's count_include_pad).
// One invocation per output element, grid-stride over pc.count elements
// from pc.base (y is bound from element base on; x whole). Offsets in
// elements.
//
// F16 (-DF16=1): x and y f16; loads widen to f32, the window is reduced
// in f32 as above and rounded once to f16 at the store.
// variant: pool_f16 F16=1
#version 450
#extension GL_GOOGLE_include_directive : require
#include "float_storage.glsl"

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;

#define POOL_FLAG_MAX 1u
#define POOL_FLAG_INCLUDE_PAD 2u

layout(push_constant) uniform Params {
	uint N, H, W, C;
	uint OH, OW, wh, ww;
	uint sh, sw, pt, pl;
	uint flags, base, count, x_off;
	uint y_off, pad0, pad1, pad2;
} pc;

layout(set = 0, binding = 0, std430) readonly restrict buffer BufX { ELEM x[]; };
layout(set = 0, binding = 1, std430) writeonly restrict buffer BufY { ELEM y[]; };

void main()
{
	const bool is_max = (pc.flags & POOL_FLAG_MAX) != 0u;
	const uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
	for (uint i = gl_GlobalInvocationID.x; i < pc.count; i += stride) {
		const uint e = pc.base + i;
		const uint c = e % pc.C;
		uint t = e / pc.C;
		const uint ow = t % pc.OW;
		t /= pc.OW;
		const uint oh = t % pc.OH;
		const uint n = t / pc.OH;
		const int h0 = int(oh * pc.sh) - int(pc.pt);
		const int w0 = int(ow * pc.sw) - int(pc.pl);
		const int h_lo = max(h0, 0), h_hi = min(h0 + int(pc.wh), int(pc.H));
		const int w_lo = max(w0, 0), w_hi = min(w0 + int(pc.ww), int(pc.W));
		float acc = is_max ? uintBitsToFloat(0xff800000u) : 0.0;
		for (int ih = h_lo; ih < h_hi; ih++) {
			const uint row = pc.x_off + ((n * pc.H + uint(ih)) * pc.W) * pc.C + c;
			for (int iw = w_lo; iw < w_hi; iw++) {
				const float v = float(x[row + uint(iw) * pc.C]);
				if (is_max)
					acc = (isnan(v) || v > acc) ? v : acc;
				else
					acc += v;
			}
		}
		if (!is_max) {
			const bool include_pad = (pc.flags & POOL_FLAG_INCLUDE_PAD) != 0u;
			const int cnt = include_pad ? int(pc.wh * pc.ww) : max(h_hi - h_lo, 0) * max(w_hi - w_lo, 0);
			acc /= float(cnt);
		}
		y[pc.y_off + i] = ELEM(acc);
	}
}
