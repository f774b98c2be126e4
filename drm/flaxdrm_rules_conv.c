// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Program rules: convolution (Conv, ConvTranspose) and pooling. */
#include "flaxdrm_rules_ops.h"

/*
 * Output size of one spatial axis: (dilated input + padding - dilated
 * window) / stride + 1, or 0 when the window does not fit. All factors
 * are at most 2^32, so u64 arithmetic cannot wrap.
 */
static __u64 out_size(__u32 in, __u32 in_dil, __u32 lo, __u32 hi,
		      __u32 win, __u32 win_dil, __u32 stride)
{
	__u64 padded = ((__u64)in - 1) * in_dil + 1 + lo + hi;
	__u64 span = ((__u64)win - 1) * win_dil + 1;

	if (padded < span)
		return 0;
	return (padded - span) / stride + 1;
}

int flaxdrm_rule_conv(const struct drm_flaxdrm_op *op,
		      const struct drm_flaxdrm_tensor *t)
{
	const struct drm_flaxdrm_tensor *x = rule_in(op, t, 0);
	const struct drm_flaxdrm_tensor *w = rule_in(op, t, 1);
	const __u32 *a = op->attrs;
	__u32 groups = a[6], dims[4];
	__u64 oh, ow;
	__u32 i;

	for (i = 0; i < 7; i++)
		if (!a[i])
			return FLAXDRM_RULE_BAD_ATTRS;
	if (a[7] > FLAXDRM_PAD_CIRCULAR || !rule_attrs_zero_from(op, 12))
		return FLAXDRM_RULE_BAD_ATTRS;
	if (!rule_float(x->dtype) || x->rank != 4 ||
	    x->dims[3] % groups)
		return 0;
	/* kernel[KH, KW, C / groups, F], F divisible by groups */
	if (w->dtype != x->dtype || w->rank != 4 ||
	    w->dims[2] != x->dims[3] / groups || w->dims[3] % groups)
		return 1;
	/* circular padding wraps around the input at most once */
	if (a[7] == FLAXDRM_PAD_CIRCULAR &&
	    (a[2] != 1 || a[8] > x->dims[1] || a[9] > x->dims[1] ||
	     a[10] > x->dims[2] || a[11] > x->dims[2]))
		return FLAXDRM_RULE_BAD_ATTRS;
	if (op->num_inputs == 3 &&
	    !rule_shape_is(rule_in(op, t, 2), x->dtype, 1, &w->dims[3]))
		return 2;
	oh = out_size(x->dims[1], a[2], a[8], a[9], w->dims[0], a[4], a[0]);
	ow = out_size(x->dims[2], a[3], a[10], a[11], w->dims[1], a[5], a[1]);
	if (!oh || !ow || oh > 0xffffffffu || ow > 0xffffffffu)
		return 1;
	dims[0] = x->dims[0];
	dims[1] = (__u32)oh;
	dims[2] = (__u32)ow;
	dims[3] = w->dims[3];
	if (!rule_shape_is(rule_out(op, t, 0), x->dtype, 4, dims))
		return rule_out_pos(op, 0);
	return FLAXDRM_RULE_OK;
}

int flaxdrm_rule_pool(const struct drm_flaxdrm_op *op,
		      const struct drm_flaxdrm_tensor *t)
{
	const struct drm_flaxdrm_tensor *x = rule_in(op, t, 0);
	const __u32 *a = op->attrs;
	__u32 dims[4];
	__u64 oh, ow;

	if (!a[0] || !a[1] || !a[2] || !a[3])
		return FLAXDRM_RULE_BAD_ATTRS;
	if (op->opcode == FLAXDRM_OP_AVG_POOL ? a[8] > 1 : a[8] != 0)
		return FLAXDRM_RULE_BAD_ATTRS;
	if (!rule_attrs_zero_from(op, 9))
		return FLAXDRM_RULE_BAD_ATTRS;
	if (!rule_float(x->dtype) || x->rank != 4)
		return 0;
	oh = out_size(x->dims[1], 1, a[4], a[5], a[0], 1, a[2]);
	ow = out_size(x->dims[2], 1, a[6], a[7], a[1], 1, a[3]);
	if (!oh || !ow || oh > 0xffffffffu || ow > 0xffffffffu)
		return 0;
	dims[0] = x->dims[0];
	dims[1] = (__u32)oh;
	dims[2] = (__u32)ow;
	dims[3] = x->dims[3];
	if (!rule_shape_is(rule_out(op, t, 0), x->dtype, 4, dims))
		return rule_out_pos(op, 0);
	return FLAXDRM_RULE_OK;
}
