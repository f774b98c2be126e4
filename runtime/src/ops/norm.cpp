// LayerNorm, RMSNorm, GroupNorm and BatchNorm (inference and training) on
// shaders/norm.comp, which sees each as x[NB, S, G, CG] with statistics per
// (nb, g) segment (see the shader's header). f16 ops (every float operand
// f16, as the rules require) run the *_f16 modules: f16 loads and stores,
// the f32 arithmetic, one rounding on store.
#include <algorithm>
#include <bit>
#include <cstring>
#include <string>

#include "device.hpp"
#include "f16.hpp"
#include "kernel.hpp"
#include "pipeline_cache.hpp"
#include "vk_util.hpp"

namespace flaxdrm::rt {

namespace {

// Must match MODE_* in shaders/norm.comp.
enum NormMode : uint32_t {
	MODE_LAYER = 0,
	MODE_RMS = 1,
	MODE_BN_INFER = 2,
	MODE_BN_TRAIN = 3,
};

struct NormPush {
	uint32_t NB, S, G, CG;
	uint32_t flags;
	float eps;
	float momentum;
	uint32_t x_off, y_off, scale_off, bias_off, mean_off, var_off, nmean_off, nvar_off;
	uint32_t groups_x;
};
static_assert(sizeof(NormPush) == 64);

float attr_float(uint32_t bits)
{
	return std::bit_cast<float>(bits);
}

struct Layout {
	NormMode mode;
	uint64_t NB, S, G, CG;
	uint32_t es = 4;                                // bytes per element: 2 for f16
	int scale = -1, bias = -1, mean = -1, var = -1; // input positions
	uint64_t segment_row_bytes() const { return S * G * CG * es; } // one nb
};

Layout layout_of(const OpContext& ctx)
{
	const drm_flaxdrm_tensor& x = *ctx.inputs[0].desc;
	const uint32_t opcode = ctx.op.opcode;
	const uint32_t flags = ctx.op.attrs[2];
	const uint64_t total = ctx.inputs[0].elements();
	const uint64_t C = x.dims[x.rank - 1];
	Layout l{};
	l.es = x.dtype == FLAXDRM_DTYPE_F16 ? 2 : 4;
	int next = 1;
	if (opcode == FLAXDRM_OP_BATCH_NORM) {
		l.mode = (flags & FLAXDRM_NORM_TRAINING) ? MODE_BN_TRAIN : MODE_BN_INFER;
		l.NB = 1;
		l.S = total / C;
		l.G = C;
		l.CG = 1;
		l.mean = next++;
		l.var = next++;
	} else if (opcode == FLAXDRM_OP_GROUP_NORM) {
		l.mode = MODE_LAYER;
		l.NB = x.dims[0];
		l.G = ctx.op.attrs[1];
		l.CG = C / l.G;
		l.S = total / (l.NB * C);
	} else {
		l.mode = opcode == FLAXDRM_OP_RMS_NORM ? MODE_RMS : MODE_LAYER;
		const uint32_t axes = ctx.op.attrs[1] ? ctx.op.attrs[1] : 1;
		uint64_t n = 1;
		for (uint32_t i = x.rank - axes; i < x.rank; i++)
			n *= x.dims[i];
		l.NB = total / n;
		l.S = n / C;
		l.G = 1;
		l.CG = C;
	}
	if (flags & FLAXDRM_NORM_SCALE)
		l.scale = next++;
	if (flags & FLAXDRM_NORM_BIAS)
		l.bias = next++;
	return l;
}

class NormKernel final : public OpKernel {
public:
	void check(const OpContext& ctx) const override
	{
		require_f16_device(ctx);
		const Layout l = layout_of(ctx);
		const uint64_t limit = max_binding_bytes(ctx.device) - 256;
		if (l.segment_row_bytes() > limit)
			fail(-EINVAL, ctx.where() + ": tensor " + std::to_string(ctx.inputs[0].index) +
					      " has statistics over more elements than this device can bind");
		const uint64_t segs = (limit / l.segment_row_bytes()) * l.G;
		if (std::min(segs, l.NB * l.G) > uint64_t(ctx.device.limits().maxComputeWorkGroupCount[0]) *
							 ctx.device.limits().maxComputeWorkGroupCount[1])
			fail(-EINVAL, ctx.where() + ": too many segments for this device's grid");
	}

