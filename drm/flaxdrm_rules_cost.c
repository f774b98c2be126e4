// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Cost of one op from the program's shapes alone: FLOPs, bytes read and
 * bytes written, for the kernel's perf counters and JOB_QUERY. The
 * conventions follow the userspace profile tool (client/op_costs.cpp):
 *   - a multiply-add is 2 FLOPs; an exp, log, tanh, erf, rsqrt or compare
 *     is 1; a bias adds 1 per output element;
 *   - bytes_read is every input's bytes (variables included; Embed reads
 *     only the indices and the rows it gathers), bytes_written every
 *     output's;
 *   - layout ops do no FLOPs; a reshape is a view and moves no bytes.
 * Sums saturate at U64_MAX instead of wrapping. Freestanding like
 * flaxdrm_rules.c.
 */
#include "flaxdrm_rules_ops.h"

#define COST_MAX	(~(__u64)0)

static __u64 sat_mul(__u64 a, __u64 b)
{
	__u64 r;

	return __builtin_mul_overflow(a, b, &r) ? COST_MAX : r;
}

static __u64 sat_add(__u64 a, __u64 b)
{
	__u64 r;

	return __builtin_add_overflow(a, b, &r) ? COST_MAX : r;
}

struct cost_operands {
	const struct drm_flaxdrm_op *op;
	const struct drm_flaxdrm_tensor *t;
	__u32 num_tensors;
};

static const struct drm_flaxdrm_tensor *cost_in(const struct cost_operands *o,
						__u32 i)
{
	if (i >= o->op->num_inputs || i >= FLAXDRM_MAX_OP_INPUTS ||
	    o->op->inputs[i] >= o->num_tensors)
		return (void *)0;
	return &o->t[o->op->inputs[i]];
}

static const struct drm_flaxdrm_tensor *cost_out(const struct cost_operands *o,
						 __u32 i)
{
	if (i >= o->op->num_outputs || i >= FLAXDRM_MAX_OP_OUTPUTS ||
	    o->op->outputs[i] >= o->num_tensors)
		return (void *)0;
	return &o->t[o->op->outputs[i]];
}

static __u64 elements(const struct drm_flaxdrm_tensor *t)
{
	__u64 n = 1;
	__u32 i;

	if (!t)
		return 0;
	for (i = 0; i < t->rank && i < FLAXDRM_MAX_RANK; i++)
		n = sat_mul(n, t->dims[i]);
	return n;
}

static __u64 bytes(const struct drm_flaxdrm_tensor *t)
{
	return t ? sat_mul(elements(t), flaxdrm_dtype_size(t->dtype)) : 0;
}

/* dims[rank - from_end], 1 when there is no such axis */
static __u64 dim(const struct drm_flaxdrm_tensor *t, __u32 from_end)
{
	if (!t || from_end < 1 || t->rank < from_end)
		return 1;
	return t->dims[t->rank - from_end];
}

/* Every input read once, every output written once. */
static void moves(const struct cost_operands *o, __u64 flops,
		  struct flaxdrm_cost *c)
{
	__u32 i;

	c->flops = flops;
	for (i = 0; i < o->op->num_inputs; i++)
		c->bytes_read = sat_add(c->bytes_read, bytes(cost_in(o, i)));
	for (i = 0; i < o->op->num_outputs; i++)
		c->bytes_written = sat_add(c->bytes_written,
					   bytes(cost_out(o, i)));
}

/* y[..., F] = x[..., K] @ kernel[K, F] (+ bias): 2 * K per output, +1 bias */
static __u64 dense_flops(const struct cost_operands *o)
{
	const struct drm_flaxdrm_tensor *kernel = cost_in(o, 1);
	__u32 n = o->op->attrs[0] ? o->op->attrs[0] : 1;
	__u64 k = 1;
	__u32 i;

	for (i = 0; kernel && i < n && i < kernel->rank; i++)
		k = sat_mul(k, kernel->dims[i]);
	return sat_mul(elements(cost_out(o, 0)),
		       sat_add(sat_mul(2, k), o->op->num_inputs >= 3));
}

