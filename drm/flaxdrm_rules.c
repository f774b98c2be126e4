// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Program rules shared by the kernel and the engine runtime; see
 * flaxdrm_rules.h. No libc and no kernel API beyond <linux/types.h> and
 * errno values, so it builds on both sides unchanged.
 */
#include <linux/errno.h>
#include "flaxdrm_rules_ops.h"

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
	__u32 module_kinds;	/* layer ops: bitmask of module kinds; else 0 */
	__u8 min_inputs;
	__u8 max_inputs;
	__u8 min_outputs;
	__u8 max_outputs;
	flaxdrm_shape_rule check;
};

#define KIND(k)		(1u << FLAXDRM_KIND_##k)
/* a plain op with one output */
#define PLAIN(name, min_in, max_in, check) \
	{ name, 0, min_in, max_in, 1, 1, check }

static const struct op_rule op_rules[FLAXDRM_OP_COUNT] = {
	[FLAXDRM_OP_DENSE] = { "Dense", KIND(DENSE) | KIND(DENSE_GENERAL),
			       2, 3, 1, 1, flaxdrm_rule_dense },
	[FLAXDRM_OP_ATTEND] = { "Embed.attend", KIND(EMBED), 2, 2, 1, 1,
				flaxdrm_rule_attend },
	[FLAXDRM_OP_EMBED] = { "Embed", KIND(EMBED), 2, 2, 1, 1,
			       flaxdrm_rule_embed },
	[FLAXDRM_OP_MATMUL] = PLAIN("matmul", 2, 2, flaxdrm_rule_matmul),
	[FLAXDRM_OP_CONV] = { "Conv", KIND(CONV) | KIND(CONV_TRANSPOSE),
			      2, 3, 1, 1, flaxdrm_rule_conv },
	[FLAXDRM_OP_AVG_POOL] = PLAIN("avg_pool", 1, 1, flaxdrm_rule_pool),
	[FLAXDRM_OP_MAX_POOL] = PLAIN("max_pool", 1, 1, flaxdrm_rule_pool),
	[FLAXDRM_OP_LAYER_NORM] = { "LayerNorm", KIND(LAYER_NORM), 1, 3, 1, 1,
				    flaxdrm_rule_layer_norm },
	[FLAXDRM_OP_RMS_NORM] = { "RMSNorm", KIND(RMS_NORM), 1, 2, 1, 1,
				  flaxdrm_rule_layer_norm },
	[FLAXDRM_OP_GROUP_NORM] = { "GroupNorm", KIND(GROUP_NORM), 1, 3, 1, 1,
				    flaxdrm_rule_group_norm },
	[FLAXDRM_OP_BATCH_NORM] = { "BatchNorm", KIND(BATCH_NORM), 3, 5, 1, 3,
				    flaxdrm_rule_batch_norm },
	[FLAXDRM_OP_ATTENTION] = { "dot_product_attention", 0, 3, 4, 1, 1,
				   flaxdrm_rule_attention },
	[FLAXDRM_OP_ADD] = PLAIN("add", 2, 2, flaxdrm_rule_binary),
	[FLAXDRM_OP_SUB] = PLAIN("subtract", 2, 2, flaxdrm_rule_binary),
	[FLAXDRM_OP_MUL] = PLAIN("multiply", 2, 2, flaxdrm_rule_binary),
	[FLAXDRM_OP_DIV] = PLAIN("divide", 2, 2, flaxdrm_rule_binary),
	[FLAXDRM_OP_MAXIMUM] = PLAIN("maximum", 2, 2, flaxdrm_rule_binary),
	[FLAXDRM_OP_MINIMUM] = PLAIN("minimum", 2, 2, flaxdrm_rule_binary),
	[FLAXDRM_OP_RELU] = PLAIN("relu", 1, 1, flaxdrm_rule_unary),
	[FLAXDRM_OP_GELU] = PLAIN("gelu", 1, 1, flaxdrm_rule_unary),
	[FLAXDRM_OP_SILU] = PLAIN("silu", 1, 1, flaxdrm_rule_unary),
	[FLAXDRM_OP_SIGMOID] = PLAIN("sigmoid", 1, 1, flaxdrm_rule_unary),
	[FLAXDRM_OP_TANH] = PLAIN("tanh", 1, 1, flaxdrm_rule_unary),
	[FLAXDRM_OP_ELU] = PLAIN("elu", 1, 1, flaxdrm_rule_unary),
	[FLAXDRM_OP_LEAKY_RELU] = PLAIN("leaky_relu", 1, 1, flaxdrm_rule_unary),
	[FLAXDRM_OP_SOFTPLUS] = PLAIN("softplus", 1, 1, flaxdrm_rule_unary),
	[FLAXDRM_OP_SOFTMAX] = PLAIN("softmax", 1, 1, flaxdrm_rule_unary),
	[FLAXDRM_OP_LOG_SOFTMAX] = PLAIN("log_softmax", 1, 1, flaxdrm_rule_unary),
	[FLAXDRM_OP_DROPOUT] = PLAIN("Dropout", 1, 1, flaxdrm_rule_dropout),
	[FLAXDRM_OP_REDUCE_SUM] = PLAIN("sum", 1, 1, flaxdrm_rule_reduce),
	[FLAXDRM_OP_REDUCE_MEAN] = PLAIN("mean", 1, 1, flaxdrm_rule_reduce),
	[FLAXDRM_OP_REDUCE_MAX] = PLAIN("max", 1, 1, flaxdrm_rule_reduce),
	[FLAXDRM_OP_RESHAPE] = PLAIN("reshape", 1, 1, flaxdrm_rule_reshape),
	[FLAXDRM_OP_TRANSPOSE] = PLAIN("transpose", 1, 1, flaxdrm_rule_transpose),
	[FLAXDRM_OP_CONCAT] = { "concatenate", 0, 1, FLAXDRM_MAX_OP_INPUTS,
				1, 1, flaxdrm_rule_concat },
	[FLAXDRM_OP_SLICE] = PLAIN("slice", 1, 1, flaxdrm_rule_slice),
	[FLAXDRM_OP_ASTYPE] = PLAIN("astype", 1, 1, flaxdrm_rule_astype),
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

	return r && r->module_kinds;
}

