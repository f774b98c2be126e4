// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Program rules: LayerNorm, RMSNorm, GroupNorm, BatchNorm, attention. */
#include "flaxdrm_rules_ops.h"

static __u32 popcount3(__u32 v)
{
	return (v & 1) + ((v >> 1) & 1) + ((v >> 2) & 1);
}

/*
 * The optional per-channel operands (scale, bias) starting at input
 * position first must be [C] like the last axis of x. Returns the bad
 * position or FLAXDRM_RULE_OK.
 */
static int check_channel_operands(const struct drm_flaxdrm_op *op,
				  const struct drm_flaxdrm_tensor *t,
				  __u32 first)
{
	const struct drm_flaxdrm_tensor *x = rule_in(op, t, 0);
	__u32 i;

	for (i = first; i < op->num_inputs; i++)
		if (!rule_shape_is(rule_in(op, t, i), x->dtype, 1,
				   &x->dims[x->rank - 1]))
			return (int)i;
	return FLAXDRM_RULE_OK;
}

int flaxdrm_rule_layer_norm(const struct drm_flaxdrm_op *op,
			    const struct drm_flaxdrm_tensor *t)
{
	const struct drm_flaxdrm_tensor *x = rule_in(op, t, 0);
	__u32 allowed = op->opcode == FLAXDRM_OP_RMS_NORM ?
			FLAXDRM_NORM_SCALE :
			FLAXDRM_NORM_SCALE | FLAXDRM_NORM_BIAS;
	__u32 axes = op->attrs[1] ? op->attrs[1] : 1;
	int bad;

	if (!rule_f32_finite_nonneg(op->attrs[0]) ||
	    (op->attrs[2] & ~allowed) || !rule_attrs_zero_from(op, 3) ||
	    op->num_inputs != 1 + popcount3(op->attrs[2]))
		return FLAXDRM_RULE_BAD_ATTRS;
	if (!rule_float(x->dtype) || x->rank < 1 || axes > x->rank)
		return 0;
	bad = check_channel_operands(op, t, 1);
	if (bad != FLAXDRM_RULE_OK)
		return bad;
	if (!rule_same_shape(x, rule_out(op, t, 0)))
		return rule_out_pos(op, 0);
	return FLAXDRM_RULE_OK;
}

int flaxdrm_rule_group_norm(const struct drm_flaxdrm_op *op,
			    const struct drm_flaxdrm_tensor *t)
{
	const struct drm_flaxdrm_tensor *x = rule_in(op, t, 0);
	__u32 groups = op->attrs[1];
	int bad;

	if (!rule_f32_finite_nonneg(op->attrs[0]) || !groups ||
	    (op->attrs[2] & ~(FLAXDRM_NORM_SCALE | FLAXDRM_NORM_BIAS)) ||
	    !rule_attrs_zero_from(op, 3) ||
	    op->num_inputs != 1 + popcount3(op->attrs[2]))
		return FLAXDRM_RULE_BAD_ATTRS;
	if (!rule_float(x->dtype) || x->rank < 2 ||
	    x->dims[x->rank - 1] % groups)
		return 0;
	bad = check_channel_operands(op, t, 1);
	if (bad != FLAXDRM_RULE_OK)
		return bad;
	if (!rule_same_shape(x, rule_out(op, t, 0)))
		return rule_out_pos(op, 0);
	return FLAXDRM_RULE_OK;
}

int flaxdrm_rule_batch_norm(const struct drm_flaxdrm_op *op,
			    const struct drm_flaxdrm_tensor *t)
{
	const struct drm_flaxdrm_tensor *x = rule_in(op, t, 0);
	__u32 flags = op->attrs[2];
	int training = !!(flags & FLAXDRM_NORM_TRAINING);
	__u32 i;
	int bad;

	/* inputs: x, mean, var, then scale and bias as flagged */
	if (!rule_f32_finite_nonneg(op->attrs[0]) ||
	    op->attrs[1] > RULE_F32_ONE || (flags & ~7u) ||
	    !rule_attrs_zero_from(op, 3) ||
	    op->num_inputs != 3 + popcount3(flags & 3) ||
	    op->num_outputs != (training ? 3u : 1u))
		return FLAXDRM_RULE_BAD_ATTRS;
	if (!rule_float(x->dtype) || x->rank < 1)
		return 0;
	bad = check_channel_operands(op, t, 1);
	if (bad != FLAXDRM_RULE_OK)
		return bad;
	if (!rule_same_shape(x, rule_out(op, t, 0)))
		return rule_out_pos(op, 0);
	for (i = 1; i < op->num_outputs; i++)
		if (!rule_shape_is(rule_out(op, t, i), x->dtype, 1,
				   &x->dims[x->rank - 1]))
			return rule_out_pos(op, i);
	return FLAXDRM_RULE_OK;
}

int flaxdrm_rule_attention(const struct drm_flaxdrm_op *op,
			   const struct drm_flaxdrm_tensor *t)
{
	const struct drm_flaxdrm_tensor *q = rule_in(op, t, 0);
	const struct drm_flaxdrm_tensor *k = rule_in(op, t, 1);
	const struct drm_flaxdrm_tensor *v = rule_in(op, t, 2);
	__u32 flags = op->attrs[0];
	__u32 want[4], dims[4];
	__u32 i;

	if ((flags & ~(FLAXDRM_ATTN_CAUSAL | FLAXDRM_ATTN_MASK)) ||
	    !rule_f32_finite_nonneg(op->attrs[1]) ||
	    !rule_attrs_zero_from(op, 2) ||
	    op->num_inputs != ((flags & FLAXDRM_ATTN_MASK) ? 4u : 3u))
		return FLAXDRM_RULE_BAD_ATTRS;
	/* q[B, Lq, H, D], k[B, Lk, H, D], v[B, Lk, H, Dv] */
	if (!rule_float(q->dtype) || q->rank != 4)
		return 0;
	if (k->dtype != q->dtype || k->rank != 4 ||
	    k->dims[0] != q->dims[0] || k->dims[2] != q->dims[2] ||
	    k->dims[3] != q->dims[3])
		return 1;
	if (v->dtype != q->dtype || v->rank != 4 ||
	    v->dims[0] != q->dims[0] || v->dims[1] != k->dims[1] ||
	    v->dims[2] != q->dims[2])
		return 2;
	if (op->num_inputs == 4) {
		const struct drm_flaxdrm_tensor *m = rule_in(op, t, 3);

		/* broadcastable to [B, H, Lq, Lk] */
		want[0] = q->dims[0];
		want[1] = q->dims[2];
		want[2] = q->dims[1];
		want[3] = k->dims[1];
		if (m->dtype != FLAXDRM_DTYPE_I32 || m->rank != 4)
			return 3;
		for (i = 0; i < 4; i++)
			if (m->dims[i] != 1 && m->dims[i] != want[i])
				return 3;
	}
	dims[0] = q->dims[0];
	dims[1] = q->dims[1];
	dims[2] = q->dims[2];
	dims[3] = v->dims[3];
	if (!rule_shape_is(rule_out(op, t, 0), q->dtype, 4, dims))
		return rule_out_pos(op, 0);
	return FLAXDRM_RULE_OK;
}
