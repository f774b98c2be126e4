// Convolution as lax.conv_general_dilated, NHWC input, HWIO kernel,
// portable storage-buffer path (any shape; see conv_texel.comp for CPU
// devices):
//   y[n, oh, ow, f] = bias[f] + sum_{kh, kw, c < C/G}
//       x[n, src_h(oh * sh + kh * dh), src_w(ow * sw + kw * dw), g * C/G + c]
//       * w[kh, kw, c, f],  g = f / (F/G)
// where src maps a position of the padded, input-dilated axis back to the
// input: zero padding and dilation holes contribute nothing; circular
// padding wraps around (input dilation is then 1, pads <= the input size).
//
// One invocation computes TF consecutive features of one output pixel
// (within a group). gl_GlobalInvocationID.x = g * FB + feature block,
// FB = ceil((F/G) / TF); gl_GlobalInvocationID.y = output pixel, relative
// to pc.m_base (pixels are n * OH * OW + oh * OW + ow). y is bound from
// pixel m_base on; x, w and bias whole. Offsets are in elements.
//
// F16 (-DF16=1): all four tensors f16; loads widen to f32, products and
// sums in f32 as above, one rounding to f16 at the store.
// variant: conv_f16 F16=1
#version 450
#extension GL_EXT_control_flow_attributes : enable
#extension GL_GOOGLE_include_directive : require
#include "float_storage.glsl"

layout(local_size_x_id = 0, local_size_y_id = 1, local_size_z = 1) in;
layout(constant_id = 2) const uint TF = 4;

#define CONV_FLAG_BIAS 1u
#define CONV_FLAG_CIRCULAR 2u

layout(push_constant) uniform Params {
	uint N, H, W, C;
	uint OH, OW, F, G;
	uint KH, KW, sh, sw;
	uint lh, lw, dh, dw;
	uint pt, pl, flags, m_base;
	uint m_count, x_off, w_off, b_off;
	uint y_off, pad0, pad1, pad2;
} pc;

layout(set = 0, binding = 0, std430) readonly restrict buffer BufX { ELEM x[]; };
layout(set = 0, binding = 1, std430) readonly restrict buffer BufW { ELEM w[]; };
layout(set = 0, binding = 2, std430) readonly restrict buffer BufB { ELEM bias[]; };
layout(set = 0, binding = 3, std430) writeonly restrict buffer BufY { ELEM y[]; };

// Input index of position p of the padded, dilated axis, or -1.
int src(int p, uint size, uint ld, uint lo, bool circular)
{
	int q = p - int(lo);
	if (circular)
		return (q + int(size)) % int(size);  // q >= -lo >= -size
	if (q < 0)
		return -1;
	if (ld != 1u) {
		if (uint(q) % ld != 0u)
			return -1;
		q = int(uint(q) / ld);
	}
	return q < int(size) ? q : -1;
}

void main()
{
	const uint Cg = pc.C / pc.G, Fg = pc.F / pc.G;
	const uint FB = (Fg + TF - 1) / TF;
	const uint fx = gl_GlobalInvocationID.x;
	const uint mi = gl_GlobalInvocationID.y;
	if (fx >= pc.G * FB || mi >= pc.m_count)
		return;
	const uint g = fx / FB;
	const uint fl = (fx % FB) * TF;           // first feature within the group
	const uint f0 = g * Fg + fl;
	const uint m = pc.m_base + mi;
	const uint ow = m % pc.OW;
	const uint oh = (m / pc.OW) % pc.OH;
	const uint n = m / (pc.OW * pc.OH);
	const bool circular = (pc.flags & CONV_FLAG_CIRCULAR) != 0u;

	uint fcol[TF];
	[[unroll]] for (uint t = 0; t < TF; t++)
		fcol[t] = g * Fg + min(fl + t, Fg - 1u);

	float acc[TF];
	[[unroll]] for (uint t = 0; t < TF; t++)
		acc[t] = 0.0;

	for (uint kh = 0; kh < pc.KH; kh++) {
		const int ih = src(int(oh * pc.sh + kh * pc.dh), pc.H, pc.lh, pc.pt, circular);
		if (ih < 0)
			continue;
		for (uint kw = 0; kw < pc.KW; kw++) {
			const int iw = src(int(ow * pc.sw + kw * pc.dw), pc.W, pc.lw, pc.pl, circular);
			if (iw < 0)
				continue;
			const uint xb = pc.x_off + ((n * pc.H + uint(ih)) * pc.W + uint(iw)) * pc.C + g * Cg;
			const uint wb = pc.w_off + (kh * pc.KW + kw) * Cg * pc.F;
			for (uint c = 0; c < Cg; c++) {
				const float xv = float(x[xb + c]);
				[[unroll]] for (uint t = 0; t < TF; t++)
					acc[t] = fma(xv, float(w[wb + c * pc.F + fcol[t]]), acc[t]);
			}
		}
	}

	const bool has_bias = (pc.flags & CONV_FLAG_BIAS) != 0u;
	[[unroll]] for (uint t = 0; t < TF; t++) {
		if (fl + t >= Fg)
			break;
		const float bv = has_bias ? float(bias[pc.b_off + f0 + t]) : 0.0;
		y[pc.y_off + mi * pc.F + f0 + t] = ELEM(acc[t] + bv);
	}
}
