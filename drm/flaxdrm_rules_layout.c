// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Program rules: reductions, reshape, transpose, concat, slice. */
#include "flaxdrm_rules_ops.h"

int flaxdrm_rule_reduce(const struct drm_flaxdrm_op *op,
			const struct drm_flaxdrm_tensor *t)
{
	const struct drm_flaxdrm_tensor *x = rule_in(op, t, 0);
	__u32 axes = op->attrs[0], keep = op->attrs[1];
	__u32 dims[FLAXDRM_MAX_RANK];
	__u32 i, rank = 0;

	if (keep > 1 || !rule_attrs_zero_from(op, 2))
		return FLAXDRM_RULE_BAD_ATTRS;
	if (!rule_float(x->dtype))
		return 0;
	if (!axes || axes >= (1u << x->rank))
		return FLAXDRM_RULE_BAD_ATTRS;
	for (i = 0; i < x->rank; i++) {
		if (!(axes & (1u << i)))
			dims[rank++] = x->dims[i];
		else if (keep)
			dims[rank++] = 1;
	}
	if (!rule_shape_is(rule_out(op, t, 0), x->dtype, rank, dims))
		return rule_out_pos(op, 0);
	return FLAXDRM_RULE_OK;
}

int flaxdrm_rule_reshape(const struct drm_flaxdrm_op *op,
			 const struct drm_flaxdrm_tensor *t)
{
	const struct drm_flaxdrm_tensor *x = rule_in(op, t, 0);
	const struct drm_flaxdrm_tensor *y = rule_out(op, t, 0);

	if (!rule_attrs_zero_from(op, 0))
		return FLAXDRM_RULE_BAD_ATTRS;
	if (y->dtype != x->dtype ||
	    flaxdrm_tensor_bytes(y) != flaxdrm_tensor_bytes(x))
		return rule_out_pos(op, 0);
	return FLAXDRM_RULE_OK;
}

int flaxdrm_rule_transpose(const struct drm_flaxdrm_op *op,
			   const struct drm_flaxdrm_tensor *t)
{
	const struct drm_flaxdrm_tensor *x = rule_in(op, t, 0);
	__u32 dims[FLAXDRM_MAX_RANK];
	__u32 seen = 0, i, p;

	if (!rule_attrs_zero_from(op, x->rank))
		return FLAXDRM_RULE_BAD_ATTRS;
	for (i = 0; i < x->rank; i++) {
		p = op->attrs[i];
		if (p >= x->rank || (seen & (1u << p)))
			return FLAXDRM_RULE_BAD_ATTRS;
		seen |= 1u << p;
		dims[i] = x->dims[p];
	}
	if (!rule_shape_is(rule_out(op, t, 0), x->dtype, x->rank, dims))
		return rule_out_pos(op, 0);
	return FLAXDRM_RULE_OK;
}

int flaxdrm_rule_concat(const struct drm_flaxdrm_op *op,
			const struct drm_flaxdrm_tensor *t)
{
	const struct drm_flaxdrm_tensor *x = rule_in(op, t, 0);
	__u32 axis = op->attrs[0];
	__u32 dims[FLAXDRM_MAX_RANK];
	__u32 i, j;
	__u64 total = 0;

	if (!rule_attrs_zero_from(op, 1))
		return FLAXDRM_RULE_BAD_ATTRS;
	if (axis >= x->rank)
		return FLAXDRM_RULE_BAD_ATTRS;
	for (i = 0; i < op->num_inputs; i++) {
		const struct drm_flaxdrm_tensor *xi = rule_in(op, t, i);

		if (xi->dtype != x->dtype || xi->rank != x->rank)
			return (int)i;
		for (j = 0; j < x->rank; j++)
			if (j != axis && xi->dims[j] != x->dims[j])
				return (int)i;
		total += xi->dims[axis];
	}
	for (j = 0; j < x->rank; j++)
		dims[j] = x->dims[j];
	if (total > 0xffffffffu)
		return rule_out_pos(op, 0);
	dims[axis] = (__u32)total;
	if (!rule_shape_is(rule_out(op, t, 0), x->dtype, x->rank, dims))
		return rule_out_pos(op, 0);
	return FLAXDRM_RULE_OK;
}

int flaxdrm_rule_slice(const struct drm_flaxdrm_op *op,
		       const struct drm_flaxdrm_tensor *t)
{
	const struct drm_flaxdrm_tensor *x = rule_in(op, t, 0);
	const struct drm_flaxdrm_tensor *y = rule_out(op, t, 0);
	__u32 i;

	if (!rule_attrs_zero_from(op, x->rank))
		return FLAXDRM_RULE_BAD_ATTRS;
	if (y->dtype != x->dtype || y->rank != x->rank)
		return rule_out_pos(op, 0);
	for (i = 0; i < x->rank; i++) {
		/* start + size <= dim, without wrapping */
		if (op->attrs[i] > x->dims[i] ||
		    y->dims[i] > x->dims[i] - op->attrs[i])
			return rule_out_pos(op, 0);
	}
	return FLAXDRM_RULE_OK;
}