	void record(OpContext& ctx) const override
	{
		const Layout l = layout_of(ctx);
		const TensorView& x = ctx.inputs[0];
		const TensorView& y = ctx.outputs[0];
		const bool cpu = ctx.device.cpu_kernels();
		const uint64_t limit = max_binding_bytes(ctx.device) - 256;
		const uint64_t row = l.segment_row_bytes();
		const uint64_t nb_chunk = std::max<uint64_t>(std::min<uint64_t>(l.NB, limit / row), 1);
		const uint64_t max_texels = ctx.device.limits().maxTexelBufferElements;
		const auto& lim = ctx.device.limits();
		const uint32_t es = l.es;
		const bool f16 = es == 2;

		for (uint64_t nb0 = 0; nb0 < l.NB; nb0 += nb_chunk) {
			const uint64_t nbs = std::min(nb_chunk, l.NB - nb0);
			const bool texel = cpu && nbs * row / es <= max_texels;

			NormPush pc{};
			pc.NB = uint32_t(nbs);
			pc.S = uint32_t(l.S);
			pc.G = uint32_t(l.G);
			pc.CG = uint32_t(l.CG);
			pc.flags = (l.scale >= 0 ? 1u : 0u) | (l.bias >= 0 ? 2u : 0u);
			pc.eps = attr_float(ctx.op.attrs[0]);
			pc.momentum = l.mode == MODE_BN_TRAIN ? attr_float(ctx.op.attrs[1]) : 0.0f;

			const BufferRange xr = x.range(nb0 * row, (nb0 + nbs) * row, es, &pc.x_off, ctx.device);
			const BufferRange yr = y.range(nb0 * row, (nb0 + nbs) * row, es, &pc.y_off, ctx.device);
			auto param = [&](int pos, uint32_t* off, const BufferRange& fallback) {
				if (pos < 0) {
					*off = 0;
					return fallback;
				}
				const TensorView& t = ctx.inputs[size_t(pos)];
				return t.range(0, t.size, es, off, ctx.device);
			};
			BufferRange b[8];
			b[0] = xr;
			b[1] = yr;
			b[2] = param(l.scale, &pc.scale_off, texel ? xr : yr);
			b[3] = param(l.bias, &pc.bias_off, texel ? xr : yr);
			b[4] = param(l.mean, &pc.mean_off, yr);
			b[5] = param(l.var, &pc.var_off, yr);
			if (l.mode == MODE_BN_TRAIN) {
				b[6] = ctx.outputs[1].range(0, ctx.outputs[1].size, es, &pc.nmean_off, ctx.device);
				b[7] = ctx.outputs[2].range(0, ctx.outputs[2].size, es, &pc.nvar_off, ctx.device);
			} else {
				b[6] = b[7] = yr;
			}
			// vec4 units: C / G and every offset of x, y, scale, bias
			// multiples of 4 (then all their sizes are too). BatchNorm
			// (CG = 1) with C % 4 == 0 takes 4 channels a unit, each
			// its own statistics (PER_CHANNEL): a quarter of the fetches.
			// (Offsets are in elements, so this holds for f16's 8-byte
			// f16vec4s too.)
			const bool offsets4 = pc.x_off % 4 == 0 && pc.y_off % 4 == 0 && pc.scale_off % 4 == 0 &&
					      pc.bias_off % 4 == 0;
			const bool per_channel = l.CG == 1 && l.NB == 1 && l.G % 4 == 0 && offsets4 &&
						 (l.mode == MODE_BN_TRAIN || l.mode == MODE_BN_INFER);
			const bool vec4 = (l.CG % 4 == 0 || per_channel) && offsets4;
			if (per_channel) {
				pc.G = uint32_t(l.G / 4);
				pc.CG = 4;
			}
			const uint64_t segs = nbs * pc.G;
			const uint64_t seg_size = l.S * pc.CG;
			// CPU: lanes in step with contiguous units beat workgroups
			// with shared-memory trees (BatchNorm 8x56x56x64 on
			// lavapipe: 2 workgroups of 8 lanes 5-6 ms of CPU time per
			// call, 16 workgroups of 64: 9-10 ms).
			const bool lane_mode = cpu ? segs >= (per_channel ? 8 : 32) : (segs >= 4096 && seg_size <= 512);
			const uint32_t wg = lane_mode ? (cpu ? 8 : 64) : (cpu ? 64 : 256);
			VkDescriptorType types[8];
			for (int i = 0; i < 8; i++)
				types[i] = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
			if (texel) {
				for (int i : {0, 2, 3}) {
					types[i] = b[i].type = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
					if (f16)
						b[i].format = vec4 ? VK_FORMAT_R16G16B16A16_SFLOAT : VK_FORMAT_R16_SFLOAT;
					else
						b[i].format = vec4 ? VK_FORMAT_R32G32B32A32_SFLOAT : VK_FORMAT_R32_SFLOAT;
					if (vec4) // whole texels of 4 elements
						b[i].range &= ~VkDeviceSize(4 * es - 1);
				}
			}

			const uint64_t groups = lane_mode ? (segs + wg - 1) / wg : segs;
			const uint64_t gx = std::min<uint64_t>(groups, lim.maxComputeWorkGroupCount[0]);
			const uint64_t gy = (groups + gx - 1) / gx;
			pc.groups_x = uint32_t(gx);
			const uint32_t spec[] = {wg, uint32_t(l.mode), lane_mode ? 1u : 0u, vec4 ? 1u : 0u,
						 per_channel ? 1u : 0u};
			const std::string module = std::string(texel ? "norm_texel" : "norm") + (f16 ? "_f16" : "");
			const Pipeline& p = ctx.pipelines.get(module, spec, types, sizeof(pc));
			ctx.recorder.dispatch(p, b, &pc, sizeof(pc), uint32_t(gx), uint32_t(gy));
		}
	}
};

} // namespace

void flaxdrm_register_ops_norm(KernelRegistry& registry)
{
	registry.add(FLAXDRM_OP_LAYER_NORM, std::make_unique<NormKernel>());
	registry.add(FLAXDRM_OP_RMS_NORM, std::make_unique<NormKernel>());
	registry.add(FLAXDRM_OP_GROUP_NORM, std::make_unique<NormKernel>());
	registry.add(FLAXDRM_OP_BATCH_NORM, std::make_unique<NormKernel>());
}

} // namespace flaxdrm::rt
