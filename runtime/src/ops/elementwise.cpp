// Elementwise unary ops (relu, gelu, silu, sigmoid, tanh, elu, leaky_relu,
// softplus): shaders/elementwise.comp with the op as a specialization
// constant. Dropout (dropout.cpp) and reshape (layout.cpp) reuse
// record_unary.
#include <algorithm>

#include "elementwise_common.hpp"
#include "pipeline_cache.hpp"

namespace flaxdrm::rt {

namespace ew {

namespace {

void record_scalar(OpContext& ctx, UnaryOp op, const UnaryPush& params, uint64_t first, uint64_t n)
{
	const TensorView& x = ctx.inputs[0];
	const TensorView& y = ctx.outputs[0];
	const uint32_t spec[] = {kWorkgroupSize, op};
	const Pipeline& p = ctx.pipelines.get("elementwise", spec, 2, sizeof(UnaryPush));
	const uint64_t chunk = max_binding_bytes(ctx.device) / 4 - 64;
	for (uint64_t begin = first; begin < first + n; begin += chunk) {
		const uint64_t count = std::min(chunk, first + n - begin);
		UnaryPush pc = params;
		pc.count = uint32_t(count);
		pc.base = uint32_t(begin);
		const BufferRange bindings[] = {
			x.range(begin * 4, (begin + count) * 4, 4, &pc.in_off, ctx.device),
			y.range(begin * 4, (begin + count) * 4, 4, &pc.out_off, ctx.device),
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
		const Pipeline& p = texel ? ctx.pipelines.get("elementwise_texel", spec, texel_types, sizeof(UnaryPush))
					  : ctx.pipelines.get("elementwise_vec4", spec, 2, sizeof(UnaryPush));
		uint64_t chunk = max_binding_bytes(ctx.device) / 16 - 16;
		if (texel)
			chunk = std::min(chunk, max_texels - 16);
		for (uint64_t begin = 0; begin < n4; begin += chunk) {
			const uint64_t count = std::min(chunk, n4 - begin);
			UnaryPush pc = params;
			pc.count = uint32_t(count);
			pc.base = uint32_t(begin * 4);
			BufferRange bindings[] = {
				x.range(begin * 16, (begin + count) * 16, 16, &pc.in_off, ctx.device),
				y.range(begin * 16, (begin + count) * 16, 16, &pc.out_off, ctx.device),
			};
			if (texel) {
				bindings[0].type = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
				bindings[0].format = VK_FORMAT_R32G32B32A32_SFLOAT;
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
