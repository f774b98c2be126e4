// Helpers shared by the elementwise, binary, softmax, dropout, reduce and
// layout kernels: the unary shader's push constants, grid sizes, strided
// shapes and their collapsing.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <string>

#include "device.hpp"
#include "flaxdrm_rules.h"
#include "kernel.hpp"
#include "vk_util.hpp"

namespace flaxdrm::rt::ew {

// Must match the OP_* constants in shaders/elementwise.comp.
enum UnaryOp : uint32_t {
	UNARY_RELU = 0,
	UNARY_GELU_TANH = 1,
	UNARY_GELU_ERF = 2,
	UNARY_SILU = 3,
	UNARY_SIGMOID = 4,
	UNARY_TANH = 5,
	UNARY_ELU = 6,
	UNARY_LEAKY_RELU = 7,
	UNARY_SOFTPLUS = 8,
	UNARY_DROPOUT = 9,
	UNARY_COPY = 10,
};

// shaders/elementwise.comp's push constants.
struct UnaryPush {
	uint32_t count = 0;
	uint32_t in_off = 0;
	uint32_t out_off = 0;
	float alpha = 0;
	uint32_t threshold = 0;
	uint32_t key0 = 0;
	uint32_t key1 = 0;
	uint32_t base = 0;
};

constexpr uint32_t kWorkgroupSize = 256;
constexpr uint32_t kMaxGroups = 4096; // grid-stride loops beyond this

inline uint32_t groups_for(uint64_t items, uint32_t per_group, uint32_t cap = kMaxGroups)
{
	return uint32_t(std::clamp<uint64_t>((items + per_group - 1) / per_group, 1, cap));
}

inline float f32_from_bits(uint32_t bits)
{
	float f;
	std::memcpy(&f, &bits, sizeof f);
	return f;
}

// Records elementwise.comp over the whole of x -> y (same element count),
// in chunks that fit a binding; `base` of each chunk is its first element.
void record_unary(OpContext& ctx, UnaryOp op, const UnaryPush& params);

// A shape with up to 6 dims (outermost first) and, per operand, a stride in
// elements for each dim (0 where the operand is broadcast).
template <int N>
struct Strided {
	uint32_t rank = 0;
	std::array<uint64_t, FLAXDRM_MAX_RANK> dims{};
	std::array<std::array<uint64_t, FLAXDRM_MAX_RANK>, N> strides{};

	uint64_t count() const
	{
		uint64_t n = 1;
		for (uint32_t d = 0; d < rank; d++)
			n *= dims[d];
		return n;
	}

	// Drops size-1 dims and merges dim d into d + 1 wherever every
	// operand walks them as one (stride[d] == stride[d + 1] * dims[d + 1]).
	// Leaves at least one dim.
	void collapse()
	{
		Strided out;
		for (uint32_t d = 0; d < rank; d++) {
			if (dims[d] == 1)
				continue;
			if (out.rank > 0) {
				const uint32_t l = out.rank - 1;
				bool merge = true;
				for (int k = 0; k < N; k++)
					merge &= out.strides[k][l] == strides[k][d] * dims[d];
				if (merge) {
					out.dims[l] *= dims[d];
					for (int k = 0; k < N; k++)
						out.strides[k][l] = strides[k][d];
					continue;
				}
			}
			out.dims[out.rank] = dims[d];
			for (int k = 0; k < N; k++)
				out.strides[k][out.rank] = strides[k][d];
			out.rank++;
		}
		if (out.rank == 0) {
			out.rank = 1;
			out.dims[0] = 1;
		}
		*this = out;
	}
};

// Row-major strides of a tensor, in elements.
inline std::array<uint64_t, FLAXDRM_MAX_RANK> contiguous_strides(const drm_flaxdrm_tensor& t)
{
	std::array<uint64_t, FLAXDRM_MAX_RANK> s{};
	uint64_t acc = 1;
	for (int d = int(t.rank) - 1; d >= 0; d--) {
		s[d] = acc;
		acc *= t.dims[d];
	}
	return s;
}

// Refuses a tensor that this kernel must bind whole but cannot.
inline void require_bindable(const OpContext& ctx, const TensorView& t, const char* what)
{
	if (t.size + 256 > max_binding_bytes(ctx.device))
		fail(-EINVAL, ctx.where() + ": tensor " + std::to_string(t.index) + " (" + what +
				      ") is larger than this device can bind (" +
				      std::to_string(max_binding_bytes(ctx.device)) + " bytes)");
}

} // namespace flaxdrm::rt::ew
