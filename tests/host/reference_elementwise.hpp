// Plain CPU references for the elementwise, softmax, dropout, reduction and
// layout ops, written for clarity: row-major index loops, double arithmetic
// with the formulas jax.nn / jax.numpy use, results cast to float. Also the
// small program-building helpers that ops_elementwise_test.cpp and
// ops_layout_test.cpp share.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cpu_reference.hpp"
#include "flaxdrm/runtime.hpp"
#include "op_test_util.hpp"

namespace flaxdrm::ref {

using Dims = std::vector<uint32_t>;

inline uint64_t numel(const Dims& d)
{
	uint64_t n = 1;
	for (uint32_t x : d)
		n *= x;
	return n;
}

// Row-major multi-index of a flat index.
inline std::vector<uint32_t> unravel(uint64_t i, const Dims& d)
{
	std::vector<uint32_t> idx(d.size());
	for (std::size_t k = d.size(); k-- > 0;) {
		idx[k] = uint32_t(i % d[k]);
		i /= d[k];
	}
	return idx;
}

inline uint64_t ravel(const std::vector<uint32_t>& idx, const Dims& d)
{
	uint64_t i = 0;
	for (std::size_t k = 0; k < d.size(); k++)
		i = i * d[k] + idx[k];
	return i;
}

// ------------------------------------------------------------ unary

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// jax.nn semantics; `a` is elu's alpha or leaky_relu's slope.
enum class Unary { Relu, GeluTanh, GeluErf, Silu, Sigmoid, Tanh, Elu, LeakyRelu, Softplus };

inline double unary(Unary op, double x, double a = 0)
{
	switch (op) {
	case Unary::Relu:
		return std::isnan(x) ? x : x > 0 ? x : 0.0;
	case Unary::GeluTanh:
		return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
	case Unary::GeluErf: // x * (erf(x / sqrt(2)) + 1) / 2, exact in the tail too
		return x * std::erfc(-x / std::sqrt(2.0)) / 2.0;
	case Unary::Silu:
		return x * sigmoid(x);
	case Unary::Sigmoid:
		return sigmoid(x);
	case Unary::Tanh:
		return std::tanh(x);
	case Unary::Elu:
		return x > 0 ? x : a * std::expm1(x);
	case Unary::LeakyRelu:
		return x >= 0 ? x : a * x;
	case Unary::Softplus: // jnp.logaddexp(x, 0)
		if (std::isnan(x))
			return x;
		return (x > 0 ? x : 0.0) + std::log1p(std::exp(-std::fabs(x)));
	}
	return kNaN;
}

inline std::vector<float> unary(Unary op, const std::vector<float>& x, double a = 0)
{
	std::vector<float> y(x.size());
	for (std::size_t i = 0; i < x.size(); i++)
		y[i] = float(unary(op, double(x[i]), a));
	return y;
}

// ------------------------------------------------------------ binary

enum class Binary { Add, Sub, Mul, Div, Max, Min };

inline double binary(Binary op, double a, double b)
{
	switch (op) {
	case Binary::Add: return a + b;
	case Binary::Sub: return a - b;
	case Binary::Mul: return a * b;
	case Binary::Div: return a / b;
	case Binary::Max: return std::isnan(a) || std::isnan(b) ? kNaN : std::max(a, b);
	case Binary::Min: return std::isnan(a) || std::isnan(b) ? kNaN : std::min(a, b);
	}
	return kNaN;
}

// NumPy's broadcast shape; empty optional-like flag when incompatible.
inline bool broadcast_shape(const Dims& a, const Dims& b, Dims* out)
{
	const std::size_t r = std::max(a.size(), b.size());
	out->assign(r, 1);
	for (std::size_t i = 0; i < r; i++) {
		const uint32_t da = i + a.size() >= r ? a[i + a.size() - r] : 1;
		const uint32_t db = i + b.size() >= r ? b[i + b.size() - r] : 1;
		if (da != db && da != 1 && db != 1)
			return false;
		(*out)[i] = da == 1 ? db : da;
	}
	return true;
}

// Element of x (shape xd) that output index idx (rank >= xd.size()) reads.
inline uint64_t broadcast_index(const std::vector<uint32_t>& idx, const Dims& xd)
{
	uint64_t i = 0;
	const std::size_t lead = idx.size() - xd.size();
	for (std::size_t k = 0; k < xd.size(); k++)
		i = i * xd[k] + (xd[k] == 1 ? 0 : idx[lead + k]);
	return i;
}

inline std::vector<float> binary(Binary op, const std::vector<float>& a, const Dims& ad,
				 const std::vector<float>& b, const Dims& bd)
{
	Dims yd;
	if (!broadcast_shape(ad, bd, &yd))
		return {};
	std::vector<float> y(numel(yd));
	for (uint64_t i = 0; i < y.size(); i++) {
		const auto idx = unravel(i, yd);
		y[i] = float(binary(op, a[broadcast_index(idx, ad)], b[broadcast_index(idx, bd)]));
	}
	return y;
}

// ------------------------------------------------------------ softmax

// Over the last axis of rows of length len; jax.nn.softmax / log_softmax.
inline std::vector<float> softmax(const std::vector<float>& x, std::size_t len, bool log)
{
	std::vector<float> y(x.size());
	for (std::size_t r = 0; r < x.size() / len; r++) {
		const float* row = &x[r * len];
		double m = -INFINITY;
		for (std::size_t j = 0; j < len; j++)
			m = std::isnan(row[j]) || std::isnan(m) ? kNaN : std::max(m, double(row[j]));
		double s = 0;
		for (std::size_t j = 0; j < len; j++)
			s += std::exp(double(row[j]) - m);
		for (std::size_t j = 0; j < len; j++)
			y[r * len + j] = float(log ? (double(row[j]) - m) - std::log(s) : std::exp(double(row[j]) - m) / s);
	}
	return y;
}

// ------------------------------------------------------------ dropout

// The counter-based hash documented in shaders/elementwise.comp.
inline uint32_t mix32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

inline uint32_t dropout_hash(uint32_t s0, uint32_t s1, uint32_t i)
{
	const uint32_t k0 = mix32(s0 ^ mix32(s1 ^ 0x9e3779b9u));
	const uint32_t k1 = mix32(s1 ^ mix32(k0 ^ 0x85ebca6bu));
	return mix32(mix32(i ^ k0) + k1);
}

// Whether element i is kept for this rate and seed.
inline bool dropout_keep(float rate, uint32_t s0, uint32_t s1, uint32_t i)
{
	const double thr = std::min(std::nearbyint(double(rate) * 4294967296.0), 4294967295.0);
	return double(dropout_hash(s0, s1, i)) >= thr;
}

// ------------------------------------------------------------ reductions

enum class Reduce { Sum, Mean, Max };

// Over the axes in the bitmask; the output is row-major over the kept axes
// (keepdims does not change the data).
inline std::vector<float> reduce(Reduce op, const std::vector<float>& x, const Dims& xd, uint32_t axes)
{
	Dims kd;
	uint64_t R = 1;
	for (std::size_t k = 0; k < xd.size(); k++) {
		if ((axes >> k) & 1)
			R *= xd[k];
		else
			kd.push_back(xd[k]);
	}
	std::vector<double> acc(numel(kd), op == Reduce::Max ? -INFINITY : 0.0);
	for (uint64_t i = 0; i < x.size(); i++) {
		const auto idx = unravel(i, xd);
		std::vector<uint32_t> kidx;
		for (std::size_t k = 0; k < xd.size(); k++)
			if (!((axes >> k) & 1))
				kidx.push_back(idx[k]);
		double& a = acc[ravel(kidx, kd)];
		const double v = x[i];
		if (op == Reduce::Max)
			a = std::isnan(v) || std::isnan(a) ? kNaN : std::max(a, v);
		else
			a += v;
	}
	std::vector<float> y(acc.size());
	for (std::size_t i = 0; i < y.size(); i++)
		y[i] = float(op == Reduce::Mean ? acc[i] / double(R) : acc[i]);
	return y;
}

// ------------------------------------------------------------ layout

// y[i0..] = x[i_perm[0]..]: y.dims[d] = x.dims[perm[d]].
template <typename T>
std::vector<T> transpose(const std::vector<T>& x, const Dims& xd, const std::vector<uint32_t>& perm)
{
	Dims yd(xd.size());
	for (std::size_t d = 0; d < xd.size(); d++)
		yd[d] = xd[perm[d]];
	std::vector<T> y(x.size());
	for (uint64_t i = 0; i < y.size(); i++) {
		const auto yi = unravel(i, yd);
		std::vector<uint32_t> xi(xd.size());
		for (std::size_t d = 0; d < xd.size(); d++)
			xi[perm[d]] = yi[d];
		y[i] = x[ravel(xi, xd)];
	}
	return y;
}

template <typename T>
std::vector<T> slice(const std::vector<T>& x, const Dims& xd, const std::vector<uint32_t>& start, const Dims& yd)
{
	std::vector<T> y(numel(yd));
	for (uint64_t i = 0; i < y.size(); i++) {
		auto idx = unravel(i, yd);
		for (std::size_t d = 0; d < idx.size(); d++)
			idx[d] += start[d];
		y[i] = x[ravel(idx, xd)];
	}
	return y;
}

template <typename T>
std::vector<T> concat(const std::vector<std::vector<T>>& xs, const std::vector<Dims>& xds, uint32_t axis)
{
	Dims yd = xds[0];
	yd[axis] = 0;
	for (const Dims& d : xds)
		yd[axis] += d[axis];
	std::vector<T> y(numel(yd));
	uint32_t at = 0;
	for (std::size_t k = 0; k < xs.size(); k++) {
		for (uint64_t i = 0; i < xs[k].size(); i++) {
			auto idx = unravel(i, xds[k]);
			idx[axis] += at;
			y[ravel(idx, yd)] = xs[k][i];
		}
		at += xds[k][axis];
	}
	return y;
}

// ------------------------------------------------------------ comparing

// NaN exactly where the reference has NaN, the same infinities, and an
// nmse over the finite elements at most `nmse`, each element within
// `abs_tol` * max(1, |ref|).
inline ::testing::AssertionResult close(const std::vector<float>& got, const std::vector<float>& want,
					double nmse, double abs_tol)
{
	if (got.size() != want.size())
		return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
	std::vector<float> g, w;
	for (std::size_t i = 0; i < want.size(); i++) {
		if (std::isnan(want[i]) || std::isnan(got[i])) {
			if (std::isnan(want[i]) != std::isnan(got[i]))
				return ::testing::AssertionFailure()
				       << "element " << i << ": got " << got[i] << ", want " << want[i];
			continue;
		}
		if (std::isinf(want[i]) || std::isinf(got[i])) {
			if (got[i] != want[i])
				return ::testing::AssertionFailure()
				       << "element " << i << ": got " << got[i] << ", want " << want[i];
			continue;
		}
		const double e = std::fabs(double(got[i]) - double(want[i]));
		if (e > abs_tol * std::max(1.0, std::fabs(double(want[i]))))
			return ::testing::AssertionFailure() << "element " << i << ": got " << got[i] << ", want "
							     << want[i] << " (error " << e << ")";
		g.push_back(got[i]);
		w.push_back(want[i]);
	}
	const Diff d = compare(g, w);
	if (d.nmse > nmse)
		return ::testing::AssertionFailure() << "nmse " << d.nmse << " > " << nmse << " (max abs " << d.max_abs << ")";
	return ::testing::AssertionSuccess() << "nmse " << d.nmse;
}

// ------------------------------------------------------------ programs

using optest::Bindings;
using optest::device;
using optest::executor;
using optest::f32_bits;
using optest::random_vector;

struct Program {
	std::vector<drm_flaxdrm_tensor> tensors;
	std::vector<drm_flaxdrm_op> ops;

