// Host tensors: float32 (or int32 indices, stored bit for bit in the float
// storage: Tensor::index / Tensor::set_index), C order.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace flaxdrm {

using Shape = std::vector<int64_t>;

enum class DType { F32, I32 };


struct Tensor {
	Shape shape;
	std::vector<float> data; // C order, product(shape) elements
	DType dtype = DType::F32; // I32: data holds int32 bit patterns

	Tensor() = default;
	Tensor(Shape s, std::vector<float> d) : shape(std::move(s)), data(std::move(d)) {}
	explicit Tensor(Shape s);  // zero-filled
	std::size_t size() const { return data.size(); }
	int32_t index(std::size_t i) const { return std::bit_cast<int32_t>(data[i]); }
	void set_index(std::size_t i, int32_t v) { data[i] = std::bit_cast<float>(v); }
};

// Number of elements; throws flaxdrm::Error on negative dims or overflow.
std::size_t num_elements(std::span<const int64_t> shape);

// Python's tuple notation: "(64, 10)", "(10,)", "()".
std::string shape_str(std::span<const int64_t> shape);

} // namespace flaxdrm
