// Scaled dot-product attention (FLAXDRM_OP_ATTENTION): one fused dispatch
// of shaders/attention.glsl, a streaming-softmax kernel that never
// materialises the Lq x Lk logits. CPU devices read q/k/v/mask through
// texel buffers (attention_texel), others through storage buffers. f16
// q/k/v/output run on the *_f16 variants of both: f16 storage, f32
// arithmetic, each output rounded once; the mask stays i32.
#include <algorithm>
#include <bit>
#include <cmath>

#include "device.hpp"
#include "f16.hpp"
#include "kernel.hpp"
#include "pipeline_cache.hpp"
#include "vk_util.hpp"

namespace flaxdrm::rt {

namespace {

constexpr uint32_t kMaxHeadDim = 256; // D and Dv: registers per query row

struct AttnPush {
	uint32_t B, Lq, Lk, H;
	uint32_t D, Dv;
	uint32_t flags;
	float scale;
	uint32_t q_off, k_off, v_off, o_off, m_off;
	uint32_t m_sb, m_sh, m_sq, m_sk;
};

struct Config {
	uint32_t wg, tq, bk;
};

Config config_for(bool cpu, uint32_t D, uint32_t Dv)
{
	// CPU (lavapipe): a workgroup is one 8-lane vector, so many small
	// workgroups spread over the cores. Each key/value fetch (a gather)
	// serves TQ query rows: measured at L 512, 8 heads, D 64 on 2 cores,
	// TQ 8 runs in about half the time of TQ 2 (the rows spill to the
	// stack, which is still cheaper than the gathers).
	const uint32_t tq = D + Dv <= 128 ? 8 : D + Dv <= 256 ? 4 : 2;
	Config c = cpu ? Config{8, tq, 8} : Config{64, 1, 8};
	// The key block is unrolled: bound the code (BK * (D + Dv) / 4 * TQ
	// vec4 steps), which LLVM-based drivers compile in superlinear time
	// (lavapipe turns every storage-buffer read into a loop over the
	// lanes, hence the smaller budget for that variant there).
	const uint32_t per_key = ((D + 3) / 4 + (Dv + 3) / 4) * c.tq;
	const uint32_t budget = cpu ? 2048 : 256;
	while (c.bk > 1 && c.bk * per_key > budget)
		c.bk /= 2;
	return c;
}

class AttentionKernel final : public OpKernel {
public:
	void check(const OpContext& ctx) const override
	{
		require_f16_device(ctx);
		const drm_flaxdrm_tensor& q = *ctx.inputs[0].desc;
		const drm_flaxdrm_tensor& v = *ctx.inputs[2].desc;
		if (q.dims[3] > kMaxHeadDim || v.dims[3] > kMaxHeadDim)
			fail(-EINVAL, ctx.where() + ": head dimension above " + std::to_string(kMaxHeadDim) +
					      " is not supported by this runtime");
		const uint64_t limit = max_binding_bytes(ctx.device);
		for (const auto* list : {&ctx.inputs, &ctx.outputs})
			for (const TensorView& t : *list)
				if (t.size > limit - 256)
					fail(-EINVAL, ctx.where() + ": tensor " + std::to_string(t.index) +
							      " is larger than this device can bind");
		const auto& lim = ctx.device.limits();
		const Config cfg = config_for(ctx.device.cpu_kernels(), q.dims[3], v.dims[3]);
		const uint64_t gx = (uint64_t(q.dims[1]) + cfg.wg * cfg.tq - 1) / (cfg.wg * cfg.tq);
		if (gx > lim.maxComputeWorkGroupCount[0] || q.dims[2] > lim.maxComputeWorkGroupCount[1] ||
		    q.dims[0] > lim.maxComputeWorkGroupCount[2])
			fail(-EINVAL, ctx.where() + ": too many queries, heads or batches for this device's grid");
	}