	uint32_t tensor(uint32_t kind, const Dims& dims, uint32_t dtype = FLAXDRM_DTYPE_F32)
	{
		tensors.push_back(optest::tensor_desc(kind, dims, dtype));
		return uint32_t(tensors.size() - 1);
	}
	uint32_t input(const Dims& d, uint32_t dtype = FLAXDRM_DTYPE_F32) { return tensor(FLAXDRM_TENSOR_INPUT, d, dtype); }
	uint32_t output(const Dims& d, uint32_t dtype = FLAXDRM_DTYPE_F32) { return tensor(FLAXDRM_TENSOR_OUTPUT, d, dtype); }
	uint32_t temp(const Dims& d, uint32_t dtype = FLAXDRM_DTYPE_F32) { return tensor(FLAXDRM_TENSOR_TEMP, d, dtype); }

	void op(uint32_t opcode, const std::vector<uint32_t>& in, const std::vector<uint32_t>& out,
		const std::vector<uint32_t>& attrs = {})
	{
		ops.push_back(optest::op_desc(opcode, 0, in, out, attrs));
	}
};

inline rt::RunStats run(const Program& p, Bindings& b, bool fallback = false)
{
	return executor(fallback).run(p.tensors, p.ops, b.mem);
}

// The status of the rt::Error a run throws, 0 when it runs.
inline int run_status(const Program& p, Bindings& b, std::string* what = nullptr)
{
	try {
		run(p, b);
	} catch (const rt::Error& e) {
		if (what)
			*what = e.what();
		return e.status();
	}
	return 0;
}

// A one-op program x -> y (inputs as given, one output of dims yd) run on
// host vectors; returns y.
inline std::vector<float> run_op(uint32_t opcode, const std::vector<std::vector<float>*>& inputs,
				 const std::vector<Dims>& in_dims, const Dims& yd,
				 const std::vector<uint32_t>& attrs = {}, bool fallback = false)
{
	Program p;
	std::vector<uint32_t> in;
	for (const Dims& d : in_dims)
		in.push_back(p.input(d));
	const uint32_t y = p.output(yd);
	p.op(opcode, in, {y}, attrs);
	std::vector<float> yv(numel(yd), -12345.0f);
	Bindings b(p);
	for (std::size_t i = 0; i < inputs.size(); i++)
		b.host(in[i], *inputs[i]);
	b.host(y, yv);
	run(p, b, fallback);
	return yv;
}

inline std::string dims_name(const Dims& d)
{
	std::string s;
	for (std::size_t i = 0; i < d.size(); i++)
		s += (i ? "x" : "") + std::to_string(d[i]);
	return s.empty() ? "scalar" : s;
}

} // namespace flaxdrm::ref
