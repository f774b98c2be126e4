// Philox4x32-10 keys and samplers (see prng.hpp for the exact scheme).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "flaxdrm/error.hpp"
#include "flaxdrm/flax/initializers.hpp"
#include "flaxdrm/flax/prng.hpp"

namespace flaxdrm::flax {

Key PRNGKey(uint64_t seed)
{
	return {uint32_t(seed >> 32), uint32_t(seed)};
}

std::array<uint32_t, 4> philox4x32(Key key, std::array<uint32_t, 4> c)
{
	constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
	uint32_t k0 = key.k0, k1 = key.k1;
	for (int r = 0; r < 10; r++) {
		const uint64_t p0 = uint64_t(M0) * c[0], p1 = uint64_t(M1) * c[2];
		const uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
		const uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
		c = {hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0};
		k0 += W0;
		k1 += W1;
	}
	return c;
}

std::vector<Key> split(Key key, uint32_t n)
{
	std::vector<Key> out;
	for (uint32_t i = 0; i < n; i++) {
		auto w = philox4x32(key, {i, 0, 0x5b1e7u, 0});
		out.push_back({w[0], w[1]});
	}
	return out;
}

Key fold_in(Key key, uint32_t data)
{
	auto w = philox4x32(key, {data, 0, 0xf01du, 0});
	return {w[0], w[1]};
}

Key fold_in(Key key, const std::string& name)
{
	uint64_t h = 0xcbf29ce484222325ull; // FNV-1a 64
	for (unsigned char ch : name) {
		h ^= ch;
		h *= 0x100000001b3ull;
	}
	return fold_in(fold_in(key, uint32_t(h)), uint32_t(h >> 32));
}

std::string key_str(Key key)
{
	char buf[48];
	std::snprintf(buf, sizeof(buf), "Key(0x%08x, 0x%08x)", key.k0, key.k1);
	return buf;
}

namespace random {
namespace {
constexpr double kTwoPi = 6.283185307179586476925286766559;
inline double unit(uint32_t w) { return double(w >> 8) * (1.0 / 16777216.0); } // [0, 1)
inline double normal_at(Key key, uint64_t i, uint32_t stream)
{
	auto w = philox4x32(key, {uint32_t(i), stream, uint32_t(i >> 32), 0});
	const double u1 = unit(w[0]) + 1.0 / 16777216.0; // (0, 1]
	const double u2 = unit(w[1]);
	return std::sqrt(-2.0 * std::log(u1)) * std::cos(kTwoPi * u2);
}
} // namespace

Tensor uniform(Key key, const Shape& shape, float minval, float maxval)
{
	Tensor t(shape);
	for (std::size_t i = 0; i < t.data.size(); i++) {
		auto w = philox4x32(key, {uint32_t(i / 4), 0, uint32_t(uint64_t(i / 4) >> 32), 0});
		double u = unit(w[i % 4]);
		float v = float(minval + (double(maxval) - minval) * u);
		t.data[i] = v < maxval ? v : minval; // rounding never reaches maxval
	}
	return t;
}

Tensor normal(Key key, const Shape& shape)
{
	Tensor t(shape);
	for (std::size_t i = 0; i < t.data.size(); i++)
		t.data[i] = float(normal_at(key, i, 1));
	return t;
}

Tensor truncated_normal(Key key, const Shape& shape, float lower, float upper)
{
	Tensor t(shape);
	for (std::size_t i = 0; i < t.data.size(); i++) {
		double z = 0;
		bool ok = false;
		for (uint32_t j = 0; j < 64 && !ok; j++) {
			z = normal_at(key, i, 2 + j);
			ok = z >= lower && z <= upper;
		}
		t.data[i] = float(ok ? z : std::fmin(std::fmax(z, lower), upper));
	}
	return t;
}
} // namespace random

namespace initializers {

Initializer zeros()
{
	return [](Key, const Shape& s) { return Tensor(s); };
}
Initializer ones()
{
	return constant(1.0f);
}
Initializer constant(float value)
{
	return [value](Key, const Shape& s) {
		Tensor t(s);
		std::fill(t.data.begin(), t.data.end(), value);
		return t;
	};
}
Initializer normal(float stddev)
{
	return [stddev](Key k, const Shape& s) {
		Tensor t = random::normal(k, s);
		for (float& v : t.data)
			v *= stddev;
		return t;
	};
}
Initializer uniform(float scale)
{
	return [scale](Key k, const Shape& s) { return random::uniform(k, s, 0.0f, scale); };
}

std::pair<double, double> compute_fans(const Shape& shape, int in_axis, int out_axis)
{
	const int rank = int(shape.size());
	if (rank == 0)
		return {1.0, 1.0};
	if (rank == 1)
		return {double(shape[0]), double(shape[0])};
	auto ax = [&](int a) { return a < 0 ? a + rank : a; };
	const double in = double(shape[ax(in_axis)]), out = double(shape[ax(out_axis)]);
	double total = 1;
	for (int64_t d : shape)
		total *= double(d);
	const double rf = total / in / out;
	return {in * rf, out * rf};
}

Initializer variance_scaling(double scale, const std::string& mode, const std::string& distribution, int in_axis,
			     int out_axis)
{
	if (mode != "fan_in" && mode != "fan_out" && mode != "fan_avg")
		throw Error("variance_scaling: invalid mode \"" + mode + "\" (fan_in, fan_out or fan_avg)");
	if (distribution != "truncated_normal" && distribution != "normal" && distribution != "uniform")
		throw Error("variance_scaling: invalid distribution \"" + distribution +
			    "\" (truncated_normal, normal or uniform)");
	return [=](Key k, const Shape& s) {
		auto [fan_in, fan_out] = compute_fans(s, in_axis, out_axis);
		const double denom = mode == "fan_in" ? fan_in : mode == "fan_out" ? fan_out : (fan_in + fan_out) / 2;
		const double variance = scale / std::max(1.0, denom);
		Tensor t;
		double mul;
		if (distribution == "truncated_normal") {
			t = random::truncated_normal(k, s, -2.0f, 2.0f);
			mul = std::sqrt(variance) / 0.87962566103423978;
		} else if (distribution == "normal") {
			t = random::normal(k, s);
			mul = std::sqrt(variance);
		} else {
			t = random::uniform(k, s, -1.0f, 1.0f);
			mul = std::sqrt(3.0 * variance);
		}
		for (float& v : t.data)
			v = float(v * mul);
		return t;
	};
}

Initializer lecun_normal() { return variance_scaling(1.0, "fan_in", "truncated_normal"); }
Initializer lecun_uniform() { return variance_scaling(1.0, "fan_in", "uniform"); }
Initializer glorot_normal() { return variance_scaling(1.0, "fan_avg", "truncated_normal"); }
Initializer glorot_uniform() { return variance_scaling(1.0, "fan_avg", "uniform"); }
Initializer he_normal() { return variance_scaling(2.0, "fan_in", "truncated_normal"); }
Initializer he_uniform() { return variance_scaling(2.0, "fan_in", "uniform"); }

} // namespace initializers
} // namespace flaxdrm::flax
