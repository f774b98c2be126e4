// The element types that Flax msgpack and safetensors checkpoints store, and
// their conversion to and from the float32 values that variables hold in
// memory. Shared by flax_msgpack.cpp and safetensors.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "flaxdrm/variables.hpp"

namespace flaxdrm::detail {

struct StoredDtype {
	const char* name;        // numpy's name, as Flax writes it and Variable::dtype keeps it
	const char* safetensors; // safetensors' name
	std::size_t size;        // bytes an element
};

// float32, float16, bfloat16, float64, int32, int64 (in messages)
extern const char* const kStoredDtypeNames;
extern const char* const kStoredSafetensorsNames;

// nullptr when the dtype is none of the above
const StoredDtype* find_dtype(std::string_view numpy_name);
const StoredDtype* find_safetensors_dtype(std::string_view safetensors_name);

// The dtype a variable is written as (Variable::dtype, float32 when empty);
// throws flaxdrm::Error naming `where` for any other.
const StoredDtype& dtype_to_store(const Variable& variable, const std::string& where);

// n little-endian elements at `bytes` as float32 (int64 beyond 2^24 rounds).
void decode_elements(const StoredDtype& dtype, const uint8_t* bytes, std::size_t n, float* out);

// The tensor's elements as `dtype`: float16 and bfloat16 round to nearest
// even, the integer types to the nearest integer.
std::vector<uint8_t> encode_elements(const StoredDtype& dtype, const Tensor& tensor);

} // namespace flaxdrm::detail
