// Batched matmul (FLAXDRM_OP_MATMUL: transposes, NumPy-broadcast batch
// dims) and Embed.attend (FLAXDRM_OP_ATTEND: q @ table^T).
//
// A MATMUL without transposes whose b has no batch (or only 1s) is one
// plain GEMM over a's flattened rows (dense.cpp's, gemm.hpp). Everything
// else runs on shaders/matmul.comp, which reads both operands through
// strides, so transposes and broadcasting cost no copies.
#include <algorithm>

#include "device.hpp"
#include "dense_f16.hpp"
#include "gemm.hpp"
#include "kernel.hpp"
#include "matmul_shape.hpp"
#include "pipeline_cache.hpp"
#include "vk_util.hpp"

namespace flaxdrm::rt {

namespace {

class MatmulKernel final : public OpKernel {
public:
	void check(const OpContext& ctx) const override
	{
		if (f16_gemm_op(ctx))
			return check_f16_gemm_op(ctx);
		const MatmulShape s = describe_matmul(ctx);
		if (s.plain_gemm) {
			check_gemm(ctx, ctx.inputs[0], ctx.inputs[1], s.M, s.N, s.K);
			return;
		}
		const uint64_t limit = max_binding_bytes(ctx.device);
		const auto& lim = ctx.device.limits();
		for (std::size_t i = 0; i < 2; i++)
			if (ctx.inputs[i].size > limit)
				fail(-EINVAL, ctx.where() + ": tensor " + std::to_string(ctx.inputs[i].index) +
						      " is larger than this device can bind");
		const MatmulTile cfg = matmul_tile(s.M);
		if (s.M * s.N * 4 + 256 > limit || (s.N + cfg.bn() - 1) / cfg.bn() > lim.maxComputeWorkGroupCount[0] ||
		    (s.M + cfg.bm() - 1) / cfg.bm() > lim.maxComputeWorkGroupCount[1])
			fail(-EINVAL, ctx.where() + ": matrices too large for this device");
	}

	void record(OpContext& ctx) const override
	{
		if (f16_gemm_op(ctx))
			return record_f16_gemm_op(ctx);
		const MatmulShape s = describe_matmul(ctx);
		const TensorView& a = ctx.inputs[0];
		const TensorView& b = ctx.inputs[1];
		const TensorView& c = ctx.outputs[0];
		if (s.plain_gemm) {
			record_gemm(ctx, a, b, nullptr, c, s.M, s.N, s.K);
			return;
		}
		const uint64_t limit = max_binding_bytes(ctx.device);
		const MatmulTile cfg = matmul_tile(s.M);
		const uint32_t spec[] = {cfg.wg_x, cfg.wg_y, cfg.tm, cfg.tn};
		const Pipeline& p = ctx.pipelines.get("matmul", spec, 3, sizeof(MatmulPush));
		MatmulPush pc = s.push();
		const BufferRange bind_a = a.range(0, a.size, 4, &pc.a_off, ctx.device);
		const BufferRange bind_b = b.range(0, b.size, 4, &pc.b_off, ctx.device);
		const uint64_t mat = s.M * s.N * 4;
		const uint64_t per = std::min<uint64_t>((limit - 256) / mat, ctx.device.limits().maxComputeWorkGroupCount[2]);
		for (uint64_t z0 = 0; z0 < s.batch; z0 += per) {
			const uint64_t zn = std::min(per, s.batch - z0);
			pc.z_base = uint32_t(z0);
			const BufferRange bindings[] = {bind_a, bind_b,
							c.range(z0 * mat, (z0 + zn) * mat, 4, &pc.c_off, ctx.device)};
			ctx.recorder.dispatch(p, bindings, &pc, sizeof(pc), uint32_t((s.N + cfg.bn() - 1) / cfg.bn()),
					      uint32_t((s.M + cfg.bm() - 1) / cfg.bm()), uint32_t(zn));
		}
	}
};

} // namespace

void flaxdrm_register_ops_matmul(KernelRegistry& registry)
{
	registry.add(FLAXDRM_OP_MATMUL, std::make_unique<MatmulKernel>());
	registry.add(FLAXDRM_OP_ATTEND, std::make_unique<MatmulKernel>());
}

} // namespace flaxdrm::rt
