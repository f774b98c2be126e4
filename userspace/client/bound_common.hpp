// Helpers shared by the device implementations.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>

#include "flaxdrm/error.hpp"
#include "flaxdrm/lowering.hpp"
#include "flaxdrm/model.hpp"

namespace flaxdrm::detail {

inline uint64_t now_ns()
{
	return static_cast<uint64_t>(
		std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
			.count());
}

// The input's last dimension is what the variables were checked against.
inline void check_input(const Model& model, const Shape& bound_shape, const Tensor& input)
{
	const DType want = input_dtype(model);
	if (input.dtype != want)
		throw Error(std::string("input is ") + (input.dtype == DType::I32 ? "int32" : "float32") + ", " +
			    model.source + " takes " +
			    (want == DType::I32 ? "int32 indices (an Embed comes first; save the .npy as '<i4')"
						: "float32 (save the .npy as '<f4')"));
	if (num_elements(input.shape) != input.data.size())
		throw Error("input tensor of shape " + shape_str(input.shape) + " holds " +
			    std::to_string(input.data.size()) + " elements");
	if (input.shape.empty() || bound_shape.empty() || input.shape.back() != bound_shape.back() ||
	    input.shape.size() > FLAXDRM_MAX_RANK)
		throw Error("input of shape " + shape_str(input.shape) + " does not fit " + model.source +
			    " as bound for inputs of shape " + shape_str(bound_shape) +
			    ": the last dimension must be " +
			    (bound_shape.empty() ? std::string("?") : std::to_string(bound_shape.back())) +
			    " and the rank at most " + std::to_string(FLAXDRM_MAX_RANK));
}

} // namespace flaxdrm::detail
