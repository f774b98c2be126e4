// Dense and DenseGeneral: y[..., f1..fm] = x[..., k1..kn] @ kernel[k1..kn,
// f1..fm] (+ bias[f1..fm]), a GEMM with M = product of x's leading dims,
// K = k1 * ... * kn and N = f1 * ... * fm (row-major, so the kernel is a
// K x N matrix as it lies), on shaders/gemm.comp. The GEMM recording is
// shared with matmul.cpp (gemm.hpp).
#include <algorithm>

#include "device.hpp"
#include "dense_f16.hpp"
#include "gemm.hpp"
#include "kernel.hpp"
#include "pipeline_cache.hpp"
#include "vk_util.hpp"

namespace flaxdrm::rt {

namespace {

constexpr GemmConfig kScalarConfig{16, 16, 4, 4, 16};
constexpr GemmConfig kVec4Config{16, 16, 4, 4, 16};
// CPU devices: texel-buffer variant, no shared memory (see gemm.comp).
// Measured on lavapipe (2 cores, AVX-512): 16 x 12 register blocks are the
// fastest at 1024^3 even though LLVM spills some accumulators.
constexpr GemmConfig kTexelConfig{8, 8, 16, 12, 4};

// CPU devices: gemm_sg.comp, a subgroup of 8 lanes x (TM rows, TN floats)
// each. Measured on lavapipe 22.3 (2 shared cores, Zen 4) at 1024^3,
// vs_openblas: 16 x 16 blocks, BK 4: ~0.28-0.34; BK 8: 0.28-0.30; BK 16:
// 0.14; 8 x 16: 0.27 (gemm_texel's 16 x 12: ~0.2). Texel fetches are calls
// that clobber every vector register, so big blocks win despite spills.
// The RGBA32F variant puts a barrier every kSgSlab rows of K so that the
// 8 subgroups of a group share each slab of B while it is in L2 (see
// gemm_sg.comp); 4 subgroups without it were 15-40% slower at 1024^3 and
// 2048^3.
constexpr GemmConfig kSgConfig{8, 8, 16, 16, 4};
constexpr uint32_t kSgSlab = 128;
constexpr GemmConfig kSgScalarConfig{8, 4, 4, 2, 4};

// Fewer rows than a group: fewer subgroups, and below one subgroup's TM
// rows TM rounded up to a power of two (M = 1 computes 1 row, not 16).
GemmConfig sg_config(uint64_t M, bool vec4)
{
	GemmConfig cfg = vec4 ? kSgConfig : kSgScalarConfig;
	if (M < cfg.tm)
		return gemm_config_for_rows(cfg, M);
	if (M < cfg.bm())
		cfg.wg_y = uint32_t((M + cfg.tm - 1) / cfg.tm);
	return cfg;
}

struct Shape {
	uint64_t M, N, K;
};

// attrs[0] = n contracted axes (0 means 1).
Shape shape_of(const OpContext& ctx)
{
	const drm_flaxdrm_tensor& w = *ctx.inputs[1].desc;
	const uint32_t n = ctx.op.attrs[0] ? ctx.op.attrs[0] : 1;
	uint64_t K = 1;
	for (uint32_t i = 0; i < n; i++)
		K *= w.dims[i];
	return {ctx.inputs[0].elements() / K, ctx.inputs[1].elements() / K, K};
}

class DenseKernel final : public OpKernel {
public:
	void check(const OpContext& ctx) const override
	{
		if (f16_gemm_op(ctx))
			return check_f16_gemm_op(ctx);
		const Shape s = shape_of(ctx);
		check_gemm(ctx, ctx.inputs[0], ctx.inputs[1], s.M, s.N, s.K);
	}

