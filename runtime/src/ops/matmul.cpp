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
#include "pipeline_cache.hpp"
#include "vk_util.hpp"

namespace flaxdrm::rt {

namespace {

// Must match shaders/matmul.comp.
struct MatmulPush {
	uint32_t M, N, K, z_base;
	uint32_t a_off, b_off, c_off, pad0;
	uint32_t sam, sak, sbk, sbn;
	uint32_t bd[4];
	uint32_t as[4];
	uint32_t bs[4];
};

struct Strided {
	uint64_t M = 0, N = 0, K = 0, batch = 1;
	uint64_t sam = 0, sak = 0, sbk = 0, sbn = 0;
	uint64_t bd[4] = {1, 1, 1, 1}, as[4] = {0, 0, 0, 0}, bs[4] = {0, 0, 0, 0};
	bool plain_gemm = false; // no transposes, no batch in b
};

Strided describe(const OpContext& ctx)
{
	const drm_flaxdrm_tensor& a = *ctx.inputs[0].desc;
	const drm_flaxdrm_tensor& b = *ctx.inputs[1].desc;
	Strided s;
	if (ctx.op.opcode == FLAXDRM_OP_ATTEND) {
		// q[..., F] @ table[N, F]^T
		s.K = a.dims[a.rank - 1];
		s.M = ctx.inputs[0].elements() / s.K;
		s.N = b.dims[0];
		s.sam = s.K, s.sak = 1, s.sbk = 1, s.sbn = s.K;
		return s;
	}
	const bool ta = ctx.op.attrs[0] & 1, tb = ctx.op.attrs[0] & 2;
	const uint32_t ra = a.rank, rb = b.rank;
	s.M = a.dims[ra - 2 + ta];
	s.K = a.dims[ra - 1 - ta];
	s.N = b.dims[rb - 1 - tb];
	s.sam = ta ? 1 : s.K, s.sak = ta ? s.M : 1;
	s.sbk = tb ? 1 : s.N, s.sbn = tb ? s.K : 1;
	// Batch dims aligned from the right into bd[0..3] (bd[3] innermost).
	uint64_t a_stride = s.M * s.K, b_stride = s.K * s.N, b_batch = 1;
	for (uint32_t i = 0; i < 4; i++) {
		const uint32_t da = i + 2 < ra ? a.dims[ra - 3 - i] : 1;
		const uint32_t db = i + 2 < rb ? b.dims[rb - 3 - i] : 1;
		s.bd[3 - i] = std::max(da, db);
		s.as[3 - i] = da == 1 ? 0 : a_stride;
		s.bs[3 - i] = db == 1 ? 0 : b_stride;
		a_stride *= da;
		b_stride *= db;
		b_batch *= db;
		s.batch *= s.bd[3 - i];
	}
	s.plain_gemm = !ta && !tb && b_batch == 1;
	if (s.plain_gemm)
		s.M *= a_stride / (s.M * s.K), s.batch = 1;
	return s;
}

struct Config {
	uint32_t wg_x, wg_y, tm, tn;
	uint32_t bm() const { return wg_y * tm; }
	uint32_t bn() const { return wg_x * tn; }
};

Config config_for(uint64_t M)
{
	if (M >= 64)
		return {16, 16, 4, 4};
	uint32_t tm = 1;
	while (tm < M && tm < 4)
		tm *= 2;
	return {64, uint32_t(std::max<uint64_t>(1, std::min<uint64_t>(4, (M + tm - 1) / tm))), tm, 4};
}

class MatmulKernel final : public OpKernel {
public:
	void check(const OpContext& ctx) const override
	{
		if (f16_gemm_op(ctx))
			return check_f16_gemm_op(ctx);
		const Strided s = describe(ctx);
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
		const Config cfg = config_for(s.M);
		if (s.M * s.N * 4 + 256 > limit || (s.N + cfg.bn() - 1) / cfg.bn() > lim.maxComputeWorkGroupCount[0] ||
		    (s.M + cfg.bm() - 1) / cfg.bm() > lim.maxComputeWorkGroupCount[1])
			fail(-EINVAL, ctx.where() + ": matrices too large for this device");
	}

	void record(OpContext& ctx) const override
	{
		if (f16_gemm_op(ctx))
			return record_f16_gemm_op(ctx);
		const Strided s = describe(ctx);
		const TensorView& a = ctx.inputs[0];
		const TensorView& b = ctx.inputs[1];
		const TensorView& c = ctx.outputs[0];
		if (s.plain_gemm) {
			record_gemm(ctx, a, b, nullptr, c, s.M, s.N, s.K);
			return;
		}
		const uint64_t limit = max_binding_bytes(ctx.device);
		const Config cfg = config_for(s.M);
		const uint32_t spec[] = {cfg.wg_x, cfg.wg_y, cfg.tm, cfg.tn};
		const Pipeline& p = ctx.pipelines.get("matmul", spec, 3, sizeof(MatmulPush));
		MatmulPush pc{};
		pc.M = uint32_t(s.M), pc.N = uint32_t(s.N), pc.K = uint32_t(s.K);
		pc.sam = uint32_t(s.sam), pc.sak = uint32_t(s.sak), pc.sbk = uint32_t(s.sbk), pc.sbn = uint32_t(s.sbn);
		for (int i = 0; i < 4; i++)
			pc.bd[i] = uint32_t(s.bd[i]), pc.as[i] = uint32_t(s.as[i]), pc.bs[i] = uint32_t(s.bs[i]);
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
