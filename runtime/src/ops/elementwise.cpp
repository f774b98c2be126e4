// Elementwise unary ops (relu, gelu, silu, sigmoid, tanh, elu, leaky_relu,
// softplus): shaders/elementwise.comp with the op as a specialization
// constant; f16 tensors on its F16 modules (*_f16: f16 storage, f32
// arithmetic). Dropout (dropout.cpp) and reshape (layout.cpp) reuse
// record_unary.
#include <algorithm>

#include "elementwise_common.hpp"
#include "f16.hpp"
#include "pipeline_cache.hpp"

namespace flaxdrm::rt {

namespace ew {

namespace {

// The module for f32 (and other 32-bit) tensors, or its f16 variant.
std::string module_name(const char* base, bool f16)
{
	return f16 ? std::string(base) + "_f16" : std::string(base);
}

void record_scalar(OpContext& ctx, UnaryOp op, const UnaryPush& params, uint64_t first, uint64_t n)
{
	const TensorView& x = ctx.inputs[0];
	const TensorView& y = ctx.outputs[0];
	const bool f16 = x.desc->dtype == FLAXDRM_DTYPE_F16;
	const uint64_t es = f16 ? 2 : 4; // bytes per element
	const uint32_t spec[] = {kWorkgroupSize, op};
	const Pipeline& p = ctx.pipelines.get(module_name("elementwise", f16), spec, 2, sizeof(UnaryPush));
	const uint64_t chunk = max_binding_bytes(ctx.device) / 4 - 64;
	for (uint64_t begin = first; begin < first + n; begin += chunk) {
		const uint64_t count = std::min(chunk, first + n - begin);
		UnaryPush pc = params;
		pc.count = uint32_t(count);
		pc.base = uint32_t(begin);
		const BufferRange bindings[] = {
			x.range(begin * es, (begin + count) * es, uint32_t(es), &pc.in_off, ctx.device),
			y.range(begin * es, (begin + count) * es, uint32_t(es), &pc.out_off, ctx.device),
		};
		ctx.recorder.dispatch(p, bindings, &pc, sizeof(pc), groups_for(count, kWorkgroupSize));
	}
}

} // namespace

void record_unary(OpContext& ctx, UnaryOp op, const UnaryPush& params)
{
	const TensorView& x = ctx.inputs[0];
	const TensorView& y = ctx.outputs[0];
	const uint64_t n = x.elements();
	const bool f16 = x.desc->dtype == FLAXDRM_DTYPE_F16;
	const uint64_t vs = f16 ? 8 : 16; // bytes per 4 elements
	// 4 elements per invocation where both tensors start 16-byte aligned
	// (the executor aligns tensors to 64 bytes); the tail on the scalar
	// module. CPU devices read through texel buffers.
	const uint64_t n4 = (x.offset % 16 || y.offset % 16) ? 0 : n / 4;
	if (n4) {
		const bool texel = ctx.device.cpu_kernels();
		const uint64_t max_texels = ctx.device.limits().maxTexelBufferElements;
		const uint32_t spec[] = {kWorkgroupSize, op};
		const VkDescriptorType texel_types[] = {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER,
							VK_DESCRIPTOR_TYPE_STORAGE_BUFFER};
		const Pipeline& p = texel ? ctx.pipelines.get(module_name("elementwise_texel", f16), spec, texel_types,
							      sizeof(UnaryPush))
					  : ctx.pipelines.get(module_name("elementwise_vec4", f16), spec, 2, sizeof(UnaryPush));
		uint64_t chunk = max_binding_bytes(ctx.device) / 16 - 16;
		if (texel)
			chunk = std::min(chunk, max_texels - 16);
		for (uint64_t begin = 0; begin < n4; begin += chunk) {
			const uint64_t count = std::min(chunk, n4 - begin);
			UnaryPush pc = params;
			pc.count = uint32_t(count);
			pc.base = uint32_t(begin * 4);
			BufferRange bindings[] = {
				x.range(begin * vs, (begin + count) * vs, uint32_t(vs), &pc.in_off, ctx.device),
				y.range(begin * vs, (begin + count) * vs, uint32_t(vs), &pc.out_off, ctx.device),
			};
			if (texel) {
				bindings[0].type = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
				bindings[0].format = f16 ? VK_FORMAT_R16G16B16A16_SFLOAT : VK_FORMAT_R32G32B32A32_SFLOAT;
			}
			ctx.recorder.dispatch(p, bindings, &pc, sizeof(pc), groups_for(count, kWorkgroupSize));
		}
	}
	if (n4 * 4 < n)
		record_scalar(ctx, op, params, n4 * 4, n - n4 * 4);
}

} // namespace ew

namespace {

using namespace ew;

class UnaryKernel final : public OpKernel {
public:
	explicit UnaryKernel(UnaryOp op) : op_(op) {}

	void check(const OpContext& ctx) const override { require_f16_device(ctx); }

	void record(OpContext& ctx) const override
	{
		UnaryPush pc;
		UnaryOp op = op_;
		switch (ctx.op.opcode) {
		case FLAXDRM_OP_GELU:
			op = ctx.op.attrs[0] ? UNARY_GELU_TANH : UNARY_GELU_ERF;
			break;
		case FLAXDRM_OP_ELU:
		case FLAXDRM_OP_LEAKY_RELU:
			pc.alpha = f32_from_bits(ctx.op.attrs[0]);
			break;
		default:
			break;
		}
		record_unary(ctx, op, pc);
	}

private:
	UnaryOp op_;
};

} // namespace

void flaxdrm_register_ops_elementwise(KernelRegistry& registry)
{
	registry.add(FLAXDRM_OP_RELU, std::make_unique<UnaryKernel>(UNARY_RELU));
	registry.add(FLAXDRM_OP_GELU, std::make_unique<UnaryKernel>(UNARY_GELU_TANH));
	registry.add(FLAXDRM_OP_SILU, std::make_unique<UnaryKernel>(UNARY_SILU));
	registry.add(FLAXDRM_OP_SIGMOID, std::make_unique<UnaryKernel>(UNARY_SIGMOID));
	registry.add(FLAXDRM_OP_TANH, std::make_unique<UnaryKernel>(UNARY_TANH));
	registry.add(FLAXDRM_OP_ELU, std::make_unique<UnaryKernel>(UNARY_ELU));
	registry.add(FLAXDRM_OP_LEAKY_RELU, std::make_unique<UnaryKernel>(UNARY_LEAKY_RELU));
	registry.add(FLAXDRM_OP_SOFTPLUS, std::make_unique<UnaryKernel>(UNARY_SOFTPLUS));
}

} // namespace flaxdrm::rt
