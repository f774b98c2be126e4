// Binary elementwise ops with NumPy broadcasting (add, subtract, multiply,
// divide, maximum, minimum): shaders/binary.comp. The broadcast is folded
// into per-operand strides and collapsed (elementwise_common.hpp), so
// same-shape and scalar operands take index-free paths, and a bias-style
// broadcast ([M, N] + [N]) is a rank-2 walk. f16 tensors run on the F16
// modules (*_f16: f16 storage, f32 arithmetic).
#include <algorithm>

#include "elementwise_common.hpp"
#include "f16.hpp"
#include "pipeline_cache.hpp"

namespace flaxdrm::rt {

namespace {

using namespace ew;

// Must match shaders/binary.comp.
enum BinaryOp : uint32_t { BIN_ADD = 0, BIN_SUB, BIN_MUL, BIN_DIV, BIN_MAX, BIN_MIN };
enum Mode : uint32_t { MODE_SAME = 0, MODE_SCALAR_B = 1, MODE_SCALAR_A = 2, MODE_GENERAL = 3 };

struct BinaryPush {
	uint32_t count, a_off, b_off, out_off, rank;
	uint32_t dims[FLAXDRM_MAX_RANK];
	uint32_t sa[FLAXDRM_MAX_RANK];
	uint32_t sb[FLAXDRM_MAX_RANK];
};
static_assert(sizeof(BinaryPush) <= 128);

// The push constants of a walk over s's index space; offsets not set.
BinaryPush strided_push(const Strided<2>& s, uint64_t count)
{
	BinaryPush pc{};
	pc.count = uint32_t(count);
	pc.rank = s.rank;
	for (uint32_t d = 0; d < s.rank; d++) {
		pc.dims[d] = uint32_t(s.dims[d]);
		pc.sa[d] = uint32_t(s.strides[0][d]);
		pc.sb[d] = uint32_t(s.strides[1][d]);
	}
	return pc;
}

// The output's shape with a's and b's strides (0 where broadcast), collapsed.
Strided<2> broadcast(const OpContext& ctx)
{
	const drm_flaxdrm_tensor& a = *ctx.inputs[0].desc;
	const drm_flaxdrm_tensor& b = *ctx.inputs[1].desc;
	const drm_flaxdrm_tensor& y = *ctx.outputs[0].desc;
	const auto as = contiguous_strides(a), bs = contiguous_strides(b);
	Strided<2> s;
	s.rank = y.rank;
	for (uint32_t d = 0; d < y.rank; d++) {
		s.dims[d] = y.dims[d];
		const uint32_t ra = y.rank - a.rank, rb = y.rank - b.rank; // rules: y.rank = max
		s.strides[0][d] = d >= ra && a.dims[d - ra] != 1 ? as[d - ra] : 0;
		s.strides[1][d] = d >= rb && b.dims[d - rb] != 1 ? bs[d - rb] : 0;
	}
	s.collapse();
	return s;
}

// The module for f32 tensors, or its f16 variant.
std::string module_name(const char* base, const OpContext& ctx)
{
	return ctx.outputs[0].desc->dtype == FLAXDRM_DTYPE_F16 ? std::string(base) + "_f16" : std::string(base);
}

Mode mode_of(const Strided<2>& s)
{
	if (s.rank != 1)
		return MODE_GENERAL;
	const uint64_t sa = s.strides[0][0], sb = s.strides[1][0];
	if (sa == 1 && sb == 1)
		return MODE_SAME;
	if (sa == 1 && sb == 0)
		return MODE_SCALAR_B;
	if (sa == 0 && sb == 1)
		return MODE_SCALAR_A;
	return MODE_GENERAL;
}

class BinaryKernel final : public OpKernel {
public:
	explicit BinaryKernel(BinaryOp op) : op_(op) {}

