// Checkpoints of a variables tree, named as flax.serialization names them:
// Flax msgpack (to_bytes / from_bytes, with Flax's chunked form for arrays
// over max_chunk_size bytes) and safetensors ('/'-joined paths). The reading
// and writing is flaxdrm_client's (flaxdrm/variables.hpp), shared with the
// flaxdrm CLI: leaves are float32 in memory and Variable::dtype says how
// they are stored (float32, float16, bfloat16, float64, int32, int64).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "flaxdrm/flax/module.hpp"
#include "flaxdrm/variables.hpp"

namespace flaxdrm::flax {

using CheckpointOptions = flaxdrm::FlaxMsgpackOptions; // max_chunk_size

inline std::vector<uint8_t> to_bytes(const Variables& variables, const CheckpointOptions& options = {})
{
	return format_flax_msgpack(variables, options);
}
inline Variables from_bytes(std::span<const uint8_t> bytes, const std::string& source = "msgpack")
{
	return parse_flax_msgpack(bytes, source);
}

inline std::vector<uint8_t> to_safetensors(const Variables& variables)
{
	return format_safetensors(variables);
}
inline Variables from_safetensors(std::span<const uint8_t> bytes, const std::string& source = "safetensors")
{
	return parse_safetensors(bytes, source);
}

// Writes safetensors when the path ends in .safetensors, else Flax msgpack;
// reads either (by name or content).
inline void save_checkpoint(const std::string& path, const Variables& variables, const CheckpointOptions& options = {})
{
	write_variables(path, variables, options);
}
inline Variables load_checkpoint(const std::string& path)
{
	return read_variables(path);
}

// Checks every path and shape of `loaded` against `expected` (e.g. from
// init) and throws one flaxdrm::Error listing every mismatch, by path:
//   params/Dense_1/kernel: shape (64, 10), expected (128, 10)
//   params/Dense_2/bias: missing, expected shape (3,)
//   params/extra: unexpected (shape (1,)): the model has no such variable
void check_against(const Variables& expected, const Variables& loaded, const std::string& source);
// load_checkpoint + check_against(template)
Variables restore_checkpoint(const std::string& path, const Variables& expected);

} // namespace flaxdrm::flax
