// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Program rules: unary and binary elementwise ops, softmax, dropout, astype. */
#include "flaxdrm_rules_ops.h"

int flaxdrm_rule_unary(const struct drm_flaxdrm_op *op,
		       const struct drm_flaxdrm_tensor *t)
{
	const struct drm_flaxdrm_tensor *x = rule_in(op, t, 0);
	__u32 from = 0;

	switch (op->opcode) {
	case FLAXDRM_OP_GELU:
		if (op->attrs[0] > 1)
			return FLAXDRM_RULE_BAD_ATTRS;
		from = 1;
		break;
	case FLAXDRM_OP_ELU:
	case FLAXDRM_OP_LEAKY_RELU:
		/* alpha or slope: any float the user chose */
		from = 1;
		break;
	default:
		break;
	}
	if (!rule_attrs_zero_from(op, from))
		return FLAXDRM_RULE_BAD_ATTRS;
	if (!rule_float(x->dtype))
		return 0;
	/* softmax needs a last axis */
	if ((op->opcode == FLAXDRM_OP_SOFTMAX ||
	     op->opcode == FLAXDRM_OP_LOG_SOFTMAX) && x->rank < 1)
		return 0;
	if (!rule_same_shape(x, rule_out(op, t, 0)))
		return rule_out_pos(op, 0);
	return FLAXDRM_RULE_OK;
}

int flaxdrm_rule_binary(const struct drm_flaxdrm_op *op,
			const struct drm_flaxdrm_tensor *t)
{
	const struct drm_flaxdrm_tensor *a = rule_in(op, t, 0);
	const struct drm_flaxdrm_tensor *b = rule_in(op, t, 1);
	__u32 dims[FLAXDRM_MAX_RANK];
	__u32 rank, i, da, db;

	if (!rule_attrs_zero_from(op, 0))
		return FLAXDRM_RULE_BAD_ATTRS;
	if (!rule_float(a->dtype))
		return 0;
	if (b->dtype != a->dtype)
		return 1;
	/* NumPy broadcasting: align from the right, 1 stretches */
	rank = a->rank > b->rank ? a->rank : b->rank;
	for (i = 0; i < rank; i++) {
		da = i + a->rank >= rank ? a->dims[i + a->rank - rank] : 1;
		db = i + b->rank >= rank ? b->dims[i + b->rank - rank] : 1;
		if (da != db && da != 1 && db != 1)
			return 1;
		dims[i] = da == 1 ? db : da;
	}
	if (!rule_shape_is(rule_out(op, t, 0), a->dtype, rank, dims))
		return rule_out_pos(op, 0);
	return FLAXDRM_RULE_OK;
}

int flaxdrm_rule_dropout(const struct drm_flaxdrm_op *op,
			 const struct drm_flaxdrm_tensor *t)
{
	const struct drm_flaxdrm_tensor *x = rule_in(op, t, 0);

	/* attrs: rate in [0, 1), then the 64-bit seed */
	if (!rule_f32_unit(op->attrs[0]) || !rule_attrs_zero_from(op, 3))
		return FLAXDRM_RULE_BAD_ATTRS;
	if (!rule_float(x->dtype))
		return 0;
	if (!rule_same_shape(x, rule_out(op, t, 0)))
		return rule_out_pos(op, 0);
	return FLAXDRM_RULE_OK;
}

int flaxdrm_rule_astype(const struct drm_flaxdrm_op *op,
			const struct drm_flaxdrm_tensor *t)
{
	const struct drm_flaxdrm_tensor *x = rule_in(op, t, 0);
	const struct drm_flaxdrm_tensor *y = rule_out(op, t, 0);

	if (!rule_attrs_zero_from(op, 0))
		return FLAXDRM_RULE_BAD_ATTRS;
	if (!rule_float(x->dtype))
		return 0;
	if (!rule_float(y->dtype) ||
	    !rule_shape_is(y, y->dtype, x->rank, x->dims))
		return rule_out_pos(op, 0);
	return FLAXDRM_RULE_OK;
}
