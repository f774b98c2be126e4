// Client-side padding arithmetic for FLAXDRM_OP_CONV and the pooling ops:
// how Flax's padding strings become the explicit (before, after) pairs of
// the program format. Pure functions, no dependencies: the Module API
// lowering and the tests share them.
//
// Conv (flax.linen.Conv -> lax.conv_general_dilated):
//   'SAME'     same_padding(in, k, stride, kernel_dilation), per spatial axis
//              (XLA's rule: total = max((ceil(in / s) - 1) * s + (k - 1) * d
//              + 1 - in, 0), the smaller half before). `in` is the
//              undilated input size even with input dilation, as lax does.
//   'VALID'    {0, 0}
//   'CIRCULAR' FLAXDRM_PAD_CIRCULAR with the SAME amounts (Flax wraps the
//              input by the SAME pads, then runs a VALID conv).
//   'CAUSAL'   causal_padding(k, d) = {(k - 1) * d, 0} (1-D convs only).
//   pairs      as given.
//
// ConvTranspose (flax.linen.ConvTranspose, transpose_kernel=False, which
// is lax.conv_transpose): a conv with window strides 1, input dilation =
// the strides, the same kernel dilation, and per spatial axis
//   'SAME' / 'VALID'  conv_transpose_padding(k, stride, kernel_dilation, same)
//                     (jax's _conv_transpose_padding on the dilated kernel)
//   pairs             as given (lax.conv_transpose passes them through).
// With transpose_kernel=True the kernel must also be flipped spatially and
// its I/O axes swapped first. ConvTranspose's 'CIRCULAR' (a VALID
// transposed conv followed by a periodic wrap of the output) is not one op.
//
// Pooling (flax.linen.avg_pool / max_pool -> lax.reduce_window): 'SAME' is
// same_padding(in, window, stride, 1), 'VALID' is {0, 0}.
#pragma once

#include <cstdint>

namespace flaxdrm {

struct Padding {
	uint32_t before = 0;
	uint32_t after = 0;
	bool operator==(const Padding&) const = default;
};

// Size of a window of k taps with dilation d: (k - 1) * d + 1.
constexpr uint64_t dilated_size(uint64_t k, uint64_t d)
{
	return k == 0 ? 0 : (k - 1) * d + 1;
}

// XLA's SAME padding (lax.padtype_to_pads) of one axis.
constexpr Padding same_padding(uint32_t in, uint32_t k, uint32_t stride, uint32_t dilation = 1)
{
	if (stride == 0)
		return {};
	const uint64_t out = (uint64_t(in) + stride - 1) / stride;
	const int64_t need = (out == 0 ? 0 : int64_t(out - 1) * stride) + int64_t(dilated_size(k, dilation)) -
			     int64_t(in);
	const uint64_t total = need > 0 ? uint64_t(need) : 0;
	return {uint32_t(total / 2), uint32_t(total - total / 2)};
}

// Flax's CAUSAL padding of a 1-D conv.
constexpr Padding causal_padding(uint32_t k, uint32_t dilation = 1)
{
	return {uint32_t(dilated_size(k, dilation) - (k ? 1 : 0)), 0};
}

// jax's _conv_transpose_padding(k, s, padding) with k the dilated kernel
// size, for 'SAME' (same = true) or 'VALID'.
constexpr Padding conv_transpose_padding(uint32_t k, uint32_t stride, uint32_t dilation, bool same)
{
	const int64_t kd = int64_t(dilated_size(k, dilation));
	const int64_t s = stride;
	int64_t pad_len, pad_a;
	if (same) {
		pad_len = kd + s - 2;
		pad_a = s > kd - 1 ? kd - 1 : (pad_len + 1) / 2; // ceil(pad_len / 2)
	} else {
		pad_len = kd + s - 2 + (kd - s > 0 ? kd - s : 0);
		pad_a = kd - 1;
	}
	const int64_t pad_b = pad_len - pad_a;
	return {uint32_t(pad_a > 0 ? pad_a : 0), uint32_t(pad_b > 0 ? pad_b : 0)};
}

// Output size of one axis of FLAXDRM_OP_CONV (and of pooling with
// in_dilation = kernel dilation = 1): 0 when the window does not fit.
constexpr uint64_t conv_output_size(uint32_t in, uint32_t in_dilation, Padding pad, uint32_t k,
				    uint32_t dilation, uint32_t stride)
{
	const uint64_t padded = dilated_size(in, in_dilation) + pad.before + pad.after;
	const uint64_t span = dilated_size(k, dilation);
	if (padded < span || stride == 0)
		return 0;
	return (padded - span) / stride + 1;
}

} // namespace flaxdrm
