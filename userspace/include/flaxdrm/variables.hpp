// Flax variables checkpoints: the bytes of flax.serialization.to_bytes().
//
// A msgpack map tree ({"params": {"Dense_0": {"kernel": ..., "bias": ...}}})
// whose leaves are arrays as msgpack extension type 1 holding the msgpack
// array [shape, dtype name, C-order little-endian bytes] (ext type 3, a
// numpy scalar, and Flax's chunked arrays for > 1 GiB are read too).
// float32 is read as is; float64, float16 and bfloat16 are converted to
// float32; other dtypes are refused.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "flaxdrm/tensor.hpp"

namespace flaxdrm {

struct Variable {
	Tensor value;
	std::string dtype; // dtype name in the file ("float32", ...)
};

// Keyed by '/'-joined path from the top: "params/Dense_0/kernel".
using Variables = std::map<std::string, Variable>;

Variables read_flax_msgpack(const std::string& path);
Variables parse_flax_msgpack(std::span<const uint8_t> bytes, const std::string& source);

// The inverse (float32 leaves, keys sorted): bytes that
// flax.serialization.from_bytes / msgpack_restore read back.
std::vector<uint8_t> format_flax_msgpack(const Variables& variables);
void write_flax_msgpack(const std::string& path, const Variables& variables);

// safetensors (8-byte little-endian header length, JSON header
// {"params/Dense_0/kernel": {"dtype": "F32", "shape": [..], "data_offsets":
// [begin, end]}, "__metadata__": {...}}, then the data): names are the
// '/'-joined variable paths. F32 is read as is; F16, BF16, F64, I32 and I64
// are converted to float32 (Variable::dtype keeps the file's dtype name).
Variables read_safetensors(const std::string& path);
Variables parse_safetensors(std::span<const uint8_t> bytes, const std::string& source);

// Either format: safetensors when the file starts like one (or is named
// *.safetensors), else a Flax msgpack checkpoint.
Variables read_variables(const std::string& path);

} // namespace flaxdrm