	void record(OpContext& ctx) const override
	{
		if (f16_gemm_op(ctx))
			return record_f16_gemm_op(ctx);
		const Shape s = shape_of(ctx);
		record_gemm(ctx, ctx.inputs[0], ctx.inputs[1], ctx.inputs.size() > 2 ? &ctx.inputs[2] : nullptr,
			    ctx.outputs[0], s.M, s.N, s.K);
	}
};

} // namespace

void check_gemm(const OpContext& ctx, const TensorView& a, const TensorView& b, uint64_t M, uint64_t N, uint64_t K)
{
	(void)M;
	const uint64_t limit = max_binding_bytes(ctx.device);
	const auto& lim = ctx.device.limits();
	if (b.size > limit)
		fail(-EINVAL, ctx.where() + ": tensor " + std::to_string(b.index) +
				      " (kernel) is larger than this device can bind");
	if (K * 4 + 256 > limit || N * 4 + 256 > limit)
		fail(-EINVAL, ctx.where() + ": a row of tensor " + std::to_string(a.index) +
				      " is larger than this device can bind");
	const uint64_t bn = std::min({kScalarConfig.bn(), kVec4Config.bn(), kTexelConfig.bn(),
				      kSgConfig.bn(), kSgScalarConfig.bn()});
	if ((N + bn - 1) / bn > lim.maxComputeWorkGroupCount[0])
		fail(-EINVAL, ctx.where() + ": too many output features for this device");
}

void record_gemm(OpContext& ctx, const TensorView& a, const TensorView& b, const TensorView* bias,
		 const TensorView& c, uint64_t M, uint64_t N, uint64_t K)
{
	{
		const Shape s{M, N, K};
		const uint64_t limit = max_binding_bytes(ctx.device);
		const uint64_t max_groups_y = ctx.device.limits().maxComputeWorkGroupCount[1];

		// Rows per dispatch: A and C slices must be bindable and the
		// grid must fit the device's group count.
		const uint32_t bm =
			std::max({kScalarConfig.bm(), kVec4Config.bm(), kTexelConfig.bm(), kSgConfig.bm()});
		uint64_t rows = std::min({(limit - 256) / (s.K * 4), (limit - 256) / (s.N * 4),
					  max_groups_y * std::min({kScalarConfig.bm(), kVec4Config.bm(),
								   kSgScalarConfig.bm()})});
		if (rows >= s.M)
			rows = s.M;
		else
			rows = std::max<uint64_t>(rows / bm * bm, 1);

		for (uint64_t m0 = 0; m0 < s.M; m0 += rows) {
			const uint64_t mr = std::min(rows, s.M - m0);
			GemmPush pc{uint32_t(mr), uint32_t(s.N), uint32_t(s.K), bias ? kGemmFlagBias : 0, 0, 0, 0, 0};
			const BufferRange bind_b = b.range(0, b.size, 4, &pc.b_off, ctx.device);
			const BufferRange bindings[] = {
				a.range(m0 * s.K * 4, (m0 + mr) * s.K * 4, 4, &pc.a_off, ctx.device),
				bind_b,
				bias ? bias->range(0, bias->size, 4, &pc.bias_off, ctx.device) : bind_b,
				c.range(m0 * s.N * 4, (m0 + mr) * s.N * 4, 4, &pc.c_off, ctx.device),
			};
			bool vec4 = s.K % 4 == 0 && s.N % 4 == 0 && pc.a_off % 4 == 0 &&
					  pc.b_off % 4 == 0 && pc.bias_off % 4 == 0 && pc.c_off % 4 == 0;
			const uint64_t max_texels = ctx.device.limits().maxTexelBufferElements;
			// CPU devices: gemm_sg.comp (texel buffers, subgroup
			// broadcast of A), RGBA32F when the vec4 conditions hold,
			// else R32F (any N, K, offset).
			const uint64_t unit = vec4 ? 16 : 4;
			const bool sg = ctx.device.cpu_kernels() && bindings[0].range / unit <= max_texels &&
					bindings[1].range / unit <= max_texels;
			if (sg) {
				const GemmConfig cfg = sg_config(mr, vec4);
				const uint32_t spec[] = {cfg.wg_x, cfg.wg_y, cfg.tm, cfg.tn, cfg.bk, vec4 ? kSgSlab : 0};
				BufferRange tb[4] = {bindings[0], bindings[1], bindings[2], bindings[3]};
				tb[0].type = tb[1].type = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
				tb[0].format = tb[1].format = vec4 ? VK_FORMAT_R32G32B32A32_SFLOAT : VK_FORMAT_R32_SFLOAT;
				const VkDescriptorType types[] = {
					VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER,
					VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER};
				const Pipeline& p =
					ctx.pipelines.get(vec4 ? "gemm_sg" : "gemm_sg_scalar", spec, types, sizeof(GemmPush));
				ctx.recorder.dispatch(p, tb, &pc, sizeof(pc), uint32_t((s.N + cfg.bn() - 1) / cfg.bn()),
						      uint32_t((mr + cfg.bm() - 1) / cfg.bm()));
				continue;
			}
			const bool texel = vec4 && ctx.device.cpu_kernels() &&
					   bindings[0].range / 16 <= max_texels && bindings[1].range / 16 <= max_texels;
			const GemmConfig cfg = texel ? gemm_config_for_rows(kTexelConfig, mr) : vec4 ? kVec4Config : kScalarConfig;
			const uint32_t spec[] = {cfg.wg_x, cfg.wg_y, cfg.tm, cfg.tn, cfg.bk};
			if (texel) {
				BufferRange tb[4] = {bindings[0], bindings[1], bindings[2], bindings[3]};
				tb[0].type = tb[1].type = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
				tb[0].format = tb[1].format = VK_FORMAT_R32G32B32A32_SFLOAT;
				const VkDescriptorType types[] = {
					VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER,
					VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER};
				const Pipeline& p = ctx.pipelines.get("gemm_texel", spec, types, sizeof(GemmPush));
				ctx.recorder.dispatch(p, tb, &pc, sizeof(pc),
						      uint32_t((s.N + cfg.bn() - 1) / cfg.bn()),
						      uint32_t((mr + cfg.bm() - 1) / cfg.bm()));
				continue;
			}
			const Pipeline& p = ctx.pipelines.get(vec4 ? "gemm_vec4" : "gemm", spec, 4, sizeof(GemmPush));
			ctx.recorder.dispatch(p, bindings, &pc, sizeof(pc),
					      uint32_t((s.N + cfg.bn() - 1) / cfg.bn()),
					      uint32_t((mr + cfg.bm() - 1) / cfg.bm()));
		}
	}
}

void flaxdrm_register_ops_dense(KernelRegistry& registry)
{
	registry.add(FLAXDRM_OP_DENSE, std::make_unique<DenseKernel>());
}

} // namespace flaxdrm::rt
