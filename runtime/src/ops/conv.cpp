// Conv and ConvTranspose (FLAXDRM_OP_CONV, lax.conv_general_dilated with
// NHWC input and HWIO kernel): strides, explicit zero or circular padding,
// input (lhs) dilation, kernel (rhs) dilation, feature groups.
//
// Three shaders: conv_texel.comp, an implicit GEMM with texel-buffer reads
// for CPU devices (needs C/G and F/G multiples of 4); conv_dw_texel.comp,
// depthwise (groups == C == F, C % 4 == 0) on CPU devices; and conv.comp,
// the portable storage-buffer path for everything else. Output pixels are
// split into several dispatches when the grid or the y binding would be
// too large; x and the kernel are bound whole.
//
// f16 (all operands f16, as the rules require): each shader's _f16 variant,
// the same arithmetic in f32 with one rounding at the store. On the texel
// paths x and w are RGBA16F views (the fetch widens them to f32), so the
// tuned f32 loops run unchanged; bias and y are f16vec4 storage buffers.
#include <algorithm>
#include <string>

#include "device.hpp"
#include "f16.hpp"
#include "kernel.hpp"
#include "pipeline_cache.hpp"
#include "vk_util.hpp"

namespace flaxdrm::rt {

namespace {

constexpr uint32_t kFlagBias = 1;
constexpr uint32_t kFlagCircular = 2;

// Must match the push constants of conv.comp and conv_texel.comp.
struct ConvPush {
	uint32_t N, H, W, C;
	uint32_t OH, OW, F, G;
	uint32_t KH, KW, sh, sw;
	uint32_t lh, lw, dh, dw;
	uint32_t pt, pl, flags, m_base;
	uint32_t m_count, x_off, w_off, b_off;
	uint32_t y_off, pad0, pad1, pad2;
};
static_assert(sizeof(ConvPush) == 112);

struct Config {
	uint32_t wg_x, wg_y, tm, tn; // texel: tm x tn block; generic: tn = TF, tm = 1
	uint32_t bm() const { return wg_y * tm; }
};

uint32_t pow2_at_least(uint64_t n, uint32_t cap)
{
	uint32_t p = 1;
	while (p < n && p < cap)
		p *= 2;
	return p;
}

// Texel path: 32 invocations, each a 16 x 8 block (16 pixels, 2 texels of
// features); narrow groups get fewer columns of invocations. Measured on
// lavapipe 22.3 (2 loaded cores, Zen 4; process CPU time per call) for
// 56x56x64 -> 64 3x3, with the fetches of a step grouped before the FMAs:
// 16 x 8 blocks 10.3 ms, 12 or 24 pixels the same, 8 x 8 11.3 ms (the
// earlier interleaved loop: 13.6), 32 x 8 11.6 ms, 16 x 4 or 8 x 16 16 ms.
// 32 invocations keep 49 workgroups for the 2 llvmpipe threads at N = 1.
Config texel_config(uint32_t FgV)
{
	const uint32_t tnv = FgV >= 2 ? 2 : 1;
	const uint32_t wg_x = pow2_at_least((FgV + tnv - 1) / tnv, 8);
	return {wg_x, 32 / wg_x, 16, 4 * tnv};
}

// Depthwise texel path: each invocation 4 pixels of one texel of channels.
Config depthwise_config(uint32_t CV)
{
	const uint32_t wg_x = pow2_at_least(CV, 16);
	return {wg_x, 64 / wg_x, 4, 4};
}

Config generic_config(uint32_t G, uint32_t Fg)
{
	const uint32_t tf = std::min<uint32_t>(Fg, 4); // depthwise: 1
	const uint32_t wg_x = pow2_at_least(uint64_t(G) * ((Fg + tf - 1) / tf), 8);
	return {wg_x, 64 / wg_x, 1, tf};
}

// Bytes per element: every operand has the op's one dtype.
uint32_t elem_size(const OpContext& ctx)
{
	return ctx.inputs[0].desc->dtype == FLAXDRM_DTYPE_F16 ? 2 : 4;
}

ConvPush push_of(const OpContext& ctx)
{
	const drm_flaxdrm_tensor& x = *ctx.inputs[0].desc;
	const drm_flaxdrm_tensor& w = *ctx.inputs[1].desc;
	const drm_flaxdrm_tensor& y = *ctx.outputs[0].desc;
	const uint32_t* a = ctx.op.attrs;
	ConvPush pc{};
	pc.N = x.dims[0], pc.H = x.dims[1], pc.W = x.dims[2], pc.C = x.dims[3];
	pc.OH = y.dims[1], pc.OW = y.dims[2], pc.F = y.dims[3], pc.G = a[6];
	pc.KH = w.dims[0], pc.KW = w.dims[1], pc.sh = a[0], pc.sw = a[1];
	pc.lh = a[2], pc.lw = a[3], pc.dh = a[4], pc.dw = a[5];
	pc.pt = a[8], pc.pl = a[10];
	pc.flags = (ctx.inputs.size() > 2 ? kFlagBias : 0) | (a[7] == FLAXDRM_PAD_CIRCULAR ? kFlagCircular : 0);
	return pc;
}

class ConvKernel final : public OpKernel {
public:
	void check(const OpContext& ctx) const override
	{
		require_f16_device(ctx);
		const ConvPush pc = push_of(ctx);
		const uint32_t es = elem_size(ctx);
		const uint64_t limit = max_binding_bytes(ctx.device);
		const auto& lim = ctx.device.limits();
		for (std::size_t i = 0; i < 2; i++)
			if (ctx.inputs[i].size > limit)
				fail(-EINVAL, ctx.where() + ": tensor " + std::to_string(ctx.inputs[i].index) +
						      " is larger than this device can bind");
		if (uint64_t(pc.F) * es + 256 > limit)
			fail(-EINVAL, ctx.where() + ": too many output features for this device");
		// The shaders index with 32-bit offsets (positions along the
		// padded axes included).
		const uint64_t span_h = uint64_t(pc.OH) * pc.sh + uint64_t(pc.KH) * pc.dh;
		const uint64_t span_w = uint64_t(pc.OW) * pc.sw + uint64_t(pc.KW) * pc.dw;
		const uint64_t pixels = uint64_t(pc.N) * pc.OH * pc.OW;
		if (span_h >= (1u << 31) || span_w >= (1u << 31) || pixels >= (1ull << 32))
			fail(-EINVAL, ctx.where() + ": output too large for this runtime");
		const uint64_t groups_x = uint64_t(pc.G) * ((pc.F / pc.G + 3) / 4);
		if (groups_x > lim.maxComputeWorkGroupCount[0])
			fail(-EINVAL, ctx.where() + ": too many feature groups for this device");
	}

