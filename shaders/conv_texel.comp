// Convolution for CPU devices (lavapipe): an implicit GEMM on the design of
// gemm.comp's TEXEL variant. Same semantics and push constants as conv.comp.
//
// Per group g, Y_g[M, F/G] = A_g[M, KH*KW*C/G] @ W_g, where row m of A_g is
// the receptive field of output pixel m (the im2col row, never stored: each
// (kh, kw) tap is a contiguous run of C/G input channels, or all zeros for
// padding) and W_g is the kernel as it lies ([KH, KW, C/G, F], columns of
// group g). x and w are read through RGBA32F texel buffers (vector gathers
// on lavapipe, where storage-buffer loads are per-lane loops), so this
// needs C/G % 4 == 0, F/G % 4 == 0 and x, w, bias, y offsets % 4 == 0.
//
// Each invocation keeps a TM x TN register block: rows ty + i * WG_Y,
// 4-wide feature groups tx + j * WG_X. gl_WorkGroupID.x = g * FBLK + feature
// block, gl_WorkGroupID.y = block of BM pixels from pc.m_base.
//
// F16 (-DF16=1): all four tensors f16. x and w need no change here: the
// host binds them as RGBA16F texel buffers, whose fetches widen to f32
// (offsets and indices stay in elements and texels of 4 elements); bias
// and y are f16vec4 storage buffers, rounded once at the store.
// variant: conv_texel_f16 F16=1
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
layout(constant_id = 2) const uint TM = 16; // pixels per invocation
layout(constant_id = 3) const uint TN = 8;  // features per invocation, multiple of 4

const uint WG_X = gl_WorkGroupSize.x;
const uint WG_Y = gl_WorkGroupSize.y;
const uint BM = WG_Y * TM;
const uint TNV = TN / 4;

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
	const uint CV = pc.C / 4, FV = pc.F / 4;
	const uint CgV = CV / pc.G, FgV = FV / pc.G;
	const uint FBLK = (FgV + WG_X * TNV - 1) / (WG_X * TNV);
	const uint tx = gl_LocalInvocationID.x;
	const uint ty = gl_LocalInvocationID.y;
	const uint g = gl_WorkGroupID.x / FBLK;
	const uint q0 = (gl_WorkGroupID.x % FBLK) * WG_X * TNV + tx;  // feature texel in the group
	const uint r0 = gl_WorkGroupID.y * BM + ty;                    // pixel relative to m_base
	const bool circular = (pc.flags & CONV_FLAG_CIRCULAR) != 0u;

	// Output pixels of this invocation (clamped; stores are guarded).
	int ih0[TM], iw0[TM], nrow[TM];
	[[unroll]] for (uint i = 0; i < TM; i++) {
		const uint m = pc.m_base + min(r0 + i * WG_Y, pc.m_count - 1u);
		const uint ow = m % pc.OW;
		const uint t = m / pc.OW;
		ih0[i] = int((t % pc.OH) * pc.sh);
		iw0[i] = int(ow * pc.sw);
		nrow[i] = int((t / pc.OH) * pc.H);
	}
	int bcol[TNV];
	[[unroll]] for (uint j = 0; j < TNV; j++)
		bcol[j] = int(pc.w_off / 4 + g * FgV + min(q0 + j * WG_X, FgV - 1u));

	vec4 acc[TM][TNV];
	[[unroll]] for (uint i = 0; i < TM; i++)
		[[unroll]] for (uint j = 0; j < TNV; j++)
			acc[i][j] = vec4(0.0);

	const int xg = int(pc.x_off / 4 + g * CgV);
	for (uint kh = 0; kh < pc.KH; kh++) {
		for (uint kw = 0; kw < pc.KW; kw++) {
			int xb[TM];
			bool valid[TM];
			[[unroll]] for (uint i = 0; i < TM; i++) {
				const int ih = src(ih0[i] + int(kh * pc.dh), pc.H, pc.lh, pc.pt, circular);
				const int iw = src(iw0[i] + int(kw * pc.dw), pc.W, pc.lw, pc.pl, circular);
				valid[i] = ih >= 0 && iw >= 0;
				xb[i] = valid[i] ? xg + ((nrow[i] + ih) * int(pc.W) + iw) * int(CV) : xg;
			}
			const int wb = int((kh * pc.KW + kw) * (pc.C / pc.G) * FV);
			// Each fetch is a call that clobbers every vector register:
			// all fetches of a step of 4 channels first, then the FMAs
			// block by block (each accumulator loaded and stored once a
			// step), as gemm_sg.comp. (Fetching each pixel's texel in
			// one lane and handing it on with subgroupBroadcast, TM / 8
			// fetches instead of TM, measured 1.6x slower on lavapipe.)
			for (uint cq = 0; cq < CgV; cq++) {
				vec4 av[TM];
				vec4 bv[4][TNV];
				[[unroll]] for (uint i = 0; i < TM; i++)
					av[i] = texelFetch(x4, xb[i] + int(cq));
				[[unroll]] for (uint kk = 0; kk < 4; kk++)
					[[unroll]] for (uint j = 0; j < TNV; j++)
						bv[kk][j] = texelFetch(w4, wb + int((4 * cq + kk) * FV) + bcol[j]);
				[[unroll]] for (uint i = 0; i < TM; i++) {
					const vec4 a = valid[i] ? av[i] : vec4(0.0);
					[[unroll]] for (uint j = 0; j < TNV; j++)
						[[unroll]] for (uint kk = 0; kk < 4; kk++)
							acc[i][j] = fma(vec4(a[kk]), bv[kk][j], acc[i][j]);
				}
			}
		}
	}

	const bool has_bias = (pc.flags & CONV_FLAG_BIAS) != 0u;
	[[unroll]] for (uint j = 0; j < TNV; j++) {
		const uint q = q0 + j * WG_X;
		if (q >= FgV)
			continue;
		const uint col = g * FgV + q;
		const vec4 bv = has_bias ? WIDEN(bias[pc.b_off / 4 + col]) : vec4(0.0);
		[[unroll]] for (uint i = 0; i < TM; i++) {
			const uint r = r0 + i * WG_Y;
			if (r < pc.m_count)
				y[pc.y_off / 4 + r * FV + col] = NARROW(acc[i][j] + bv);
		}
	}
}
