// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Program rules shared by the kernel and the engine runtime; see
 * flaxdrm_rules.h. No libc and no kernel API beyond <linux/types.h> and
 * errno values, so it builds on both sides unchanged.
 */
#include <linux/errno.h>
#include "flaxdrm_rules.h"

__u32 flaxdrm_dtype_size(__u32 dtype)
{
	switch (dtype) {
	case FLAXDRM_DTYPE_F32:
	case FLAXDRM_DTYPE_I32:
		return 4;
	case FLAXDRM_DTYPE_F16:
	case FLAXDRM_DTYPE_BF16:
		return 2;
	case FLAXDRM_DTYPE_I64:
		return 8;
	default:
		return 0;
	}
}

__u64 flaxdrm_shape_bytes(__u32 dtype, __u32 rank, const __u32 *dims)
{
	__u64 bytes = flaxdrm_dtype_size(dtype);
	__u32 i;

	if (!bytes || rank > FLAXDRM_MAX_RANK)
		return 0;
	for (i = 0; i < FLAXDRM_MAX_RANK; i++) {
		if (i >= rank) {
			if (dims[i])
				return 0;
			continue;
		}
		if (!dims[i])
			return 0;
		/* both factors are bounded, so the product cannot wrap */
		bytes *= dims[i];
		if (bytes > FLAXDRM_MAX_BO_SIZE)
			return 0;
	}
	return bytes;
}

__u64 flaxdrm_tensor_bytes(const struct drm_flaxdrm_tensor *t)
{
	return flaxdrm_shape_bytes(t->dtype, t->rank, t->dims);
}

/* A fixed char array holds a NUL-terminated string followed by zeros. */
static int check_string(const char *s, __u32 len, int must_be_empty)
{
	__u32 i = 0;

	while (i < len && s[i])
		i++;
	if (i == len)
		return -EINVAL;
	if (must_be_empty && i)
		return -EINVAL;
	if (!must_be_empty && !i)
		return -EINVAL;
	for (; i < len; i++)
		if (s[i])
			return -EINVAL;
	return 0;
}

int flaxdrm_check_tensor(const struct drm_flaxdrm_tensor *t)
{
	int is_var = t->kind == FLAXDRM_TENSOR_VARIABLE;

	if (t->kind < FLAXDRM_TENSOR_INPUT || t->kind > FLAXDRM_TENSOR_VARIABLE)
		return -EINVAL;
	if (!flaxdrm_tensor_bytes(t))
		return -EINVAL;
	if (is_var != !!t->module)
		return -EINVAL;
	if (check_string(t->collection, FLAXDRM_COLLECTION_LEN, !is_var))
		return -EINVAL;
	if (check_string(t->name, FLAXDRM_NAME_LEN, !is_var))
		return -EINVAL;
	return 0;
}

struct op_rule {
	const char *name;
	__u8 layer;
	__u8 min_inputs;
	__u8 max_inputs;
	__u8 num_outputs;
};

static const struct op_rule op_rules[FLAXDRM_OP_COUNT] = {
	[FLAXDRM_OP_DENSE] = { "Dense", 1, 2, 3, 1 },
	[FLAXDRM_OP_RELU] = { "relu", 0, 1, 1, 1 },
};

static const struct op_rule *op_rule(__u32 opcode)
{
	if (opcode >= FLAXDRM_OP_COUNT || !op_rules[opcode].name)
		return (void *)0;
	return &op_rules[opcode];
}

int flaxdrm_op_is_layer(__u32 opcode)
{
	const struct op_rule *r = op_rule(opcode);

	return r && r->layer;
}

const char *flaxdrm_op_name(__u32 opcode)
{
	const struct op_rule *r = op_rule(opcode);

	return r ? r->name : "unknown";
}

static int same_shape(const struct drm_flaxdrm_tensor *a,
		      const struct drm_flaxdrm_tensor *b)
{
	__u32 i;

	if (a->dtype != b->dtype || a->rank != b->rank)
		return 0;
	for (i = 0; i < a->rank; i++)
		if (a->dims[i] != b->dims[i])
			return 0;
	return 1;
}

/*
 * Infers the op's output against the declared output tensor. Returns the
 * index (within the op's operands, inputs first) of the operand at fault,
 * or -1 when the shapes follow the rule.
 */
static int check_op_shapes(const struct drm_flaxdrm_op *op,
			   const struct drm_flaxdrm_tensor *t)
{
	const struct drm_flaxdrm_tensor *x, *w, *b, *y;
	__u32 i;

	switch (op->opcode) {
	case FLAXDRM_OP_DENSE:
		/* x[..., K] @ kernel[K, N] (+ bias[N]) -> y[..., N] */
		x = &t[op->inputs[0]];
		w = &t[op->inputs[1]];
		y = &t[op->outputs[0]];
		if (x->rank < 1 || x->dtype != FLAXDRM_DTYPE_F32)
			return 0;
		if (w->rank != 2 || w->dtype != x->dtype ||
		    w->dims[0] != x->dims[x->rank - 1])
			return 1;
		if (op->num_inputs == 3) {
			b = &t[op->inputs[2]];
			if (b->rank != 1 || b->dtype != x->dtype ||
			    b->dims[0] != w->dims[1])
				return 2;
		}
		if (y->dtype != x->dtype || y->rank != x->rank ||
		    y->dims[x->rank - 1] != w->dims[1])
			return op->num_inputs;
		for (i = 0; i + 1 < x->rank; i++)
			if (y->dims[i] != x->dims[i])
				return op->num_inputs;
		return -1;
	case FLAXDRM_OP_RELU:
		x = &t[op->inputs[0]];
		if (x->dtype != FLAXDRM_DTYPE_F32)
			return 0;
		return same_shape(x, &t[op->outputs[0]]) ? -1 : 1;
	default:
		return 0;
	}
}

