// Host tensors and shared error helpers.
#include "flaxdrm/tensor.hpp"

#include <cerrno>
#include <cstring>
#include <limits>

#include "flaxdrm/error.hpp"

namespace flaxdrm {

std::string errno_string(int err)
{
	if (err < 0)
		err = -err;
	const char* name = strerrorname_np(err);
	std::string s = name ? name : "E" + std::to_string(err);
	return s + " (" + std::strerror(err) + ")";
}

Tensor::Tensor(Shape s) : shape(std::move(s)), data(num_elements(shape), 0.0f) {}

std::size_t num_elements(std::span<const int64_t> shape)
{
	std::size_t n = 1;
	for (int64_t d : shape) {
		if (d < 0)
			throw Error("negative dimension in shape " + shape_str(shape));
		if (d != 0 && n > std::numeric_limits<std::size_t>::max() / 4 / static_cast<std::size_t>(d))
			throw Error("shape " + shape_str(shape) + " is too large");
		n *= static_cast<std::size_t>(d);
	}
	return n;
}

std::string shape_str(std::span<const int64_t> shape)
{
	std::string s = "(";
	for (std::size_t i = 0; i < shape.size(); i++) {
		if (i)
			s += ", ";
		s += std::to_string(shape[i]);
	}
	if (shape.size() == 1)
		s += ",";
	return s + ")";
}

} // namespace flaxdrm
