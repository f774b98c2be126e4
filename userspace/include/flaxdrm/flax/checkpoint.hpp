// Checkpoints of a variables tree: Flax msgpack (flax.serialization.to_bytes
// / from_bytes, with Flax's chunked form for arrays over max_chunk_size
// bytes) and safetensors ('/'-joined paths). Leaves are float32 in memory;
// Variable::dtype says how they are stored: float32, float16, bfloat16,
// int32, int64 (float64 is read too).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "flaxdrm/flax/module.hpp"

namespace flaxdrm::flax {

struct CheckpointOptions {
	uint64_t max_chunk_size = uint64_t(1) << 30; // flax.serialization.MAX_CHUNK_SIZE
};

std::vector<uint8_t> to_bytes(const Variables& variables, const CheckpointOptions& options = {});
Variables from_bytes(std::span<const uint8_t> bytes, const std::string& source = "msgpack");

std::vector<uint8_t> to_safetensors(const Variables& variables);
Variables from_safetensors(std::span<const uint8_t> bytes, const std::string& source = "safetensors");

// by extension: .safetensors, else Flax msgpack
void save_checkpoint(const std::string& path, const Variables& variables, const CheckpointOptions& options = {});
Variables load_checkpoint(const std::string& path);

// Checks every path and shape of `loaded` against `expected` (e.g. from
// init) and throws one flaxdrm::Error listing every mismatch, by path:
//   params/Dense_1/kernel: shape (64, 10), expected (128, 10)
//   params/Dense_2/bias: missing, expected shape (3,)
//   params/extra: unexpected
void check_against(const Variables& expected, const Variables& loaded, const std::string& source);
// load_checkpoint + check_against(template)
Variables restore_checkpoint(const std::string& path, const Variables& expected);

} // namespace flaxdrm::flax
