// Depthwise convolution for CPU devices (lavapipe): feature groups == C ==
// F (channel multiplier 1), C % 4 == 0. Same semantics and push constants
// as conv.comp: y[n, oh, ow, c] = bias[c] + sum_{kh, kw} x[n, src_h, src_w, c]
// * w[kh, kw, 0, c]. x and w through RGBA32F texel buffers (4 channels per
// texel). Each invocation computes TM pixels (rows ty + i * WG_Y) of one
// texel of channels (gl_GlobalInvocationID.x).
//
// F16 (-DF16=1): all four tensors f16. x and w need no change here: the
// host binds them as RGBA16F texel buffers, whose fetches widen to f32
// (offsets and indices stay in elements and texels of 4 elements); bias
// and y are f16vec4 storage buffers, rounded once at the store.
// variant: conv_dw_texel_f16 F16=1
#version 450
#extension GL_EXT_control_flow_attributes : enable
#ifdef F16
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#define ELEM4 f16vec4
#define WIDEN(v) vec4(v)
#define NARROW(v) f16vec4(v)
#else
#define ELEM4 vec4
#define WIDEN(v) (v)
#define NARROW(v) (v)
#endif

layout(local_size_x_id = 0, local_size_y_id = 1, local_size_z = 1) in;
layout(constant_id = 2) const uint TM = 4;

const uint WG_Y = gl_WorkGroupSize.y;
const uint BM = WG_Y * TM;

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

layout(set = 0, binding = 0) uniform samplerBuffer x4;
layout(set = 0, binding = 1) uniform samplerBuffer w4;
layout(set = 0, binding = 2, std430) readonly restrict buffer BufB { ELEM4 bias[]; };
layout(set = 0, binding = 3, std430) writeonly restrict buffer BufY { ELEM4 y[]; };

int src(int p, uint size, uint ld, uint lo, bool circular)
{
	int q = p - int(lo);
	if (circular)
		return (q + int(size)) % int(size);
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
	const uint CV = pc.C / 4;
	const uint q = min(gl_GlobalInvocationID.x, CV - 1u);
	const uint r0 = gl_WorkGroupID.y * BM + gl_LocalInvocationID.y;
	const bool circular = (pc.flags & CONV_FLAG_CIRCULAR) != 0u;

	int ih0[TM], iw0[TM], nrow[TM];
	[[unroll]] for (uint i = 0; i < TM; i++) {
		const uint m = pc.m_base + min(r0 + i * WG_Y, pc.m_count - 1u);
		const uint t = m / pc.OW;
		ih0[i] = int((t % pc.OH) * pc.sh);
		iw0[i] = int((m % pc.OW) * pc.sw);
		nrow[i] = int((t / pc.OH) * pc.H);
	}
	vec4 acc[TM];
	[[unroll]] for (uint i = 0; i < TM; i++)
		acc[i] = vec4(0.0);

	const int xq = int(pc.x_off / 4 + q);
	for (uint kh = 0; kh < pc.KH; kh++) {
		for (uint kw = 0; kw < pc.KW; kw++) {
			const vec4 wv = texelFetch(w4, int(pc.w_off / 4 + (kh * pc.KW + kw) * CV + q));
			[[unroll]] for (uint i = 0; i < TM; i++) {
				const int ih = src(ih0[i] + int(kh * pc.dh), pc.H, pc.lh, pc.pt, circular);
				const int iw = src(iw0[i] + int(kw * pc.dw), pc.W, pc.lw, pc.pl, circular);
				const bool valid = ih >= 0 && iw >= 0;
				const int xi = valid ? xq + ((nrow[i] + ih) * int(pc.W) + iw) * int(CV) : xq;
				acc[i] = fma(mix(vec4(0.0), texelFetch(x4, xi), bvec4(valid)), wv, acc[i]);
			}
		}
	}

	if (gl_GlobalInvocationID.x >= CV)
		return;
	const vec4 bv = (pc.flags & CONV_FLAG_BIAS) != 0u ? WIDEN(bias[pc.b_off / 4 + q]) : vec4(0.0);
	[[unroll]] for (uint i = 0; i < TM; i++) {
		const uint r = r0 + i * WG_Y;
		if (r < pc.m_count)
			y[pc.y_off / 4 + r * CV + q] = NARROW(acc[i] + bv);
	}
}