	void record(OpContext& ctx) const override
	{
		ConvPush pc = push_of(ctx);
		const TensorView& x = ctx.inputs[0];
		const TensorView& w = ctx.inputs[1];
		const TensorView* bias = ctx.inputs.size() > 2 ? &ctx.inputs[2] : nullptr;
		const TensorView& y = ctx.outputs[0];
		const uint64_t limit = max_binding_bytes(ctx.device);
		const auto& lim = ctx.device.limits();
		const uint32_t Cg = pc.C / pc.G, Fg = pc.F / pc.G;
		const bool f16 = x.desc->dtype == FLAXDRM_DTYPE_F16;
		const uint32_t es = elem_size(ctx);
		// Module names: the f32 one, or its f16 variant.
		const auto module = [f16](const char* name) { return std::string(name) + (f16 ? "_f16" : ""); };

		const BufferRange bind_x = x.range(0, x.size, es, &pc.x_off, ctx.device);
		const BufferRange bind_w = w.range(0, w.size, es, &pc.w_off, ctx.device);
		const BufferRange bind_b = bias ? bias->range(0, bias->size, es, &pc.b_off, ctx.device) : bind_w;
		const uint64_t max_texels = lim.maxTexelBufferElements;
		const uint64_t texel_bytes = 4 * es; // one RGBA texel: 4 elements
		// y's per-dispatch offsets stay multiples of 4 elements too: the
		// tensor is placed 64-byte aligned and each slice starts at a
		// multiple of F (F % 4 == 0 on these paths) elements.
		const bool texel = ctx.device.cpu_kernels() && Cg % 4 == 0 && Fg % 4 == 0 && pc.x_off % 4 == 0 &&
				   pc.w_off % 4 == 0 && pc.b_off % 4 == 0 && bind_x.range / texel_bytes <= max_texels &&
				   bind_w.range / texel_bytes <= max_texels;
		const bool depthwise = ctx.device.cpu_kernels() && pc.G == pc.C && pc.F == pc.C && pc.C % 4 == 0 &&
				       pc.x_off % 4 == 0 && pc.w_off % 4 == 0 && pc.b_off % 4 == 0 &&
				       bind_x.range / texel_bytes <= max_texels && bind_w.range / texel_bytes <= max_texels;
		const VkFormat texel_format = f16 ? VK_FORMAT_R16G16B16A16_SFLOAT : VK_FORMAT_R32G32B32A32_SFLOAT;
		const Config cfg = depthwise ? depthwise_config(pc.C / 4)
				   : texel   ? texel_config(Fg / 4)
					     : generic_config(pc.G, Fg);
		const uint32_t spec[] = {cfg.wg_x, cfg.wg_y, cfg.tm, cfg.tn};
		uint32_t groups_x;
		const Pipeline* p;
		BufferRange bx = bind_x, bw = bind_w;
		if (depthwise) {
			bx.type = bw.type = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
			bx.format = bw.format = texel_format;
			const VkDescriptorType types[] = {
				VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER,
				VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER};
			const uint32_t dspec[] = {cfg.wg_x, cfg.wg_y, cfg.tm};
			p = &ctx.pipelines.get(module("conv_dw_texel"), dspec, types, sizeof(ConvPush));
			groups_x = (pc.C / 4 + cfg.wg_x - 1) / cfg.wg_x;
		} else if (texel) {
			bx.type = bw.type = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
			bx.format = bw.format = texel_format;
			const VkDescriptorType types[] = {
				VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER,
				VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER};
			p = &ctx.pipelines.get(module("conv_texel"), spec, types, sizeof(ConvPush));
			const uint32_t cols = cfg.wg_x * cfg.tn / 4;
			groups_x = pc.G * ((Fg / 4 + cols - 1) / cols);
		} else {
			const uint32_t gspec[] = {cfg.wg_x, cfg.wg_y, cfg.tn};
			p = &ctx.pipelines.get(module("conv"), gspec, 4, sizeof(ConvPush));
			const uint64_t blocks = uint64_t(pc.G) * ((Fg + cfg.tn - 1) / cfg.tn);
			groups_x = uint32_t((blocks + cfg.wg_x - 1) / cfg.wg_x);
		}

		// Pixels per dispatch: the y slice bindable, the grid in range.
		const uint64_t M = uint64_t(pc.N) * pc.OH * pc.OW;
		const uint64_t bm = cfg.bm();
		uint64_t rows = std::min<uint64_t>((limit - 256) / (uint64_t(pc.F) * es),
						   uint64_t(lim.maxComputeWorkGroupCount[1]) * bm);
		rows = rows >= M ? M : std::max<uint64_t>(rows / bm * bm, 1);
		for (uint64_t m0 = 0; m0 < M; m0 += rows) {
			const uint64_t mr = std::min(rows, M - m0);
			pc.m_base = uint32_t(m0);
			pc.m_count = uint32_t(mr);
			const BufferRange bind_y =
				y.range(m0 * pc.F * es, (m0 + mr) * pc.F * es, es, &pc.y_off, ctx.device);
			const BufferRange bindings[] = {bx, bw, bind_b, bind_y};
			ctx.recorder.dispatch(*p, bindings, &pc, sizeof(pc), groups_x, uint32_t((mr + bm - 1) / bm));
		}
	}
};

} // namespace

void flaxdrm_register_ops_conv(KernelRegistry& registry)
{
	registry.add(FLAXDRM_OP_CONV, std::make_unique<ConvKernel>());
}

} // namespace flaxdrm::rt
