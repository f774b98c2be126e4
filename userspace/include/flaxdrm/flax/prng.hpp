// Counter-based PRNG for the Module API (flaxdrm::flax).
//
// A Key is two 32-bit words, as JAX's raw uint32[2] keys. Every random
// number is Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy
// as 1, 2, 3", SC'11) of the key and a 128-bit counter, so results depend
// only on the key and the element index, never on call order:
//
//   split(k, n)[i]   = philox(k, {i, 0, 0x5b1e7, 0})[0..1]
//   fold_in(k, d)    = philox(k, {d, 0, 0xf01d, 0})[0..1]
//   fold_in(k, name) = fold_in(fold_in(k, lo32(fnv1a64(name))), hi32(...))
//   bits(k)[i]       = philox(k, {i / 4, 0, 0, 0})[i % 4]
//   uniform [0, 1)   = (bits >> 8) * 2^-24
//   normal           = Box-Muller of the first two words of
//                      philox(k, {i, 1, 0, 0}) (u1 in (0, 1])
//   truncated normal = attempt j of element i uses philox(k, {i, 2 + j, 0, 0})
//                      and is rejected outside [lower, upper]
//
// Bit-equality with JAX's threefry is not a goal; the distributions are.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "flaxdrm/tensor.hpp"

namespace flaxdrm::flax {

struct Key {
	uint32_t k0 = 0, k1 = 0;
	bool operator==(const Key&) const = default;
	auto operator<=>(const Key&) const = default;
};

// jax.random.PRNGKey(seed)
Key PRNGKey(uint64_t seed);
std::array<uint32_t, 4> philox4x32(Key key, std::array<uint32_t, 4> counter);
std::vector<Key> split(Key key, uint32_t n = 2);
Key fold_in(Key key, uint32_t data);
Key fold_in(Key key, const std::string& name);
std::string key_str(Key key); // "Key(0x..., 0x...)"

namespace random {
Tensor uniform(Key key, const Shape& shape, float minval = 0.0f, float maxval = 1.0f);
Tensor normal(Key key, const Shape& shape);
// standard normal truncated to [lower, upper]
Tensor truncated_normal(Key key, const Shape& shape, float lower = -2.0f, float upper = 2.0f);
} // namespace random

} // namespace flaxdrm::flax