__u32 flaxdrm_op_module_kinds(__u32 opcode)
{
	const struct op_rule *r = op_rule(opcode);

	return r ? r->module_kinds : 0;
}

const char *flaxdrm_op_name(__u32 opcode)
{
	const struct op_rule *r = op_rule(opcode);

	return r ? r->name : "unknown";
}

int rule_attrs_zero_from(const struct drm_flaxdrm_op *op, __u32 from)
{
	__u32 i;

	for (i = from; i < FLAXDRM_MAX_OP_ATTRS; i++)
		if (op->attrs[i])
			return 0;
	return 1;
}

int rule_same_shape(const struct drm_flaxdrm_tensor *a,
		    const struct drm_flaxdrm_tensor *b)
{
	return rule_shape_is(b, a->dtype, a->rank, a->dims);
}

int rule_shape_is(const struct drm_flaxdrm_tensor *y, __u32 dtype,
		  __u32 rank, const __u32 *dims)
{
	__u32 i;

	if (y->dtype != dtype || y->rank != rank)
		return 0;
	for (i = 0; i < rank; i++)
		if (y->dims[i] != dims[i])
			return 0;
	return 1;
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
	    op->num_outputs < r->min_outputs ||
	    op->num_outputs > r->max_outputs)
		return fail(bad_op, bad_tensor, index, FLAXDRM_INDEX_NONE);
	if (!r->module_kinds != !op->module)
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
		bad = r->check(op, tensors);
		if (bad == FLAXDRM_RULE_BAD_ATTRS)
			return fail(bad_op, bad_tensor, i, FLAXDRM_INDEX_NONE);
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
