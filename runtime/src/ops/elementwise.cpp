// Elementwise unary ops (relu, ...): shaders/elementwise.comp with the op
// as a specialization constant.
#include <algorithm>

#include "device.hpp"
#include "kernel.hpp"
#include "pipeline_cache.hpp"

namespace flaxdrm::rt {

namespace {

// Must match the OP_* constants in shaders/elementwise.comp.
enum UnaryOp : uint32_t {
	UNARY_RELU = 0,
};

constexpr uint32_t kWorkgroupSize = 256;
constexpr uint32_t kMaxGroups = 4096; // grid-stride loop beyond this

struct PushConstants {
	uint32_t count;
	uint32_t in_off;
	uint32_t out_off;
	uint32_t pad;
};

class UnaryKernel final : public OpKernel {
public:
	explicit UnaryKernel(UnaryOp op) : op_(op) {}

	void record(OpContext& ctx) const override
	{
		const TensorView& x = ctx.inputs[0];
		const TensorView& y = ctx.outputs[0];
		const uint32_t spec[] = {kWorkgroupSize, op_};
		const Pipeline& p = ctx.pipelines.get("elementwise", spec, 2, sizeof(PushConstants));

		const uint64_t n = x.elements();
		const uint64_t chunk = max_binding_bytes(ctx.device) / 4 - 64;
		for (uint64_t begin = 0; begin < n; begin += chunk) {
			const uint64_t count = std::min(chunk, n - begin);
			PushConstants pc{uint32_t(count), 0, 0, 0};
			const BufferRange bindings[] = {
				x.range(begin * 4, (begin + count) * 4, 4, &pc.in_off, ctx.device),
				y.range(begin * 4, (begin + count) * 4, 4, &pc.out_off, ctx.device),
			};
			const uint64_t groups = std::min<uint64_t>((count + kWorkgroupSize - 1) / kWorkgroupSize,
								   kMaxGroups);
			ctx.recorder.dispatch(p, bindings, &pc, sizeof(pc), uint32_t(groups));
		}
	}

private:
	UnaryOp op_;
};

} // namespace

void flaxdrm_register_ops_elementwise(KernelRegistry& registry)
{
	registry.add(FLAXDRM_OP_RELU, std::make_unique<UnaryKernel>(UNARY_RELU));
}

} // namespace flaxdrm::rt
