// jax.nn.initializers / flax.linen.initializers, on the host.
#pragma once

#include <functional>
#include <string>

#include "flaxdrm/flax/prng.hpp"
#include "flaxdrm/tensor.hpp"

namespace flaxdrm::flax {

// init(key, shape) -> float32 tensor of that shape
using Initializer = std::function<Tensor(Key key, const Shape& shape)>;

namespace initializers {
Initializer zeros();
Initializer ones();
Initializer constant(float value);
Initializer normal(float stddev = 1e-2f);
Initializer uniform(float scale = 1e-2f); // [0, scale)
// jax.nn.initializers.variance_scaling: mode "fan_in" | "fan_out" |
// "fan_avg", distribution "truncated_normal" | "normal" | "uniform".
Initializer variance_scaling(double scale, const std::string& mode, const std::string& distribution,
			     int in_axis = -2, int out_axis = -1);
Initializer lecun_normal();
Initializer lecun_uniform();
Initializer glorot_normal();
Initializer glorot_uniform();
inline Initializer xavier_normal() { return glorot_normal(); }
inline Initializer xavier_uniform() { return glorot_uniform(); }
Initializer he_normal();
Initializer he_uniform();
inline Initializer kaiming_normal() { return he_normal(); }
inline Initializer kaiming_uniform() { return he_uniform(); }

// (fan_in, fan_out) as jax's _compute_fans
std::pair<double, double> compute_fans(const Shape& shape, int in_axis = -2, int out_axis = -1);
} // namespace initializers

} // namespace flaxdrm::flax