/* Tensor state while walking the ops in order. */
#define T_DEFINED	1u
#define T_WRITTEN	2u

static int fail(__u32 *bad_op, __u32 *bad_tensor, __u32 op, __u32 tensor)
{
	*bad_op = op;
	*bad_tensor = tensor;
	return -EINVAL;
}

static int check_operands(const struct drm_flaxdrm_op *op, __u32 index,
			  const struct op_rule *r, __u32 num_tensors,
			  __u32 *bad_op, __u32 *bad_tensor)
{
	__u32 i;

	if (op->num_inputs < r->min_inputs || op->num_inputs > r->max_inputs ||
	    op->num_outputs != r->num_outputs)
		return fail(bad_op, bad_tensor, index, FLAXDRM_INDEX_NONE);
	if (!!r->layer != !!op->module)
		return fail(bad_op, bad_tensor, index, FLAXDRM_INDEX_NONE);
	for (i = 0; i < FLAXDRM_MAX_OP_INPUTS; i++) {
		if (i >= op->num_inputs ? op->inputs[i] != 0 :
		    op->inputs[i] >= num_tensors)
			return fail(bad_op, bad_tensor, index,
				    FLAXDRM_INDEX_NONE);
	}
	for (i = 0; i < FLAXDRM_MAX_OP_OUTPUTS; i++) {
		if (i >= op->num_outputs ? op->outputs[i] != 0 :
		    op->outputs[i] >= num_tensors)
			return fail(bad_op, bad_tensor, index,
				    FLAXDRM_INDEX_NONE);
	}
	/* no opcode defines attributes yet */
	for (i = 0; i < FLAXDRM_MAX_OP_ATTRS; i++)
		if (op->attrs[i])
			return fail(bad_op, bad_tensor, index,
				    FLAXDRM_INDEX_NONE);
	return 0;
}

int flaxdrm_check_program(const struct drm_flaxdrm_tensor *tensors,
			  __u32 num_tensors,
			  const struct drm_flaxdrm_op *ops, __u32 num_ops,
			  __u8 *state, __u32 *bad_op, __u32 *bad_tensor)
{
	__u32 i, j;
	int bad;

	*bad_op = FLAXDRM_INDEX_NONE;
	*bad_tensor = FLAXDRM_INDEX_NONE;
	if (!num_tensors || num_tensors > FLAXDRM_MAX_TENSORS ||
	    !num_ops || num_ops > FLAXDRM_MAX_OPS)
		return -EINVAL;

	for (i = 0; i < num_tensors; i++) {
		if (flaxdrm_check_tensor(&tensors[i]))
			return fail(bad_op, bad_tensor, FLAXDRM_INDEX_NONE, i);
		state[i] = (tensors[i].kind == FLAXDRM_TENSOR_INPUT ||
			    tensors[i].kind == FLAXDRM_TENSOR_VARIABLE) ?
			   T_DEFINED : 0;
	}

	for (i = 0; i < num_ops; i++) {
		const struct drm_flaxdrm_op *op = &ops[i];
		const struct op_rule *r = op_rule(op->opcode);

		if (!r)
			return fail(bad_op, bad_tensor, i, FLAXDRM_INDEX_NONE);
		if (check_operands(op, i, r, num_tensors, bad_op, bad_tensor))
			return -EINVAL;
		for (j = 0; j < op->num_inputs; j++)
			if (!(state[op->inputs[j]] & T_DEFINED))
				return fail(bad_op, bad_tensor, i,
					    op->inputs[j]);
		for (j = 0; j < op->num_outputs; j++) {
			__u32 o = op->outputs[j];

			if (tensors[o].kind == FLAXDRM_TENSOR_INPUT ||
			    (state[o] & T_WRITTEN))
				return fail(bad_op, bad_tensor, i, o);
		}
		bad = check_op_shapes(op, tensors);
		if (bad >= 0)
			return fail(bad_op, bad_tensor, i,
				    (__u32)bad < op->num_inputs ?
				    op->inputs[bad] :
				    op->outputs[bad - op->num_inputs]);
		for (j = 0; j < op->num_outputs; j++)
			state[op->outputs[j]] |= T_DEFINED | T_WRITTEN;
	}

	for (i = 0; i < num_tensors; i++)
		if (tensors[i].kind == FLAXDRM_TENSOR_OUTPUT &&
		    !(state[i] & T_WRITTEN))
			return fail(bad_op, bad_tensor, FLAXDRM_INDEX_NONE, i);
	return 0;
}
