// FLOPs and bytes per op from the program's shapes: one function per op
// (conventions in include/flaxdrm/op_costs.hpp).
#include "flaxdrm/op_costs.hpp"

#include <algorithm>

#include "flaxdrm_rules.h"

namespace flaxdrm {
namespace {

struct Operands {
	const drm_flaxdrm_op& op;
	std::span<const drm_flaxdrm_tensor> tensors;

	const drm_flaxdrm_tensor* in(uint32_t i) const
	{
		return i < op.num_inputs && op.inputs[i] < tensors.size() ? &tensors[op.inputs[i]] : nullptr;
	}
	const drm_flaxdrm_tensor* out(uint32_t i) const
	{
		return i < op.num_outputs && op.outputs[i] < tensors.size() ? &tensors[op.outputs[i]] : nullptr;
	}
};

uint64_t elements(const drm_flaxdrm_tensor* t)
{
	if (!t)
		return 0;
	uint64_t n = 1;
	for (uint32_t i = 0; i < t->rank && i < FLAXDRM_MAX_RANK; i++)
		n *= t->dims[i];
	return n;
}

uint64_t bytes(const drm_flaxdrm_tensor* t)
{
	return t ? elements(t) * flaxdrm_dtype_size(t->dtype) : 0;
}

uint32_t dim(const drm_flaxdrm_tensor* t, int from_end)
{
	if (!t || int(t->rank) < from_end || from_end < 1)
		return 1;
	return t->dims[t->rank - from_end];
}

// Every input read once, every output written once.
OpCost moves(const Operands& o, uint64_t flops)
{
	OpCost c;
	c.flops = flops;
	for (uint32_t i = 0; i < o.op.num_inputs; i++)
		c.bytes_read += bytes(o.in(i));
	for (uint32_t i = 0; i < o.op.num_outputs; i++)
		c.bytes_written += bytes(o.out(i));
	return c;
}

// y[..., F] = x[..., K] @ kernel[K, F] (+ bias): 2*K per output, +1 with bias
OpCost dense(const Operands& o)
{
	const auto* kernel = o.in(1);
	const auto* y = o.out(0);
	uint32_t n = o.op.attrs[0] ? o.op.attrs[0] : 1; // contracted axes
	uint64_t k = 1;
	for (uint32_t i = 0; kernel && i < n && i < kernel->rank; i++)
		k *= kernel->dims[i];
	uint64_t per_out = 2 * k + (o.op.num_inputs >= 3 ? 1 : 0);
	return moves(o, elements(y) * per_out);
}

// y[..., N] = q[..., F] @ table[N, F]^T
OpCost attend(const Operands& o)
{
	return moves(o, elements(o.out(0)) * 2 * dim(o.in(0), 1));
}

// a gather: reads the indices and only the rows it copies
OpCost embed(const Operands& o)
{
	OpCost c;
	c.bytes_read = bytes(o.in(0)) + bytes(o.out(0));
	c.bytes_written = bytes(o.out(0));
	return c;
}

// y[..., M, N] = a[..., M, K] @ b[..., K, N]; attrs[0] bit 0 transposes a
OpCost matmul(const Operands& o)
{
	uint64_t k = (o.op.attrs[0] & 1) ? dim(o.in(0), 2) : dim(o.in(0), 1);
	return moves(o, elements(o.out(0)) * 2 * k);
}

// y[N, OH, OW, F]: 2 * KH * KW * C/groups per output, +1 with bias
OpCost conv(const Operands& o)
{
	const auto* kernel = o.in(1);
	uint64_t window = kernel && kernel->rank == 4 ? uint64_t{kernel->dims[0]} * kernel->dims[1] * kernel->dims[2]
						       : elements(kernel) / std::max<uint64_t>(1, dim(kernel, 1));
	return moves(o, elements(o.out(0)) * (2 * window + (o.op.num_inputs >= 3 ? 1 : 0)));
}

// one add or compare per window element per output
OpCost pool(const Operands& o)
{
	return moves(o, elements(o.out(0)) * uint64_t{o.op.attrs[0]} * o.op.attrs[1]);
}

// per element: statistics + normalise, +1 per scale and bias
OpCost norm(const Operands& o, uint64_t base)
{
	uint32_t flags = o.op.attrs[2];
	uint64_t per = base + ((flags & FLAXDRM_NORM_SCALE) ? 1 : 0) + ((flags & FLAXDRM_NORM_BIAS) ? 1 : 0);
	return moves(o, elements(o.in(0)) * per);
}

// LayerNorm, GroupNorm: mean (1), variance (3), normalise (2: sub, mul by rsqrt)
OpCost layer_norm(const Operands& o) { return norm(o, 6); }
// RMSNorm: mean of squares (2), normalise (1)
OpCost rms_norm(const Operands& o) { return norm(o, 3); }
// BatchNorm: normalise with the given statistics (2); training: +4 for the
// batch mean and variance
OpCost batch_norm(const Operands& o)
{
	return norm(o, (o.op.attrs[2] & FLAXDRM_NORM_TRAINING) ? 6 : 2);
}

// q[B, Lq, H, D], k[B, Lk, H, D], v[B, Lk, H, Dv]: Q K^T (2 D per logit),
// softmax (5 per logit: scale, max, exp, sum, divide), P V (2 Dv per logit)
OpCost attention(const Operands& o)
{
	const auto* q = o.in(0);
	const auto* k = o.in(1);
	const auto* v = o.in(2);
	if (!q || !k || !v || q->rank != 4 || k->rank != 4 || v->rank != 4)
		return moves(o, 0);
	uint64_t logits = uint64_t{q->dims[0]} * q->dims[2] * q->dims[1] * k->dims[1];
	return moves(o, logits * (2 * uint64_t{q->dims[3]} + 5 + 2 * uint64_t{v->dims[3]}));
}

// one operation per output element
OpCost binary(const Operands& o) { return moves(o, elements(o.out(0))); }

// unary: operations per element with each transcendental counted as 1
OpCost unary(const Operands& o, uint64_t per) { return moves(o, elements(o.out(0)) * per); }

uint64_t gelu_flops(const drm_flaxdrm_op& op)
{
	// exact: 0.5 x (1 + erf(x / sqrt 2)) = 5; tanh: 0.5 x (1 + tanh(c (x + 0.044715 x^3))) = 9
	return op.attrs[0] ? 9 : 5;
}

// one add or compare per input element; a mean divides once per output
OpCost reduce(const Operands& o, bool mean)
{
	return moves(o, elements(o.in(0)) + (mean ? elements(o.out(0)) : 0));
}

// copies: no FLOPs; a slice reads only what it copies
OpCost copy(const Operands& o) { return moves(o, 0); }
OpCost slice(const Operands& o)
{
	OpCost c;
	c.bytes_read = c.bytes_written = bytes(o.out(0));
	return c;
}
OpCost reshape(const Operands&) { return {}; }

} // namespace

OpCost op_cost(const drm_flaxdrm_op& op, std::span<const drm_flaxdrm_tensor> tensors)
{
	Operands o{op, tensors};
	switch (op.opcode) {
	case FLAXDRM_OP_DENSE: return dense(o);
	case FLAXDRM_OP_RELU: return unary(o, 1);
	case FLAXDRM_OP_ATTEND: return attend(o);
	case FLAXDRM_OP_EMBED: return embed(o);
	case FLAXDRM_OP_MATMUL: return matmul(o);
	case FLAXDRM_OP_CONV: return conv(o);
	case FLAXDRM_OP_AVG_POOL:
	case FLAXDRM_OP_MAX_POOL: return pool(o);
	case FLAXDRM_OP_LAYER_NORM:
	case FLAXDRM_OP_GROUP_NORM: return layer_norm(o);
	case FLAXDRM_OP_RMS_NORM: return rms_norm(o);
	case FLAXDRM_OP_BATCH_NORM: return batch_norm(o);
	case FLAXDRM_OP_ATTENTION: return attention(o);
	case FLAXDRM_OP_ADD:
	case FLAXDRM_OP_SUB:
	case FLAXDRM_OP_MUL:
	case FLAXDRM_OP_DIV:
	case FLAXDRM_OP_MAXIMUM:
	case FLAXDRM_OP_MINIMUM: return binary(o);
	case FLAXDRM_OP_GELU: return unary(o, gelu_flops(op));
	case FLAXDRM_OP_SILU: return unary(o, 5);      // x * 1 / (1 + exp(-x))
	case FLAXDRM_OP_SIGMOID: return unary(o, 4);   // 1 / (1 + exp(-x))
	case FLAXDRM_OP_TANH: return unary(o, 1);
	case FLAXDRM_OP_ELU: return unary(o, 4);       // x > 0 ? x : alpha (exp(x) - 1)
	case FLAXDRM_OP_LEAKY_RELU: return unary(o, 2); // x > 0 ? x : slope x
	case FLAXDRM_OP_SOFTPLUS: return unary(o, 3);  // log(1 + exp(x))
	case FLAXDRM_OP_SOFTMAX:
	case FLAXDRM_OP_LOG_SOFTMAX: return unary(o, 5); // max, subtract, exp, sum, divide/log
	case FLAXDRM_OP_DROPOUT: return unary(o, 2);   // compare, scale
	case FLAXDRM_OP_REDUCE_SUM:
	case FLAXDRM_OP_REDUCE_MAX: return reduce(o, false);
	case FLAXDRM_OP_REDUCE_MEAN: return reduce(o, true);
	case FLAXDRM_OP_RESHAPE: return reshape(o);
	case FLAXDRM_OP_TRANSPOSE:
	case FLAXDRM_OP_CONCAT: return copy(o);
	case FLAXDRM_OP_SLICE: return slice(o);
	default: return moves(o, 0);
	}
}

} // namespace flaxdrm