	void check(const OpContext& ctx) const override
	{
		require_f16_device(ctx);
		// The index-free paths are chunked; the general one binds whole.
		if (mode_of(broadcast(ctx)) != MODE_GENERAL)
			return;
		require_bindable(ctx, ctx.inputs[0], "a");
		require_bindable(ctx, ctx.inputs[1], "b");
		require_bindable(ctx, ctx.outputs[0], "output");
	}

	void record(OpContext& ctx) const override
	{
		const TensorView& a = ctx.inputs[0];
		const TensorView& b = ctx.inputs[1];
		const TensorView& y = ctx.outputs[0];
		const Strided<2> s = broadcast(ctx);
		const Mode mode = mode_of(s);
		const uint32_t spec[] = {kWorkgroupSize, op_, mode};
		const Pipeline& p = ctx.pipelines.get(module_name("binary", ctx), spec, 3, sizeof(BinaryPush));
		const uint32_t es = y.desc->dtype == FLAXDRM_DTYPE_F16 ? 2 : 4; // bytes per element

		const uint64_t n = y.elements();
		// 4 elements per invocation where the innermost dim is a multiple
		// of 4 and each operand runs contiguously through it (same shapes,
		// bias-style rows) or is broadcast along it (scalars, columns:
		// MODE_SCALAR_A/B in the vector shaders), through texel buffers on
		// CPU devices.
		const uint32_t in = s.rank - 1;
		const uint64_t ia = s.strides[0][in], ib = s.strides[1][in];
		const bool vec4 = ((ia == 1 && ib == 1) || (ia == 1 && ib == 0) || (ia == 0 && ib == 1)) &&
				  s.dims[in] % 4 == 0 && a.offset % 16 == 0 && b.offset % 16 == 0 && y.offset % 16 == 0;
		if (vec4) {
			const Mode vmode = ib == 0 ? MODE_SCALAR_B : ia == 0 ? MODE_SCALAR_A : MODE_GENERAL;
			record_vec4(ctx, s, vmode, mode != MODE_GENERAL);
			return;
		}
		if (mode == MODE_GENERAL) {
			BinaryPush pc = strided_push(s, n);
			const BufferRange bindings[] = {
				a.range(0, a.size, es, &pc.a_off, ctx.device),
				b.range(0, b.size, es, &pc.b_off, ctx.device),
				y.range(0, y.size, es, &pc.out_off, ctx.device),
			};
			ctx.recorder.dispatch(p, bindings, &pc, sizeof(pc), groups_for(n, kWorkgroupSize));
			return;
		}
		const uint64_t chunk = max_binding_bytes(ctx.device) / 4 - 64;
		for (uint64_t begin = 0; begin < n; begin += chunk) {
			const uint64_t count = std::min(chunk, n - begin);
			BinaryPush pc{};
			pc.count = uint32_t(count);
			pc.rank = 1;
			auto operand = [&](const TensorView& t, bool scalar, uint32_t* off) {
				return scalar ? t.range(0, es, es, off, ctx.device)
					      : t.range(begin * es, (begin + count) * es, es, off, ctx.device);
			};
			const BufferRange bindings[] = {
				operand(a, mode == MODE_SCALAR_A, &pc.a_off),
				operand(b, mode == MODE_SCALAR_B, &pc.b_off),
				y.range(begin * es, (begin + count) * es, es, &pc.out_off, ctx.device),
			};
			ctx.recorder.dispatch(p, bindings, &pc, sizeof(pc), groups_for(count, kWorkgroupSize));
		}
	}

private:
	// mode: MODE_SCALAR_A/B for an operand broadcast along the innermost
	// dim, else MODE_GENERAL; flat: the index walk is rank 1 (same
	// shapes or a one-element operand), so the range is cut in chunks.
	void record_vec4(OpContext& ctx, const Strided<2>& s, Mode mode, bool flat) const
	{
		const bool same = flat;
		const TensorView& a = ctx.inputs[0];
		const TensorView& b = ctx.inputs[1];
		const TensorView& y = ctx.outputs[0];
		const uint64_t n4 = y.elements() / 4;
		const bool f16 = y.desc->dtype == FLAXDRM_DTYPE_F16;
		const uint32_t es = f16 ? 2 : 4, vs = 4 * es; // bytes per element, per 4
		const uint64_t max_texels = ctx.device.limits().maxTexelBufferElements;
		const bool texel = ctx.device.cpu_kernels() &&
				   (same || (a.size / vs < max_texels && b.size / vs < max_texels));
		const uint32_t spec[] = {kWorkgroupSize, op_, mode};
		const VkDescriptorType texel_types[] = {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER,
							VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER,
							VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER};
		const Pipeline& p = texel ? ctx.pipelines.get(module_name("binary_texel", ctx), spec, texel_types,
							      sizeof(BinaryPush))
					  : ctx.pipelines.get(module_name("binary_vec4", ctx), spec, 4, sizeof(BinaryPush));
		// Same shapes: chunks of the flat range. Otherwise whole operands
		// (check() made sure they bind).
		uint64_t chunk = same ? max_binding_bytes(ctx.device) / 16 - 16 : n4;
		if (texel)
			chunk = std::min(chunk, max_texels - 16);
		for (uint64_t begin = 0; begin < n4; begin += chunk) {
			const uint64_t count = std::min(chunk, n4 - begin);
			BinaryPush pc = strided_push(s, count);
			// the operand broadcast along the innermost dim (MODE_SCALAR_*)
			// goes whole to binding 3; its vector binding repeats the
			// other operand
			const TensorView& va = mode == MODE_SCALAR_A ? b : a;
			const TensorView& vb = mode == MODE_SCALAR_B ? a : b;
			uint32_t dummy = 0;
			const BufferRange sbind = mode == MODE_SCALAR_A	  ? a.range(0, a.size, es, &pc.a_off, ctx.device)
						  : mode == MODE_SCALAR_B ? b.range(0, b.size, es, &pc.b_off, ctx.device)
									  : y.range(0, es, es, &dummy, ctx.device);
			auto operand = [&](const TensorView& t, uint32_t* off) {
				BufferRange r = same ? t.range(begin * vs, (begin + count) * vs, vs, off, ctx.device)
						     : t.range(0, t.size, vs, off, ctx.device);
				if (texel) {
					r.type = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
					r.format = f16 ? VK_FORMAT_R16G16B16A16_SFLOAT : VK_FORMAT_R32G32B32A32_SFLOAT;
				}
				return r;
			};
			const BufferRange bindings[] = {
				operand(va, mode == MODE_SCALAR_A ? &dummy : &pc.a_off),
				operand(vb, mode == MODE_SCALAR_B ? &dummy : &pc.b_off),
				y.range(begin * vs, (begin + count) * vs, vs, &pc.out_off, ctx.device),
				sbind,
			};
			ctx.recorder.dispatch(p, bindings, &pc, sizeof(pc), groups_for(count, kWorkgroupSize));
		}
	}

	BinaryOp op_;
};

} // namespace

void flaxdrm_register_ops_binary(KernelRegistry& registry)
{
	registry.add(FLAXDRM_OP_ADD, std::make_unique<BinaryKernel>(BIN_ADD));
	registry.add(FLAXDRM_OP_SUB, std::make_unique<BinaryKernel>(BIN_SUB));
	registry.add(FLAXDRM_OP_MUL, std::make_unique<BinaryKernel>(BIN_MUL));
	registry.add(FLAXDRM_OP_DIV, std::make_unique<BinaryKernel>(BIN_DIV));
	registry.add(FLAXDRM_OP_MAXIMUM, std::make_unique<BinaryKernel>(BIN_MAX));
	registry.add(FLAXDRM_OP_MINIMUM, std::make_unique<BinaryKernel>(BIN_MIN));
}

} // namespace flaxdrm::rt