	void record(OpContext& ctx) const override
	{
		const TensorView& q = ctx.inputs[0];
		const TensorView& k = ctx.inputs[1];
		const TensorView& v = ctx.inputs[2];
		const TensorView* mask = ctx.inputs.size() > 3 ? &ctx.inputs[3] : nullptr;
		const TensorView& o = ctx.outputs[0];
		const uint32_t flags = ctx.op.attrs[0];

		AttnPush pc{};
		pc.B = q.desc->dims[0];
		pc.Lq = q.desc->dims[1];
		pc.H = q.desc->dims[2];
		pc.D = q.desc->dims[3];
		pc.Lk = k.desc->dims[1];
		pc.Dv = v.desc->dims[3];
		pc.flags = flags & (FLAXDRM_ATTN_CAUSAL | FLAXDRM_ATTN_MASK);
		const float scale = std::bit_cast<float>(ctx.op.attrs[1]);
		pc.scale = scale != 0.0f ? scale : float(1.0 / std::sqrt(double(pc.D)));

		// The rules make q, k, v and o all f16 or all f32.
		const bool f16 = q.desc->dtype == FLAXDRM_DTYPE_F16;
		const uint32_t es = f16 ? 2 : 4; // bytes per q/k/v/o element
		BufferRange b[5];
		b[0] = q.range(0, q.size, es, &pc.q_off, ctx.device);
		b[1] = k.range(0, k.size, es, &pc.k_off, ctx.device);
		b[2] = v.range(0, v.size, es, &pc.v_off, ctx.device);
		b[4] = o.range(0, o.size, es, &pc.o_off, ctx.device);
		if (mask) {
			b[3] = mask->range(0, mask->size, 4, &pc.m_off, ctx.device);
			const uint32_t* md = mask->desc->dims;
			pc.m_sk = md[3] != 1 ? 1 : 0;
			pc.m_sq = md[2] != 1 ? md[3] : 0;
			pc.m_sh = md[1] != 1 ? md[2] * md[3] : 0;
			pc.m_sb = md[0] != 1 ? md[1] * md[2] * md[3] : 0;
		} else {
			b[3] = b[0];
		}

		const bool cpu = ctx.device.cpu_kernels();
		// f16: vec4 stores too (see shaders/attention.glsl)
		const bool vec = pc.D % 4 == 0 && pc.Dv % 4 == 0 && pc.q_off % 4 == 0 && pc.k_off % 4 == 0 &&
				 pc.v_off % 4 == 0 && (!f16 || pc.o_off % 4 == 0);
		const uint64_t max_texels = ctx.device.limits().maxTexelBufferElements;
		// Without a mask, binding 3 repeats q (never read): for f16 q an
		// R16_SINT view, whose texels divide any f16 tensor's bytes.
		const uint32_t texel_bytes[4] = {es, es, es, mask ? 4 : es};
		bool texel = cpu;
		for (int i = 0; i < 4; i++)
			texel = texel && b[i].range / texel_bytes[i] <= max_texels;

		VkDescriptorType types[5];
		for (auto& t : types)
			t = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
		if (texel) {
			for (int i = 0; i < 4; i++) {
				types[i] = b[i].type = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
				b[i].format = i == 3 ? (texel_bytes[3] == 2 ? VK_FORMAT_R16_SINT : VK_FORMAT_R32_SINT)
					      : f16  ? (vec ? VK_FORMAT_R16G16B16A16_SFLOAT : VK_FORMAT_R16_SFLOAT)
					      : vec  ? VK_FORMAT_R32G32B32A32_SFLOAT
						     : VK_FORMAT_R32_SFLOAT;
			}
			if (vec) // RGBA views cover whole texels (4 elements)
				for (int i = 0; i < 3; i++)
					b[i].range &= ~VkDeviceSize(4 * es - 1);
		}

		const Config cfg = config_for(cpu, pc.D, pc.Dv);
		const uint32_t spec[] = {cfg.wg, cfg.tq, (pc.D + 3) / 4, (pc.Dv + 3) / 4, cfg.bk, vec ? 1u : 0u};
		const char* module = texel ? (f16 ? "attention_texel_f16" : "attention_texel")
					   : (f16 ? "attention_f16" : "attention");
		const Pipeline& p = ctx.pipelines.get(module, spec, types, sizeof(AttnPush));
		ctx.recorder.dispatch(p, b, &pc, sizeof(pc), (pc.Lq + cfg.wg * cfg.tq - 1) / (cfg.wg * cfg.tq), pc.H,
				      pc.B);
	}
};

} // namespace

void flaxdrm_register_ops_attention(KernelRegistry& registry)
{
	registry.add(FLAXDRM_OP_ATTENTION, std::make_unique<AttentionKernel>());
}

} // namespace flaxdrm::rt
