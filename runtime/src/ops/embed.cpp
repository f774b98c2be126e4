// Embed lookup (FLAXDRM_OP_EMBED): rows of table[N, F] gathered by I32
// indices, NaN for an index outside [-N, N) (negative ones from the end);
// shaders/gather.comp. An f16 table and y run gather_f16, which moves the
// 2-byte elements as 16-bit integers (bit-exact; NaN fill 0x7e00).
#include <algorithm>

#include "device.hpp"
#include "f16.hpp"
#include "kernel.hpp"
#include "pipeline_cache.hpp"
#include "vk_util.hpp"

namespace flaxdrm::rt {

namespace {

constexpr uint32_t kWorkgroupSize = 64;
constexpr uint32_t kMaxGroups = 4096;

// Must match shaders/gather.comp.
struct GatherPush {
	uint32_t rows, F, base, count;
	uint32_t idx_off, t_off, y_off, pad0;
};

class EmbedKernel final : public OpKernel {
public:
	void check(const OpContext& ctx) const override
	{
		require_f16_device(ctx);
		const uint64_t limit = max_binding_bytes(ctx.device);
		for (std::size_t i = 0; i < 2; i++)
			if (ctx.inputs[i].size > limit)
				fail(-EINVAL, ctx.where() + ": tensor " + std::to_string(ctx.inputs[i].index) +
						      " is larger than this device can bind");
	}

	void record(OpContext& ctx) const override
	{
		const TensorView& idx = ctx.inputs[0];
		const TensorView& table = ctx.inputs[1];
		const TensorView& y = ctx.outputs[0];
		GatherPush pc{};
		pc.rows = table.desc->dims[0];
		pc.F = table.desc->dims[1];
		const uint32_t spec[] = {kWorkgroupSize};
		// the rules make table and y one dtype
		const bool f16 = table.desc->dtype == FLAXDRM_DTYPE_F16;
		const uint32_t es = f16 ? 2 : 4; // bytes per table and y element
		const Pipeline& p = ctx.pipelines.get(f16 ? "gather_f16" : "gather", spec, 3, sizeof(GatherPush));
		const BufferRange bind_idx = idx.range(0, idx.size, 4, &pc.idx_off, ctx.device);
		const BufferRange bind_t = table.range(0, table.size, es, &pc.t_off, ctx.device);

		const uint64_t n = y.elements();
		// room for the binding to start up to 256 bytes (an offset
		// alignment) before the chunk
		const uint64_t chunk = (max_binding_bytes(ctx.device) - 256) / es;
		for (uint64_t begin = 0; begin < n; begin += chunk) {
			pc.base = uint32_t(begin);
			pc.count = uint32_t(std::min(chunk, n - begin));
			const BufferRange bindings[] = {
				bind_idx, bind_t, y.range(begin * es, (begin + pc.count) * es, es, &pc.y_off, ctx.device)};
			const uint64_t groups =
				std::min<uint64_t>((pc.count + kWorkgroupSize - 1) / kWorkgroupSize, kMaxGroups);
			ctx.recorder.dispatch(p, bindings, &pc, sizeof(pc), uint32_t(groups));
		}
	}
};

} // namespace

void flaxdrm_register_ops_embed(KernelRegistry& registry)
{
	registry.add(FLAXDRM_OP_EMBED, std::make_unique<EmbedKernel>());
}

} // namespace flaxdrm::rt
