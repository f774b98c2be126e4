// x.astype(dtype) between f32 and f16 (FLAXDRM_OP_ASTYPE): shaders/astype.comp,
// one module per (input, output) dtype pair, in chunks that fit a binding.
#include <algorithm>

#include "elementwise_common.hpp"
#include "f16.hpp"
#include "pipeline_cache.hpp"

namespace flaxdrm::rt {

namespace {

using namespace ew;

struct AstypePush {
	uint32_t count, in_off, out_off;
};

const char* module_for(uint32_t from, uint32_t to)
{
	const bool in16 = from == FLAXDRM_DTYPE_F16, out16 = to == FLAXDRM_DTYPE_F16;
	return in16 ? (out16 ? "astype_f16_f16" : "astype_f16_f32") : (out16 ? "astype_f32_f16" : "astype");
}

class AstypeKernel final : public OpKernel {
public:
	void check(const OpContext& ctx) const override { require_f16_device(ctx); }

	void record(OpContext& ctx) const override
	{
		const TensorView& x = ctx.inputs[0];
		const TensorView& y = ctx.outputs[0];
		const uint32_t in_size = flaxdrm_dtype_size(x.desc->dtype);
		const uint32_t out_size = flaxdrm_dtype_size(y.desc->dtype);
		const uint32_t spec[] = {kWorkgroupSize};
		const Pipeline& p =
			ctx.pipelines.get(module_for(x.desc->dtype, y.desc->dtype), spec, 2, sizeof(AstypePush));
		const uint64_t n = x.elements();
		const uint64_t chunk = max_binding_bytes(ctx.device) / 4 - 64;
		for (uint64_t begin = 0; begin < n; begin += chunk) {
			const uint64_t count = std::min(chunk, n - begin);
			AstypePush pc{uint32_t(count), 0, 0};
			const BufferRange bindings[] = {
				x.range(begin * in_size, (begin + count) * in_size, in_size, &pc.in_off, ctx.device),
				y.range(begin * out_size, (begin + count) * out_size, out_size, &pc.out_off, ctx.device),
			};
			ctx.recorder.dispatch(p, bindings, &pc, sizeof(pc), groups_for(count, kWorkgroupSize));
		}
	}
};

} // namespace

void flaxdrm_register_ops_astype(KernelRegistry& registry)
{
	registry.add(FLAXDRM_OP_ASTYPE, std::make_unique<AstypeKernel>());
}

} // namespace flaxdrm::rt
