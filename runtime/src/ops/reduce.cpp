// Reductions (sum, mean, max over an axes bitmask, keepdims): the input is
// collapsed into alternating kept and reduced dim groups and reduced by
// shaders/reduce.comp, one workgroup per output where the reduced run is
// long or outputs are few, one thread per output otherwise. keepdims only
// changes the output's descriptor, not its layout. f16 tensors run the
// *_f16 modules: f16 loads, the same f32 accumulation, one rounding on
// the store; everything else (plan, paths) is the f32 one, in elements.
#include <algorithm>

#include "elementwise_common.hpp"
#include "f16.hpp"
#include "pipeline_cache.hpp"

namespace flaxdrm::rt {

namespace {

using namespace ew;

enum ReduceOp : uint32_t { RED_SUM = 0, RED_MEAN = 1, RED_MAX = 2 };

struct ReducePush {
	uint32_t outputs, R, in_off, out_off, nk, nr;
	uint32_t kdims[3], kstrides[3], rdims[3], rstrides[3];
};
static_assert(sizeof(ReducePush) <= 128);

struct Plan {
	ReducePush pc{};
	bool inner_reduced = false; // the innermost group is a reduced one
};

Plan plan(const OpContext& ctx)
{
	const drm_flaxdrm_tensor& x = *ctx.inputs[0].desc;
	const uint32_t axes = ctx.op.attrs[0];
	const auto st = contiguous_strides(x);
	// Groups of adjacent dims of one kind (size-1 dims carry no data);
	// x is contiguous, so adjacent dims of a kind always merge.
	struct Group {
		bool reduced;
		uint64_t dim, stride;
	};
	Group groups[FLAXDRM_MAX_RANK];
	uint32_t ng = 0;
	for (uint32_t d = 0; d < x.rank; d++) {
		if (x.dims[d] == 1)
			continue;
		const bool red = (axes >> d) & 1;
		if (ng && groups[ng - 1].reduced == red) {
			groups[ng - 1].dim *= x.dims[d];
			groups[ng - 1].stride = st[d];
		} else {
			groups[ng++] = {red, x.dims[d], st[d]};
		}
	}
	Plan p;
	ReducePush& pc = p.pc;
	pc.outputs = 1;
	pc.R = 1;
	for (uint32_t g = 0; g < ng; g++) {
		if (groups[g].reduced) {
			pc.rdims[pc.nr] = uint32_t(groups[g].dim);
			pc.rstrides[pc.nr++] = uint32_t(groups[g].stride);
			pc.R *= uint32_t(groups[g].dim);
		} else {
			pc.kdims[pc.nk] = uint32_t(groups[g].dim);
			pc.kstrides[pc.nk++] = uint32_t(groups[g].stride);
			pc.outputs *= uint32_t(groups[g].dim);
		}
	}
	if (pc.nr == 0) { // every reduced axis has size 1: a copy
		pc.nr = 1;
		pc.rdims[0] = 1;
		pc.rstrides[0] = 0;
	}
	p.inner_reduced = ng && groups[ng - 1].reduced;
	return p;
}

class ReduceKernel final : public OpKernel {
public:
	explicit ReduceKernel(ReduceOp op) : op_(op) {}

	void check(const OpContext& ctx) const override
	{
		require_f16_device(ctx);
		require_bindable(ctx, ctx.inputs[0], "x");
	}

	void record(OpContext& ctx) const override
	{
		const TensorView& x = ctx.inputs[0];
		const TensorView& y = ctx.outputs[0];
		Plan pl = plan(ctx);
		ReducePush& pc = pl.pc;
		// the rules make x and y one dtype
		const bool f16 = x.desc->dtype == FLAXDRM_DTYPE_F16;
		const uint32_t es = f16 ? 2 : 4; // bytes per element
		// CPU devices (lavapipe) run a workgroup barrier as a switch
		// between all its invocations: there, a thread per output unless
		// the outputs are too few to fill the cores' SIMD lanes.
		const bool per_group = ctx.device.cpu_kernels()
					       ? pc.outputs < 64 && pc.R >= 256
					       : (pl.inner_reduced && pc.R >= 16) || (pc.outputs < 1024 && pc.R >= 256);
		const uint32_t wg = !per_group ? 64 : pc.R >= 8192 ? 256 : 64;
		// vec4 reads, a thread per output (or 4 outputs): the reduced run
		// innermost and contiguous, or the kept one; strides multiples of 4.
		// A workgroup per output takes vec4s only in the inner form.
		bool vec4 = x.offset % 16 == 0 && (!per_group || pl.inner_reduced);
		uint32_t vmode = 0;
		if (vec4 && pl.inner_reduced) {
			vec4 = pc.nr == 1 && pc.rstrides[0] == 1 && pc.R % 4 == 0;
		} else if (vec4) {
			vmode = 1;
			vec4 = pc.nk > 0 && pc.kstrides[pc.nk - 1] == 1 && pc.kdims[pc.nk - 1] % 4 == 0 &&
			       y.offset % 16 == 0;
			for (uint32_t d = 0; d < pc.nr; d++)
				vec4 = vec4 && pc.rstrides[d] % 4 == 0;
		}
		for (uint32_t d = 0; d < pc.nk; d++)
			vec4 = vec4 && (pc.kstrides[d] % 4 == 0 || (vmode == 1 && d == pc.nk - 1));
		if (vec4) {
			const uint32_t vspec[] = {wg, op_, per_group ? 1u : 0u, vmode};
			const Pipeline& pipe = ctx.pipelines.get(f16 ? "reduce_vec4_f16" : "reduce_vec4", vspec, 2,
								 sizeof(ReducePush));
			const BufferRange bindings[] = {
				x.range(0, x.size, 4 * es, &pc.in_off, ctx.device),
				y.range(0, y.size, es, &pc.out_off, ctx.device),
			};
			const uint64_t threads = vmode ? pc.outputs / 4 : pc.outputs;
			ctx.recorder.dispatch(pipe, bindings, &pc, sizeof(pc),
					      per_group ? groups_for(pc.outputs, 1, 16384) : groups_for(threads, wg));
			return;
		}
		const uint32_t spec[] = {wg, op_, per_group ? 1u : 0u};
		const Pipeline& pipe = ctx.pipelines.get(f16 ? "reduce_f16" : "reduce", spec, 2, sizeof(ReducePush));
		const BufferRange bindings[] = {
			x.range(0, x.size, es, &pc.in_off, ctx.device),
			y.range(0, y.size, es, &pc.out_off, ctx.device),
		};
		const uint32_t groups = per_group ? groups_for(pc.outputs, 1, 16384) : groups_for(pc.outputs, wg);
		ctx.recorder.dispatch(pipe, bindings, &pc, sizeof(pc), groups);
	}

private:
	ReduceOp op_;
};

} // namespace

void flaxdrm_register_ops_reduce(KernelRegistry& registry)
{
	registry.add(FLAXDRM_OP_REDUCE_SUM, std::make_unique<ReduceKernel>(RED_SUM));
	registry.add(FLAXDRM_OP_REDUCE_MEAN, std::make_unique<ReduceKernel>(RED_MEAN));
	registry.add(FLAXDRM_OP_REDUCE_MAX, std::make_unique<ReduceKernel>(RED_MAX));
}

} // namespace flaxdrm::rt
