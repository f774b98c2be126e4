// NumPy .npy files (format 1.0, 2.0 and 3.0), little-endian float32
// ('<f4'), or integers ('<i4', '<i8' within int32 range) read as
// DType::I32 (Embed indices, labels), C order. Anything else is refused
// with a message naming the file and what it holds. write_npy writes '<f4'
// or, for DType::I32, '<i4'.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "flaxdrm/tensor.hpp"

namespace flaxdrm {

Tensor read_npy(const std::string& path);
// `source` names the data in error messages.
Tensor parse_npy(std::span<const uint8_t> bytes, const std::string& source);

void write_npy(const std::string& path, const Tensor& tensor);
std::vector<uint8_t> format_npy(const Tensor& tensor); // format 1.0

} // namespace flaxdrm
