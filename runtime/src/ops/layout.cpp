// Layout ops on shaders/layout.comp, a collapsed strided copy:
//   reshape    a contiguous copy (chunked to fit bindings);
//   transpose  walk y, read x with permuted strides;
//   slice      walk y, read x from the start offset with x's strides;
//   concat     per input, walk it and write into y's block along the axis.
// f16 tensors are copied as 2-byte elements, in 4- or 16-byte words where
// the shapes allow (record_copy); bits are kept exactly.
// Reshape copies rather than aliasing its output to its input: the
// executor's barrier tracking is per tensor, and an alias would need it to
// know about views.
#include <algorithm>

#include "elementwise_common.hpp"
#include "f16.hpp"
#include "pipeline_cache.hpp"

namespace flaxdrm::rt {

namespace {

using namespace ew;

struct CopyPush {
	uint32_t count, src_off, dst_off, rank;
	uint32_t dims[FLAXDRM_MAX_RANK];
	uint32_t ss[FLAXDRM_MAX_RANK];
	uint32_t ds[FLAXDRM_MAX_RANK];
};
static_assert(sizeof(CopyPush) <= 128);

// Strided<2>: operand 0 the source, 1 the destination, in elements of
// `es` bytes (2 or 4; 64-bit dtypes come as pairs of 4-byte elements).
// The copy moves the widest words it can: 16 bytes (layout_vec4) or 4
// bytes (layout) where the innermost run is contiguous on both sides and
// every run, stride and offset is a multiple of a word, else single
// elements (layout, or layout_u16 for 2-byte ones). Words are copied as
// integers: bit-exact.
void record_copy(OpContext& ctx, const TensorView& src, uint64_t src_elem, const TensorView& dst,
		 uint64_t dst_elem, Strided<2> s, uint32_t es)
{
	s.collapse();
	const uint32_t in = s.rank - 1;
	// Whether words of k elements tile the copy.
	const auto fits = [&](uint64_t k) {
		bool ok = s.strides[0][in] == 1 && s.strides[1][in] == 1 && s.dims[in] % k == 0 &&
			  src.offset % (k * es) == 0 && dst.offset % (k * es) == 0 && src_elem % k == 0 &&
			  dst_elem % k == 0;
		for (uint32_t d = 0; d < in; d++)
			ok = ok && s.strides[0][d] % k == 0 && s.strides[1][d] % k == 0;
		return ok;
	};
	uint32_t wb = es; // bytes per word
	if (fits(16 / es))
		wb = 16;
	else if (es < 4 && fits(4 / es))
		wb = 4;
	const uint32_t k = wb / es; // elements per word
	if (k > 1) {
		s.dims[in] /= k;
		for (uint32_t d = 0; d < in; d++)
			s.strides[0][d] /= k, s.strides[1][d] /= k;
		src_elem /= k;
		dst_elem /= k;
	}
	const uint64_t n = s.count();
	const bool contiguous = s.rank == 1 && s.strides[0][0] == 1 && s.strides[1][0] == 1;
	const uint32_t spec[] = {kWorkgroupSize, contiguous ? 1u : 0u};
	const char* module = wb == 16 ? "layout_vec4" : wb == 4 ? "layout" : "layout_u16";
	const Pipeline& p = ctx.pipelines.get(module, spec, 2, sizeof(CopyPush));
	if (contiguous) {
		// room for each binding to start up to 256 bytes (an offset
		// alignment) before its chunk
		const uint64_t chunk = (max_binding_bytes(ctx.device) - std::max(256u, 64 * wb)) / wb;
		for (uint64_t begin = 0; begin < n; begin += chunk) {
			const uint64_t count = std::min(chunk, n - begin);
			CopyPush pc{};
			pc.count = uint32_t(count);
			pc.rank = 1;
			const uint64_t sb = (src_elem + begin) * wb, db = (dst_elem + begin) * wb;
			const BufferRange bindings[] = {
				src.range(sb, sb + count * wb, wb, &pc.src_off, ctx.device),
				dst.range(db, db + count * wb, wb, &pc.dst_off, ctx.device),
			};
			ctx.recorder.dispatch(p, bindings, &pc, sizeof(pc), groups_for(count, kWorkgroupSize));
		}
		return;
	}
	CopyPush pc{};
	pc.count = uint32_t(n);
	pc.rank = s.rank;
	for (uint32_t d = 0; d < s.rank; d++) {
		pc.dims[d] = uint32_t(s.dims[d]);
		pc.ss[d] = uint32_t(s.strides[0][d]);
		pc.ds[d] = uint32_t(s.strides[1][d]);
	}
	const BufferRange bindings[] = {
		src.range(0, src.size, wb, &pc.src_off, ctx.device),
		dst.range(0, dst.size, wb, &pc.dst_off, ctx.device),
	};
	pc.src_off += uint32_t(src_elem);
	pc.dst_off += uint32_t(dst_elem);
	ctx.recorder.dispatch(p, bindings, &pc, sizeof(pc), groups_for(n, kWorkgroupSize));
}

// Bytes per element the copies use: 2 (f16) or 4; a 64-bit element is
// two 4-byte ones (only reshape takes 64-bit dtypes).
uint32_t elem_bytes(const drm_flaxdrm_tensor& t)
{
	return std::min(flaxdrm_dtype_size(t.dtype), 4u);
}

uint32_t elems_per_dtype(const drm_flaxdrm_tensor& t)
{
	return flaxdrm_dtype_size(t.dtype) / elem_bytes(t);
}

// f16 copies bind their tensors as 16-bit storage buffers
// (storageBuffer16BitAccess, with no f16 arithmetic). This runtime
// enables that only together with shaderFloat16 (DeviceImpl::f16()), so
// an f16 layout op needs an f16 device like every other f16 op; a copy
// of whole 32-bit words alone would not, but whether a program runs
// should not depend on the parity of its shapes.
void check_dtype(const OpContext& ctx, const TensorView& t)
{
	const uint32_t size = flaxdrm_dtype_size(t.desc->dtype);
	if (size != 4 && size != 2)
		fail(-EINVAL, ctx.where() + ": tensor " + std::to_string(t.index) +
				      ": only 16- and 32-bit dtypes (f16, f32, i32) are supported by this runtime");
	require_f16_device(ctx);
	// other 2-byte dtypes (bf16) take the same 16-bit copy
	if (size == 2 && !ctx.device.f16())
		fail(-EINVAL, ctx.where() + ": tensor " + std::to_string(t.index) +
				      " has 2-byte elements, whose copy needs 16-bit storage buffers, which this device (" +
				      ctx.device.info().name + ") does not have enabled");
}

class ReshapeKernel final : public OpKernel {
public:
	void check(const OpContext& ctx) const override
	{
		const uint32_t size = flaxdrm_dtype_size(ctx.inputs[0].desc->dtype);
		if (size != 2 && size != 4 && size != 8)
			fail(-EINVAL, ctx.where() + ": tensor " + std::to_string(ctx.inputs[0].index) +
					      ": only 16-, 32- and 64-bit dtypes are supported by this runtime");
		require_f16_device(ctx);
	}

