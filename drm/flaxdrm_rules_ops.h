/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Internal to the program rules: one shape rule per opcode, grouped by op
 * family in flaxdrm_rules_<family>.c, and the helpers they share. Same
 * freestanding constraints as flaxdrm_rules.c.
 */
#ifndef FLAXDRM_RULES_OPS_H
#define FLAXDRM_RULES_OPS_H

#include "flaxdrm_rules.h"

/*
 * A shape rule checks an op whose operand counts and indices are already
 * known to be valid. It returns FLAXDRM_RULE_OK, FLAXDRM_RULE_BAD_ATTRS, or
 * the position of the operand at fault (inputs first, then outputs).
 */
#define FLAXDRM_RULE_OK		(-1)
#define FLAXDRM_RULE_BAD_ATTRS	(-2)

typedef int (*flaxdrm_shape_rule)(const struct drm_flaxdrm_op *op,
				  const struct drm_flaxdrm_tensor *t);

/* The i-th input and output tensor of an op. */
static inline const struct drm_flaxdrm_tensor *
rule_in(const struct drm_flaxdrm_op *op, const struct drm_flaxdrm_tensor *t,
	__u32 i)
{
	return &t[op->inputs[i]];
}

static inline const struct drm_flaxdrm_tensor *
rule_out(const struct drm_flaxdrm_op *op, const struct drm_flaxdrm_tensor *t,
	 __u32 i)
{
	return &t[op->outputs[i]];
}

/* Position of output i among the op's operands. */
static inline int rule_out_pos(const struct drm_flaxdrm_op *op, __u32 i)
{
	return (int)(op->num_inputs + i);
}

/* Whether attrs[from..] are all zero. */
int rule_attrs_zero_from(const struct drm_flaxdrm_op *op, __u32 from);

/* Same dtype, rank and dims. */
int rule_same_shape(const struct drm_flaxdrm_tensor *a,
		    const struct drm_flaxdrm_tensor *b);

/* dtype and dims of y equal dtype and the first rank dims given. */
int rule_shape_is(const struct drm_flaxdrm_tensor *y, __u32 dtype,
		  __u32 rank, const __u32 *dims);

/* Float attributes arrive as bit patterns: the kernel has no FPU here. */
#define RULE_F32_ONE		0x3f800000u
#define RULE_F32_INF		0x7f800000u
/* A finite float >= 0 (positive sign, below the infinity pattern). */
static inline int rule_f32_finite_nonneg(__u32 bits)
{
	return bits < RULE_F32_INF;
}

/* A float in [0, 1) */
static inline int rule_f32_unit(__u32 bits)
{
	return bits < RULE_F32_ONE;
}

/* The floating dtypes ops compute on: F32, and F16 (f32 inside). */
static inline int rule_float(__u32 dtype)
{
	return dtype == FLAXDRM_DTYPE_F32 || dtype == FLAXDRM_DTYPE_F16;
}

/* dense.c: Dense/DenseGeneral, Embed lookup and attend, batched matmul */
int flaxdrm_rule_dense(const struct drm_flaxdrm_op *op,
		       const struct drm_flaxdrm_tensor *t);
int flaxdrm_rule_attend(const struct drm_flaxdrm_op *op,
			const struct drm_flaxdrm_tensor *t);
int flaxdrm_rule_embed(const struct drm_flaxdrm_op *op,
		       const struct drm_flaxdrm_tensor *t);
int flaxdrm_rule_matmul(const struct drm_flaxdrm_op *op,
			const struct drm_flaxdrm_tensor *t);

/* elementwise.c: unary, binary with broadcasting, softmax, dropout, astype */
int flaxdrm_rule_unary(const struct drm_flaxdrm_op *op,
		       const struct drm_flaxdrm_tensor *t);
int flaxdrm_rule_binary(const struct drm_flaxdrm_op *op,
			const struct drm_flaxdrm_tensor *t);
int flaxdrm_rule_dropout(const struct drm_flaxdrm_op *op,
			 const struct drm_flaxdrm_tensor *t);
int flaxdrm_rule_astype(const struct drm_flaxdrm_op *op,
			const struct drm_flaxdrm_tensor *t);

/* layout.c: reductions, reshape, transpose, concat, slice */
int flaxdrm_rule_reduce(const struct drm_flaxdrm_op *op,
			const struct drm_flaxdrm_tensor *t);
int flaxdrm_rule_reshape(const struct drm_flaxdrm_op *op,
			 const struct drm_flaxdrm_tensor *t);
int flaxdrm_rule_transpose(const struct drm_flaxdrm_op *op,
			   const struct drm_flaxdrm_tensor *t);
int flaxdrm_rule_concat(const struct drm_flaxdrm_op *op,
			const struct drm_flaxdrm_tensor *t);
int flaxdrm_rule_slice(const struct drm_flaxdrm_op *op,
		       const struct drm_flaxdrm_tensor *t);

/* conv.c: convolution and pooling */
int flaxdrm_rule_conv(const struct drm_flaxdrm_op *op,
		      const struct drm_flaxdrm_tensor *t);
int flaxdrm_rule_pool(const struct drm_flaxdrm_op *op,
		      const struct drm_flaxdrm_tensor *t);

/* norm.c: normalisation layers and attention */
int flaxdrm_rule_layer_norm(const struct drm_flaxdrm_op *op,
			    const struct drm_flaxdrm_tensor *t);
int flaxdrm_rule_group_norm(const struct drm_flaxdrm_op *op,
			    const struct drm_flaxdrm_tensor *t);
int flaxdrm_rule_batch_norm(const struct drm_flaxdrm_op *op,
			    const struct drm_flaxdrm_tensor *t);
int flaxdrm_rule_attention(const struct drm_flaxdrm_op *op,
			   const struct drm_flaxdrm_tensor *t);

#endif /* FLAXDRM_RULES_OPS_H */