/*
 * y[N, OH, OW, F] from kernel[KH, KW, C / groups, F]: 2 * KH * KW * C /
 * groups per output, +1 with a bias.
 */
static __u64 conv_flops(const struct cost_operands *o)
{
	const struct drm_flaxdrm_tensor *kernel = cost_in(o, 1);
	__u64 window;

	if (!kernel || kernel->rank != 4)
		return 0;
	window = sat_mul(sat_mul(kernel->dims[0], kernel->dims[1]),
			 kernel->dims[2]);
	return sat_mul(elements(cost_out(o, 0)),
		       sat_add(sat_mul(2, window), o->op->num_inputs >= 3));
}

/*
 * q[B, Lq, H, D], k[B, Lk, H, D], v[B, Lk, H, Dv]: Q K^T (2 D per logit),
 * softmax (5 per logit: scale, max, exp, sum, divide), P V (2 Dv per logit).
 */
static __u64 attention_flops(const struct cost_operands *o)
{
	const struct drm_flaxdrm_tensor *q = cost_in(o, 0);
	const struct drm_flaxdrm_tensor *k = cost_in(o, 1);
	const struct drm_flaxdrm_tensor *v = cost_in(o, 2);
	__u64 logits, per;

	if (!q || !k || !v || q->rank != 4 || k->rank != 4 || v->rank != 4)
		return 0;
	logits = sat_mul(sat_mul(q->dims[0], q->dims[2]),
			 sat_mul(q->dims[1], k->dims[1]));
	per = sat_add(sat_mul(2, q->dims[3]), sat_add(5, sat_mul(2, v->dims[3])));
	return sat_mul(logits, per);
}

/* normalisation: per element base + 1 per scale and bias */
static __u64 norm_flops(const struct cost_operands *o, __u64 base)
{
	__u32 flags = o->op->attrs[2];

	base += !!(flags & FLAXDRM_NORM_SCALE) + !!(flags & FLAXDRM_NORM_BIAS);
	return sat_mul(elements(cost_in(o, 0)), base);
}

/* FLOPs per output element of the unary elementwise ops */
static __u64 unary_per(const struct drm_flaxdrm_op *op)
{
	switch (op->opcode) {
	case FLAXDRM_OP_GELU:
		/* exact: 0.5 x (1 + erf(x / sqrt 2)); tanh form: 9 */
		return op->attrs[0] ? 9 : 5;
	case FLAXDRM_OP_SILU:
	case FLAXDRM_OP_SOFTMAX:
	case FLAXDRM_OP_LOG_SOFTMAX:
		return 5;
	case FLAXDRM_OP_SIGMOID:
	case FLAXDRM_OP_ELU:
		return 4;
	case FLAXDRM_OP_SOFTPLUS:
		return 3;
	case FLAXDRM_OP_LEAKY_RELU:
	case FLAXDRM_OP_DROPOUT:
		return 2;
	default:
		/* relu, tanh */
		return 1;
	}
}