	void record(OpContext& ctx) const override
	{
		Strided<2> s;
		s.rank = 1;
		const drm_flaxdrm_tensor& x = *ctx.inputs[0].desc;
		s.dims[0] = ctx.inputs[0].elements() * elems_per_dtype(x);
		s.strides[0][0] = s.strides[1][0] = 1;
		record_copy(ctx, ctx.inputs[0], 0, ctx.outputs[0], 0, s, elem_bytes(x));
	}
};

class TransposeKernel final : public OpKernel {
public:
	void check(const OpContext& ctx) const override
	{
		check_dtype(ctx, ctx.inputs[0]);
		require_bindable(ctx, ctx.inputs[0], "x");
		require_bindable(ctx, ctx.outputs[0], "y");
	}

	void record(OpContext& ctx) const override
	{
		const drm_flaxdrm_tensor& x = *ctx.inputs[0].desc;
		const drm_flaxdrm_tensor& y = *ctx.outputs[0].desc;
		const auto xs = contiguous_strides(x), ys = contiguous_strides(y);
		Strided<2> s;
		s.rank = y.rank;
		for (uint32_t d = 0; d < y.rank; d++) {
			s.dims[d] = y.dims[d];
			s.strides[0][d] = xs[ctx.op.attrs[d]];
			s.strides[1][d] = ys[d];
		}
		record_copy(ctx, ctx.inputs[0], 0, ctx.outputs[0], 0, s, elem_bytes(x));
	}
};

class SliceKernel final : public OpKernel {
public:
	void check(const OpContext& ctx) const override
	{
		check_dtype(ctx, ctx.inputs[0]);
		require_bindable(ctx, ctx.inputs[0], "x");
		require_bindable(ctx, ctx.outputs[0], "y");
	}

	void record(OpContext& ctx) const override
	{
		const drm_flaxdrm_tensor& x = *ctx.inputs[0].desc;
		const drm_flaxdrm_tensor& y = *ctx.outputs[0].desc;
		const auto xs = contiguous_strides(x), ys = contiguous_strides(y);
		Strided<2> s;
		s.rank = y.rank;
		uint64_t start = 0;
		for (uint32_t d = 0; d < y.rank; d++) {
			s.dims[d] = y.dims[d];
			s.strides[0][d] = xs[d];
			s.strides[1][d] = ys[d];
			start += uint64_t(ctx.op.attrs[d]) * xs[d];
		}
		record_copy(ctx, ctx.inputs[0], start, ctx.outputs[0], 0, s, elem_bytes(x));
	}
};

class ConcatKernel final : public OpKernel {
public:
	void check(const OpContext& ctx) const override
	{
		for (const TensorView& t : ctx.inputs) {
			check_dtype(ctx, t);
			require_bindable(ctx, t, "input");
		}
		require_bindable(ctx, ctx.outputs[0], "y");
	}

	void record(OpContext& ctx) const override
	{
		const drm_flaxdrm_tensor& y = *ctx.outputs[0].desc;
		const uint32_t axis = ctx.op.attrs[0];
		const auto ys = contiguous_strides(y);
		uint64_t at = 0; // position along the axis
		for (const TensorView& in : ctx.inputs) {
			const drm_flaxdrm_tensor& x = *in.desc;
			const auto xs = contiguous_strides(x);
			Strided<2> s;
			s.rank = x.rank;
			for (uint32_t d = 0; d < x.rank; d++) {
				s.dims[d] = x.dims[d];
				s.strides[0][d] = xs[d];
				s.strides[1][d] = ys[d];
			}
			record_copy(ctx, in, 0, ctx.outputs[0], at * ys[axis], s, elem_bytes(x));
			at += x.dims[axis];
		}
	}
};

} // namespace

void flaxdrm_register_ops_layout(KernelRegistry& registry)
{
	registry.add(FLAXDRM_OP_RESHAPE, std::make_unique<ReshapeKernel>());
	registry.add(FLAXDRM_OP_TRANSPOSE, std::make_unique<TransposeKernel>());
	registry.add(FLAXDRM_OP_SLICE, std::make_unique<SliceKernel>());
	registry.add(FLAXDRM_OP_CONCAT, std::make_unique<ConcatKernel>());
}

} // namespace flaxdrm::rt
