// softmax and log_softmax over the last axis: shaders/softmax.glsl (vec4
// rows where the length is a multiple of 4), one workgroup per row for long
// rows, one thread per row for short ones (and on CPU devices); rows are
// split into dispatches that fit a binding. f16 rows run on the *_f16
// modules (f16 storage, f32 arithmetic, one rounding per output).
#include <algorithm>

#include "elementwise_common.hpp"
#include "f16.hpp"
#include "pipeline_cache.hpp"

namespace flaxdrm::rt {

namespace {

using namespace ew;

struct SoftmaxPush {
	uint32_t rows, len, in_off, out_off;
};

// Rows up to this length are one thread's work.
constexpr uint64_t kShortRow = 32;
// CPU devices: one thread per row from this many rows.
constexpr uint64_t kCpuMinRows = 64;

class SoftmaxKernel final : public OpKernel {
public:
	explicit SoftmaxKernel(bool log) : log_(log) {}

	void check(const OpContext& ctx) const override
	{
		require_f16_device(ctx);
		const drm_flaxdrm_tensor& x = *ctx.inputs[0].desc;
		if (uint64_t(x.dims[x.rank - 1]) * elem_bytes(ctx) + 256 > max_binding_bytes(ctx.device))
			fail(-EINVAL, ctx.where() + ": a row of tensor " + std::to_string(ctx.inputs[0].index) +
					      " is larger than this device can bind");
	}

	void record(OpContext& ctx) const override
	{
		const TensorView& x = ctx.inputs[0];
		const TensorView& y = ctx.outputs[0];
		const uint64_t len = x.desc->dims[x.desc->rank - 1];
		const uint64_t rows = x.elements() / len;
		// CPU devices (lavapipe) run a workgroup barrier as a switch
		// between all its invocations: there, a thread per row unless the
		// rows are too few to fill the cores' SIMD lanes.
		const bool per_group = ctx.device.cpu_kernels() ? rows < kCpuMinRows : len > kShortRow;
		const uint32_t wg = !per_group ? 64 : len <= 1024 ? 64 : len <= 8192 ? 128 : 256;
		const uint32_t spec[] = {wg, log_ ? 1u : 0u, per_group ? 1u : 0u};
		const uint32_t es = elem_bytes(ctx);
		const bool f16 = es == 2;
		// vec4 rows where rows and tensors are 16-byte aligned
		const bool vec4 = len % 4 == 0 && x.offset % 16 == 0 && y.offset % 16 == 0;
		const uint32_t esize = vec4 ? 4 * es : es; // bytes per shader element
		const char* module = vec4 ? (f16 ? "softmax_vec4_f16" : "softmax_vec4")
					  : (f16 ? "softmax_f16" : "softmax");
		const Pipeline& p = ctx.pipelines.get(module, spec, 2, sizeof(SoftmaxPush));

		const uint64_t row_bytes = len * es;
		const uint64_t max_rows = std::max<uint64_t>((max_binding_bytes(ctx.device) - 256) / row_bytes, 1);
		for (uint64_t r0 = 0; r0 < rows; r0 += max_rows) {
			const uint64_t nr = std::min(max_rows, rows - r0);
			SoftmaxPush pc{uint32_t(nr), uint32_t(row_bytes / esize), 0, 0};
			const BufferRange bindings[] = {
				x.range(r0 * row_bytes, (r0 + nr) * row_bytes, esize, &pc.in_off, ctx.device),
				y.range(r0 * row_bytes, (r0 + nr) * row_bytes, esize, &pc.out_off, ctx.device),
			};
			const uint32_t groups = per_group ? groups_for(nr, 1, 16384) : groups_for(nr, wg);
			ctx.recorder.dispatch(p, bindings, &pc, sizeof(pc), groups);
		}
	}

private:
	// Bytes per element: the rules make x and y both f16 or both f32.
	static uint32_t elem_bytes(const OpContext& ctx)
	{
		return ctx.inputs[0].desc->dtype == FLAXDRM_DTYPE_F16 ? 2 : 4;
	}

	bool log_;
};

} // namespace

void flaxdrm_register_ops_softmax(KernelRegistry& registry)
{
	registry.add(FLAXDRM_OP_SOFTMAX, std::make_unique<SoftmaxKernel>(false));
	registry.add(FLAXDRM_OP_LOG_SOFTMAX, std::make_unique<SoftmaxKernel>(true));
}

} // namespace flaxdrm::rt