void flaxdrm_op_cost(const struct drm_flaxdrm_op *op,
		     const struct drm_flaxdrm_tensor *tensors,
		     __u32 num_tensors, struct flaxdrm_cost *cost)
{
	struct cost_operands o = { op, tensors, num_tensors };
	__u64 out = elements(cost_out(&o, 0));
	__u64 k;

	cost->flops = 0;
	cost->bytes_read = 0;
	cost->bytes_written = 0;

	switch (op->opcode) {
	case FLAXDRM_OP_DENSE:
		moves(&o, dense_flops(&o), cost);
		break;
	case FLAXDRM_OP_ATTEND:
		/* y[..., N] = q[..., F] @ table[N, F]^T */
		moves(&o, sat_mul(out, sat_mul(2, dim(cost_in(&o, 0), 1))), cost);
		break;
	case FLAXDRM_OP_EMBED:
		/* a gather: the indices and the rows it copies */
		cost->bytes_read = sat_add(bytes(cost_in(&o, 0)),
					   bytes(cost_out(&o, 0)));
		cost->bytes_written = bytes(cost_out(&o, 0));
		break;
	case FLAXDRM_OP_MATMUL:
		/* y[..., M, N] = a[..., M, K] @ b[..., K, N], a maybe transposed */
		k = dim(cost_in(&o, 0), (op->attrs[0] & 1) ? 2 : 1);
		moves(&o, sat_mul(out, sat_mul(2, k)), cost);
		break;
	case FLAXDRM_OP_CONV:
		moves(&o, conv_flops(&o), cost);
		break;
	case FLAXDRM_OP_AVG_POOL:
	case FLAXDRM_OP_MAX_POOL:
		/* one add or compare per window element per output */
		moves(&o, sat_mul(out, sat_mul(op->attrs[0], op->attrs[1])),
		      cost);
		break;
	case FLAXDRM_OP_LAYER_NORM:
	case FLAXDRM_OP_GROUP_NORM:
		/* mean (1), variance (3), normalise (2) */
		moves(&o, norm_flops(&o, 6), cost);
		break;
	case FLAXDRM_OP_RMS_NORM:
		/* mean of squares (2), normalise (1) */
		moves(&o, norm_flops(&o, 3), cost);
		break;
	case FLAXDRM_OP_BATCH_NORM:
		/* normalise (2); training adds the batch statistics (4) */
		moves(&o, norm_flops(&o, (op->attrs[2] & FLAXDRM_NORM_TRAINING) ?
				     6 : 2), cost);
		break;
	case FLAXDRM_OP_ATTENTION:
		moves(&o, attention_flops(&o), cost);
		break;
	case FLAXDRM_OP_ADD:
	case FLAXDRM_OP_SUB:
	case FLAXDRM_OP_MUL:
	case FLAXDRM_OP_DIV:
	case FLAXDRM_OP_MAXIMUM:
	case FLAXDRM_OP_MINIMUM:
		moves(&o, out, cost);
		break;
	case FLAXDRM_OP_RELU:
	case FLAXDRM_OP_GELU:
	case FLAXDRM_OP_SILU:
	case FLAXDRM_OP_SIGMOID:
	case FLAXDRM_OP_TANH:
	case FLAXDRM_OP_ELU:
	case FLAXDRM_OP_LEAKY_RELU:
	case FLAXDRM_OP_SOFTPLUS:
	case FLAXDRM_OP_SOFTMAX:
	case FLAXDRM_OP_LOG_SOFTMAX:
	case FLAXDRM_OP_DROPOUT:
		moves(&o, sat_mul(out, unary_per(op)), cost);
		break;
	case FLAXDRM_OP_REDUCE_SUM:
	case FLAXDRM_OP_REDUCE_MAX:
		/* one add or compare per input element */
		moves(&o, elements(cost_in(&o, 0)), cost);
		break;
	case FLAXDRM_OP_REDUCE_MEAN:
		/* and one division per output */
		moves(&o, sat_add(elements(cost_in(&o, 0)), out), cost);
		break;
	case FLAXDRM_OP_RESHAPE:
		break;
	case FLAXDRM_OP_SLICE:
		/* reads only what it copies */
		cost->bytes_read = bytes(cost_out(&o, 0));
		cost->bytes_written = cost->bytes_read;
		break;
	default:
		/* transpose, concat, astype: copies */
		moves(&o, 0, cost);
		break;
	}
}

void flaxdrm_program_cost(const struct drm_flaxdrm_op *ops, __u32 num_ops,
			  const struct drm_flaxdrm_tensor *tensors,
			  __u32 num_tensors, struct flaxdrm_cost *cost)
{
	struct flaxdrm_cost c;
	__u32 i;

	cost->flops = 0;
	cost->bytes_read = 0;
	cost->bytes_written = 0;
	for (i = 0; i < num_ops; i++) {
		flaxdrm_op_cost(&ops[i], tensors, num_tensors, &c);
		cost->flops = sat_add(cost->flops, c.flops);
		cost->bytes_read = sat_add(cost->bytes_read, c.bytes_read);
		cost->bytes_written = sat_add(cost->bytes_written,
					      c.bytes_written);
	}
}
