// avg_pool and max_pool (lax.reduce_window as Flax uses it) over NHWC
// input: shaders/pool.comp, one invocation per output element; f16
// tensors on its pool_f16 variant (f32 arithmetic, one rounding at the
// store).
#include <algorithm>

#include "device.hpp"
#include "f16.hpp"
#include "kernel.hpp"
#include "pipeline_cache.hpp"
#include "vk_util.hpp"

namespace flaxdrm::rt {

namespace {

constexpr uint32_t kWorkgroupSize = 64;
constexpr uint32_t kMaxGroups = 4096; // grid-stride loop beyond this
constexpr uint32_t kFlagMax = 1;
constexpr uint32_t kFlagIncludePad = 2;

// Must match shaders/pool.comp.
struct PoolPush {
	uint32_t N, H, W, C;
	uint32_t OH, OW, wh, ww;
	uint32_t sh, sw, pt, pl;
	uint32_t flags, base, count, x_off;
	uint32_t y_off, pad0, pad1, pad2;
};

class PoolKernel final : public OpKernel {
public:
	explicit PoolKernel(bool max) : max_(max) {}

	void check(const OpContext& ctx) const override
	{
		require_f16_device(ctx);
		if (ctx.inputs[0].size > max_binding_bytes(ctx.device))
			fail(-EINVAL, ctx.where() + ": tensor " + std::to_string(ctx.inputs[0].index) +
					      " is larger than this device can bind");
		const uint32_t* a = ctx.op.attrs;
		const drm_flaxdrm_tensor& y = *ctx.outputs[0].desc;
		if (uint64_t(y.dims[1]) * a[2] + a[0] >= (1u << 31) || uint64_t(y.dims[2]) * a[3] + a[1] >= (1u << 31))
			fail(-EINVAL, ctx.where() + ": output too large for this runtime");
	}

	void record(OpContext& ctx) const override
	{
		const TensorView& x = ctx.inputs[0];
		const TensorView& y = ctx.outputs[0];
		const uint32_t* a = ctx.op.attrs;
		PoolPush pc{};
		pc.N = x.desc->dims[0], pc.H = x.desc->dims[1], pc.W = x.desc->dims[2], pc.C = x.desc->dims[3];
		pc.OH = y.desc->dims[1], pc.OW = y.desc->dims[2];
		pc.wh = a[0], pc.ww = a[1], pc.sh = a[2], pc.sw = a[3], pc.pt = a[4], pc.pl = a[6];
		pc.flags = max_ ? kFlagMax : (a[8] ? kFlagIncludePad : 0);
		const bool f16 = x.desc->dtype == FLAXDRM_DTYPE_F16;
		const uint64_t es = f16 ? 2 : 4; // bytes per element (x and y share the dtype)
		const uint32_t spec[] = {kWorkgroupSize};
		const Pipeline& p = ctx.pipelines.get(f16 ? "pool_f16" : "pool", spec, 2, sizeof(PoolPush));
		const BufferRange bind_x = x.range(0, x.size, uint32_t(es), &pc.x_off, ctx.device);

		const uint64_t n = y.elements();
		const uint64_t chunk = max_binding_bytes(ctx.device) / es - 64;
		for (uint64_t begin = 0; begin < n; begin += chunk) {
			pc.base = uint32_t(begin);
			pc.count = uint32_t(std::min(chunk, n - begin));
			const BufferRange bindings[] = {
				bind_x, y.range(begin * es, (begin + pc.count) * es, uint32_t(es), &pc.y_off, ctx.device)};
			const uint64_t groups =
				std::min<uint64_t>((pc.count + kWorkgroupSize - 1) / kWorkgroupSize, kMaxGroups);
			ctx.recorder.dispatch(p, bindings, &pc, sizeof(pc), uint32_t(groups));
		}
	}

private:
	bool max_;
};

} // namespace

void flaxdrm_register_ops_pool(KernelRegistry& registry)
{
	registry.add(FLAXDRM_OP_AVG_POOL, std::make_unique<PoolKernel>(false));
	registry.add(FLAXDRM_OP_MAX_POOL, std::make_unique<PoolKernel>(true));
}

} // namespace flaxdrm::rt
