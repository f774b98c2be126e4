// Host tensors: float32, C order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace flaxdrm {

using Shape = std::vector<int64_t>;

struct Tensor {
	Shape shape;
	std::vector<float> data; // C order, product(shape) elements

	Tensor() = default;
	Tensor(Shape s, std::vector<float> d) : shape(std::move(s)), data(std::move(d)) {}
	explicit Tensor(Shape s);  // zero-filled
	std::size_t size() const { return data.size(); }
};

// Number of elements; throws flaxdrm::Error on negative dims or overflow.
std::size_t num_elements(std::span<const int64_t> shape);

// Python's tuple notation: "(64, 10)", "(10,)", "()".
std::string shape_str(std::span<const int64_t> shape);

} // namespace flaxdrm
