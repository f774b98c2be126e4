// Flax variables and their checkpoints: the bytes of
// flax.serialization.to_bytes() and safetensors. This is the one reader and
// writer of both; the Module API's flax/checkpoint.hpp names it as Flax does.
//
// Flax msgpack: a msgpack map tree ({"params": {"Dense_0": {"kernel": ...,
// "bias": ...}}}) whose leaves are arrays as msgpack extension type 1
// holding the msgpack array [shape, dtype name, C-order little-endian
// bytes]; numpy scalars (extension type 3), Python numbers, and Flax's
// chunked form of arrays over max_chunk_size bytes are read too.
//
// Values are float32 in memory, whatever the file stores: float32, float16,
// bfloat16, float64, int32 and int64 are read (converted to float32; int64
// beyond 2^24 rounds), and Variable::dtype keeps the stored name so that
// writing a variable stores it as it was read. Other dtypes are refused.
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
	std::string dtype; // numpy's name of the stored dtype ("float32", "bfloat16", ...; empty: float32)
};

// Keyed by '/'-joined path from the top: "params/Dense_0/kernel".
using Variables = std::map<std::string, Variable>;

Variables read_flax_msgpack(const std::string& path);
Variables parse_flax_msgpack(std::span<const uint8_t> bytes, const std::string& source);

struct FlaxMsgpackOptions {
	// flax.serialization.MAX_CHUNK_SIZE: larger arrays are written in chunks
	uint64_t max_chunk_size = uint64_t(1) << 30;
};

// The inverse (keys sorted, each leaf as its Variable::dtype): bytes that
// flax.serialization.from_bytes / msgpack_restore read back.
std::vector<uint8_t> format_flax_msgpack(const Variables& variables, const FlaxMsgpackOptions& options = {});
void write_flax_msgpack(const std::string& path, const Variables& variables, const FlaxMsgpackOptions& options = {});

// safetensors (8-byte little-endian header length, JSON header
// {"params/Dense_0/kernel": {"dtype": "F32", "shape": [..], "data_offsets":
// [begin, end]}, "__metadata__": {...}}, then the data): names are the
// '/'-joined variable paths; F32, F16, BF16, F64, I32 and I64.
Variables read_safetensors(const std::string& path);
Variables parse_safetensors(std::span<const uint8_t> bytes, const std::string& source);
std::vector<uint8_t> format_safetensors(const Variables& variables);
void write_safetensors(const std::string& path, const Variables& variables);

// Either format: safetensors when the file starts like one (or is named
// *.safetensors), else a Flax msgpack checkpoint.
Variables read_variables(const std::string& path);
// safetensors when named *.safetensors, else Flax msgpack.
void write_variables(const std::string& path, const Variables& variables, const FlaxMsgpackOptions& options = {});

// Compares the paths and shapes of `found` with `expected` and throws one
// Error listing every mismatch by path, headed "<mismatch> (N problems):"
// (e.g. mismatch = "p.msgpack does not match the model m.json"):
//   params/Dense_1/kernel: shape (64, 10), expected (128, 10)
//   params/Dense_2/bias: missing, expected shape (3,)
//   params/extra: unexpected (shape (1,)): the model has no such variable
void check_variable_shapes(const std::map<std::string, Shape>& expected, const Variables& found,
			   const std::string& mismatch);

} // namespace flaxdrm
