// f16 Dense/DenseGeneral, matmul and Embed.attend (dense_f16.hpp), as
// Flax's Dense(dtype=jnp.float16): f16 operands and output, products and
// sums in f32, one rounding to f16 per output element.
//
// Dense, and matmul without transposes whose b has no batch, are one GEMM
// C[M, N] = A[M, K] @ B[K, N] (+ bias) on shaders/gemm_f16.comp: on CPU
// devices the texel variant (RGBA16F fetches when K, N and the offsets
// are multiples of 4, else R16F), elsewhere the storage variant. Other
// matmuls and attend run on shaders/gemm_f16_batched.comp (strided, like
// matmul.cpp's matmul.comp).
#include "dense_f16.hpp"

#include <algorithm>

#include "device.hpp"
#include "f16.hpp"
#include "gemm.hpp"
#include "matmul_shape.hpp"
#include "pipeline_cache.hpp"
#include "vk_util.hpp"

namespace flaxdrm::rt {

namespace {

constexpr uint64_t kHalf = 2; // bytes per element

// Tiles as gemm.hpp's GemmConfig (texel variants: wg_x = 8 lanes, tn
// columns each).
constexpr GemmConfig kStorageConfig{16, 16, 4, 4, 16};
// Texel variants: the f32 gemm_sg.comp's blocks (gemm_f16.comp has its
// layout).
constexpr GemmConfig kTexelConfig{8, 4, 16, 16, 4};
constexpr GemmConfig kTexelScalarConfig{8, 4, 4, 2, 4};

// The product an op computes: Dense is one plain GEMM (with bias), matmul
// and attend are described as for the f32 path.
MatmulShape describe(const OpContext& ctx)
{
	if (ctx.op.opcode != FLAXDRM_OP_DENSE)
		return describe_matmul(ctx);
	// attrs[0] = n contracted axes (0 means 1)
	const drm_flaxdrm_tensor& b = *ctx.inputs[1].desc;
	const uint32_t n = ctx.op.attrs[0] ? ctx.op.attrs[0] : 1;
	MatmulShape s;
	s.K = 1;
	for (uint32_t i = 0; i < n; i++)
		s.K *= b.dims[i];
	s.M = ctx.inputs[0].elements() / s.K;
	s.N = ctx.inputs[1].elements() / s.K;
	s.plain_gemm = true;
	return s;
}

void record_gemm(OpContext& ctx, const TensorView& a, const TensorView& b, const TensorView* bias,
		 const TensorView& c, const MatmulShape& s)
{
	const uint64_t limit = max_binding_bytes(ctx.device);
	const uint64_t max_groups_y = ctx.device.limits().maxComputeWorkGroupCount[1];
	const uint64_t max_texels = ctx.device.limits().maxTexelBufferElements;
	// Rows per dispatch: A and C slices bindable, the grid within the
	// device's group count (for the smallest row tile of any variant).
	const uint64_t bm_max = std::max({kStorageConfig.bm(), kTexelConfig.bm(), kTexelScalarConfig.bm()});
	uint64_t rows = std::min({(limit - 256) / (s.K * kHalf), (limit - 256) / (s.N * kHalf), max_groups_y});
	if (rows >= s.M)
		rows = s.M;
	else
		rows = std::max<uint64_t>(rows / bm_max * bm_max, 1);

	for (uint64_t m0 = 0; m0 < s.M; m0 += rows) {
		const uint64_t mr = std::min(rows, s.M - m0);
		GemmPush pc{uint32_t(mr), uint32_t(s.N), uint32_t(s.K), bias ? kGemmFlagBias : 0, 0, 0, 0, 0};
		const BufferRange bind_b = b.range(0, b.size, kHalf, &pc.b_off, ctx.device);
		BufferRange bindings[] = {
			a.range(m0 * s.K * kHalf, (m0 + mr) * s.K * kHalf, kHalf, &pc.a_off, ctx.device),
			bind_b,
			bias ? bias->range(0, bias->size, kHalf, &pc.bias_off, ctx.device) : bind_b,
			c.range(m0 * s.N * kHalf, (m0 + mr) * s.N * kHalf, kHalf, &pc.c_off, ctx.device),
		};
		const bool vec4 = s.K % 4 == 0 && s.N % 4 == 0 && pc.a_off % 4 == 0 && pc.b_off % 4 == 0 &&
				  pc.bias_off % 4 == 0 && pc.c_off % 4 == 0;
		const uint64_t unit = vec4 ? 4 * kHalf : kHalf;
		const bool texel = ctx.device.cpu_kernels() && bindings[0].range / unit <= max_texels &&
				   bindings[1].range / unit <= max_texels;
		if (texel) {
			const GemmConfig cfg = gemm_config_for_rows(vec4 ? kTexelConfig : kTexelScalarConfig, mr);
			const uint32_t spec[] = {cfg.wg_x, cfg.wg_y, cfg.tm, cfg.tn, cfg.bk};
			for (int i = 0; i < 2; i++) {
				bindings[i].type = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
				bindings[i].format = vec4 ? VK_FORMAT_R16G16B16A16_SFLOAT : VK_FORMAT_R16_SFLOAT;
			}
			const VkDescriptorType types[] = {
				VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER,
				VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER};
			const Pipeline& p = ctx.pipelines.get(vec4 ? "gemm_f16_texel" : "gemm_f16_texel_scalar", spec,
							      types, sizeof(GemmPush));
			ctx.recorder.dispatch(p, bindings, &pc, sizeof(pc), uint32_t((s.N + cfg.bn() - 1) / cfg.bn()),
					      uint32_t((mr + cfg.bm() - 1) / cfg.bm()));
			continue;
		}
		const GemmConfig cfg = kStorageConfig;
		const uint32_t spec[] = {cfg.wg_x, cfg.wg_y, cfg.tm, cfg.tn, cfg.bk};
		const Pipeline& p = ctx.pipelines.get("gemm_f16", spec, 4, sizeof(GemmPush));
		ctx.recorder.dispatch(p, bindings, &pc, sizeof(pc), uint32_t((s.N + cfg.bn() - 1) / cfg.bn()),
				      uint32_t((mr + cfg.bm() - 1) / cfg.bm()));
	}
}

void record_batched(OpContext& ctx, const MatmulShape& s)
{
	const TensorView& a = ctx.inputs[0];
	const TensorView& b = ctx.inputs[1];
	const TensorView& c = ctx.outputs[0];
	const uint64_t limit = max_binding_bytes(ctx.device);
	const MatmulTile cfg = matmul_tile(s.M);
	const uint32_t spec[] = {cfg.wg_x, cfg.wg_y, cfg.tm, cfg.tn};
	const Pipeline& p = ctx.pipelines.get("gemm_f16_batched", spec, 3, sizeof(MatmulPush));
	MatmulPush pc = s.push();
	const BufferRange bind_a = a.range(0, a.size, kHalf, &pc.a_off, ctx.device);
	const BufferRange bind_b = b.range(0, b.size, kHalf, &pc.b_off, ctx.device);
	const uint64_t mat = s.M * s.N * kHalf;
	const uint64_t per = std::min<uint64_t>((limit - 256) / mat, ctx.device.limits().maxComputeWorkGroupCount[2]);
	for (uint64_t z0 = 0; z0 < s.batch; z0 += per) {
		const uint64_t zn = std::min(per, s.batch - z0);
		pc.z_base = uint32_t(z0);
		const BufferRange bindings[] = {bind_a, bind_b,
						c.range(z0 * mat, (z0 + zn) * mat, kHalf, &pc.c_off, ctx.device)};
		ctx.recorder.dispatch(p, bindings, &pc, sizeof(pc), uint32_t((s.N + cfg.bn() - 1) / cfg.bn()),
				      uint32_t((s.M + cfg.bm() - 1) / cfg.bm()), uint32_t(zn));
	}
}

} // namespace

bool f16_gemm_op(const OpContext& ctx)
{
	return ctx.inputs[0].desc->dtype == FLAXDRM_DTYPE_F16;
}

void check_f16_gemm_op(const OpContext& ctx)
{
	require_f16_device(ctx);
	const MatmulShape s = describe(ctx);
	const uint64_t limit = max_binding_bytes(ctx.device);
	const auto& lim = ctx.device.limits();
	if (s.plain_gemm) {
		if (ctx.inputs[1].size > limit)
			fail(-EINVAL, ctx.where() + ": tensor " + std::to_string(ctx.inputs[1].index) +
					      " (kernel) is larger than this device can bind");
		if (s.K * kHalf + 256 > limit || s.N * kHalf + 256 > limit)
			fail(-EINVAL, ctx.where() + ": a row of tensor " + std::to_string(ctx.inputs[0].index) +
					      " is larger than this device can bind");
		const uint64_t bn = std::min({kStorageConfig.bn(), kTexelConfig.bn(), kTexelScalarConfig.bn()});
		if ((s.N + bn - 1) / bn > lim.maxComputeWorkGroupCount[0])
			fail(-EINVAL, ctx.where() + ": too many output features for this device");
		return;
	}
	for (std::size_t i = 0; i < 2; i++)
		if (ctx.inputs[i].size > limit)
			fail(-EINVAL, ctx.where() + ": tensor " + std::to_string(ctx.inputs[i].index) +
					      " is larger than this device can bind");
	const MatmulTile cfg = matmul_tile(s.M);
	if (s.M * s.N * kHalf + 256 > limit || (s.N + cfg.bn() - 1) / cfg.bn() > lim.maxComputeWorkGroupCount[0] ||
	    (s.M + cfg.bm() - 1) / cfg.bm() > lim.maxComputeWorkGroupCount[1])
		fail(-EINVAL, ctx.where() + ": matrices too large for this device");
}

void record_f16_gemm_op(OpContext& ctx)
{
	const MatmulShape s = describe(ctx);
	if (s.plain_gemm) {
		const TensorView* bias = ctx.op.opcode == FLAXDRM_OP_DENSE && ctx.inputs.size() > 2 ? &ctx.inputs[2] : nullptr;
		record_gemm(ctx, ctx.inputs[0], ctx.inputs[1], bias, ctx.outputs[0], s);
		return;
	}
	record_batched(ctx, s);
}

// The op kernels stay dense.cpp's and matmul.cpp's; this file adds none.
void flaxdrm_register_ops_dense_f16(KernelRegistry& registry)
{
	(void)registry;
}

} // namespace flaxdrm::rt
