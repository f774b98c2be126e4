// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Program rules: Dense/DenseGeneral, Embed lookup and attend, matmul.
 * Dense, attend and matmul take F32 or F16, one dtype for all operands.
 */
#include "flaxdrm_rules_ops.h"

int flaxdrm_rule_dense(const struct drm_flaxdrm_op *op,
		       const struct drm_flaxdrm_tensor *t)
{
	const struct drm_flaxdrm_tensor *x = rule_in(op, t, 0);
	const struct drm_flaxdrm_tensor *w = rule_in(op, t, 1);
	__u32 n = op->attrs[0] ? op->attrs[0] : 1;
	__u32 dims[FLAXDRM_MAX_RANK];
	__u32 i, lead, m;

	if (!rule_attrs_zero_from(op, 1) || n > FLAXDRM_MAX_RANK)
		return FLAXDRM_RULE_BAD_ATTRS;
	if (!rule_float(x->dtype) || x->rank < n)
		return 0;
	/* kernel[k1..kn, f1..fm] contracts the last n axes of x */
	if (w->dtype != x->dtype || w->rank <= n)
		return 1;
	lead = x->rank - n;
	m = w->rank - n;
	if (lead + m > FLAXDRM_MAX_RANK)
		return 1;
	for (i = 0; i < n; i++)
		if (w->dims[i] != x->dims[lead + i])
			return 1;
	if (op->num_inputs == 3 &&
	    !rule_shape_is(rule_in(op, t, 2), x->dtype, m, &w->dims[n]))
		return 2;
	for (i = 0; i < lead; i++)
		dims[i] = x->dims[i];
	for (i = 0; i < m; i++)
		dims[lead + i] = w->dims[n + i];
	if (!rule_shape_is(rule_out(op, t, 0), x->dtype, lead + m, dims))
		return rule_out_pos(op, 0);
	return FLAXDRM_RULE_OK;
}

int flaxdrm_rule_attend(const struct drm_flaxdrm_op *op,
			const struct drm_flaxdrm_tensor *t)
{
	const struct drm_flaxdrm_tensor *q = rule_in(op, t, 0);
	const struct drm_flaxdrm_tensor *table = rule_in(op, t, 1);
	__u32 dims[FLAXDRM_MAX_RANK];
	__u32 i;

	if (!rule_attrs_zero_from(op, 0))
		return FLAXDRM_RULE_BAD_ATTRS;
	if (!rule_float(q->dtype) || q->rank < 1)
		return 0;
	if (table->dtype != q->dtype || table->rank != 2 ||
	    table->dims[1] != q->dims[q->rank - 1])
		return 1;
	for (i = 0; i + 1 < q->rank; i++)
		dims[i] = q->dims[i];
	dims[q->rank - 1] = table->dims[0];
	if (!rule_shape_is(rule_out(op, t, 0), q->dtype, q->rank, dims))
		return rule_out_pos(op, 0);
	return FLAXDRM_RULE_OK;
}

int flaxdrm_rule_embed(const struct drm_flaxdrm_op *op,
		       const struct drm_flaxdrm_tensor *t)
{
	const struct drm_flaxdrm_tensor *idx = rule_in(op, t, 0);
	const struct drm_flaxdrm_tensor *table = rule_in(op, t, 1);
	__u32 dims[FLAXDRM_MAX_RANK];
	__u32 i;

	if (!rule_attrs_zero_from(op, 0))
		return FLAXDRM_RULE_BAD_ATTRS;
	if (idx->dtype != FLAXDRM_DTYPE_I32 || idx->rank >= FLAXDRM_MAX_RANK)
		return 0;
	if (!rule_float(table->dtype) || table->rank != 2)
		return 1;
	for (i = 0; i < idx->rank; i++)
		dims[i] = idx->dims[i];
	dims[idx->rank] = table->dims[1];
	if (!rule_shape_is(rule_out(op, t, 0), table->dtype, idx->rank + 1,
			   dims))
		return rule_out_pos(op, 0);
	return FLAXDRM_RULE_OK;
}

int flaxdrm_rule_matmul(const struct drm_flaxdrm_op *op,
			const struct drm_flaxdrm_tensor *t)
{
	const struct drm_flaxdrm_tensor *a = rule_in(op, t, 0);
	const struct drm_flaxdrm_tensor *b = rule_in(op, t, 1);
	__u32 ta = op->attrs[0] & 1, tb = (op->attrs[0] >> 1) & 1;
	__u32 dims[FLAXDRM_MAX_RANK];
	__u32 rank, i, ai, bi, da, db, m, k, kb, n;

	if (op->attrs[0] > 3 || !rule_attrs_zero_from(op, 1))
		return FLAXDRM_RULE_BAD_ATTRS;
	if (!rule_float(a->dtype) || a->rank < 2)
		return 0;
	if (b->dtype != a->dtype || b->rank < 2)
		return 1;
	m = a->dims[a->rank - 2 + ta];
	k = a->dims[a->rank - 1 - ta];
	kb = b->dims[b->rank - 2 + tb];
	n = b->dims[b->rank - 1 - tb];
	if (k != kb)
		return 1;
	/* NumPy broadcasting of the batch dims, aligned from the right */
	rank = a->rank > b->rank ? a->rank : b->rank;
	for (i = 0; i + 2 < rank; i++) {
		ai = i + a->rank;
		bi = i + b->rank;
		da = ai >= rank ? a->dims[ai - rank] : 1;
		db = bi >= rank ? b->dims[bi - rank] : 1;
		if (da != db && da != 1 && db != 1)
			return 1;
		dims[i] = da == 1 ? db : da;
	}
	dims[rank - 2] = m;
	dims[rank - 1] = n;
	if (!rule_shape_is(rule_out(op, t, 0), a->dtype, rank, dims))
		return rule_out_pos(op, 0);
	return FLAXDRM_RULE_OK;
}
