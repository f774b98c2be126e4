// Plain CPU reference implementations of the runtime's ops, written for
// clarity rather than speed: simple loops, double accumulation.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace flaxdrm::ref {

// y[m, n] = sum_k x[m, k] * w[k, n] (+ bias[n]); row-major.
inline std::vector<float> dense(const std::vector<float>& x, const std::vector<float>& w,
				const std::vector<float>* bias, std::size_t M, std::size_t K, std::size_t N)
{
	std::vector<float> y(M * N);
	for (std::size_t m = 0; m < M; m++) {
		for (std::size_t n = 0; n < N; n++) {
			double acc = bias ? double((*bias)[n]) : 0.0;
			for (std::size_t k = 0; k < K; k++)
				acc += double(x[m * K + k]) * double(w[k * N + n]);
			y[m * N + n] = float(acc);
		}
	}
	return y;
}

inline std::vector<float> relu(const std::vector<float>& x)
{
	std::vector<float> y(x.size());
	for (std::size_t i = 0; i < x.size(); i++)
		y[i] = x[i] > 0.0f ? x[i] : 0.0f;
	return y;
}

struct Diff {
	double max_abs = 0;  // max |got - want|
	double max_ref = 0;  // max |want|
	double nmse = 0;     // sum (got - want)^2 / sum want^2
};

inline Diff compare(const std::vector<float>& got, const std::vector<float>& want)
{
	Diff d;
	double err2 = 0, ref2 = 0;
	for (std::size_t i = 0; i < want.size() && i < got.size(); i++) {
		const double e = double(got[i]) - double(want[i]);
		d.max_abs = std::max(d.max_abs, std::fabs(e));
		d.max_ref = std::max(d.max_ref, std::fabs(double(want[i])));
		err2 += e * e;
		ref2 += double(want[i]) * double(want[i]);
	}
	d.nmse = ref2 > 0 ? err2 / ref2 : err2;
	if (got.size() != want.size() || std::isnan(err2))
		d.max_abs = d.nmse = INFINITY;
	return d;
}

} // namespace flaxdrm::ref
