// Helpers shared by the flax_* host tests.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "flaxdrm/flax/backend.hpp"
#include "flaxdrm/flax/layers.hpp"
#include "flaxdrm/flax/module.hpp"

namespace flaxtest {

using namespace flaxdrm::flax;
using flaxdrm::Tensor;

inline Tensor iota(flaxdrm::Shape s, float scale = 0.1f, float offset = -0.5f)
{
	Tensor t(s);
	for (std::size_t i = 0; i < t.data.size(); i++)
		t.data[i] = offset + scale * float((i * 7) % 13) + 0.01f * float(i % 5);
	return t;
}

// x[..., k] @ w[k, n] + b[n]
inline Tensor dense_ref(const Tensor& x, const Tensor& w, const Tensor* b)
{
	const int64_t k = w.shape[0], n = w.shape[1], rows = int64_t(x.data.size()) / k;
	flaxdrm::Shape s = x.shape;
	s.back() = n;
	Tensor y(s);
	for (int64_t r = 0; r < rows; r++)
		for (int64_t j = 0; j < n; j++) {
			double acc = b ? b->data[j] : 0.0;
			for (int64_t i = 0; i < k; i++)
				acc += double(x.data[r * k + i]) * w.data[i * n + j];
			y.data[r * n + j] = float(acc);
		}
	return y;
}

inline void expect_near(const Tensor& a, const Tensor& b, float tol = 1e-4f)
{
	ASSERT_EQ(a.shape, b.shape);
	for (std::size_t i = 0; i < a.data.size(); i++)
		ASSERT_NEAR(a.data[i], b.data[i], tol * (1.0f + std::fabs(b.data[i]))) << "at " << i;
}

template <class E, class F> std::string error_of(F&& f)
{
	try {
		f();
	} catch (const E& e) {
		return e.what();
	} catch (const std::exception& e) {
		ADD_FAILURE() << "unexpected exception: " << e.what();
		return {};
	}
	ADD_FAILURE() << "no exception";
	return {};
}

} // namespace flaxtest
