// Dropout: keeps each element with probability 1 - rate and scales it by
// 1 / (1 - rate), as flax.linen.Dropout in training. The keep decision is a
// counter-based hash of the 64-bit seed (attrs[1] low, attrs[2] high) and
// the element's row-major index, documented in shaders/elementwise.comp:
// the same seed gives the same mask on every device and run. Rate 0 is the
// identity.
#include <cmath>

#include "elementwise_common.hpp"
#include "f16.hpp"

namespace flaxdrm::rt {

namespace {

using namespace ew;

class DropoutKernel final : public OpKernel {
public:
	void check(const OpContext& ctx) const override { require_f16_device(ctx); }
	void record(OpContext& ctx) const override
	{
		const double rate = double(f32_from_bits(ctx.op.attrs[0])); // in [0, 1): the rule checks it
		UnaryPush pc;
		// Drop when hash < threshold: P(drop) = threshold / 2^32.
		pc.threshold = uint32_t(std::min(std::nearbyint(rate * 4294967296.0), 4294967295.0));
		// Flax divides by keep_prob = 1 - rate, a Python float that
		// becomes f32 against an f32 array.
		pc.alpha = float(1.0 - rate);
		pc.key0 = ctx.op.attrs[1];
		pc.key1 = ctx.op.attrs[2];
		record_unary(ctx, rate == 0.0 ? UNARY_COPY : UNARY_DROPOUT, pc);
	}
};

} // namespace

void flaxdrm_register_ops_dropout(KernelRegistry& registry)
{
	registry.add(FLAXDRM_OP_DROPOUT, std::make_unique<DropoutKernel>());
}

} // namespace flaxdrm::rt
