// Plain CPU references for the convolution family: conv (as
// lax.conv_general_dilated: strides, explicit or circular padding, input and
// kernel dilation, feature groups), pooling, DenseGeneral, batched matmul,
// Embed lookup and attend. Written for clarity, double accumulation.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "cpu_reference.hpp"

namespace flaxdrm::ref {

struct ConvParams {
	uint32_t N = 1, H = 1, W = 1, C = 1; // x[N, H, W, C]
	uint32_t KH = 1, KW = 1, F = 1;      // kernel[KH, KW, C / groups, F]
	uint32_t sh = 1, sw = 1;             // strides
	uint32_t lh = 1, lw = 1;             // input (lhs) dilation
	uint32_t dh = 1, dw = 1;             // kernel (rhs) dilation
	uint32_t groups = 1;
	bool circular = false;
	uint32_t pt = 0, pb = 0, pl = 0, pr = 0; // padding top, bottom, left, right

	static uint64_t out_size(uint32_t in, uint32_t ld, uint32_t lo, uint32_t hi, uint32_t k, uint32_t kd,
				 uint32_t s)
	{
		const int64_t padded = int64_t(in - 1) * ld + 1 + lo + hi;
		const int64_t span = int64_t(k - 1) * kd + 1;
		return padded < span ? 0 : uint64_t((padded - span) / s + 1);
	}
	uint32_t OH() const { return uint32_t(out_size(H, lh, pt, pb, KH, dh, sh)); }
	uint32_t OW() const { return uint32_t(out_size(W, lw, pl, pr, KW, dw, sw)); }
	std::size_t x_size() const { return std::size_t(N) * H * W * C; }
	std::size_t w_size() const { return std::size_t(KH) * KW * (C / groups) * F; }
	std::size_t y_size() const { return std::size_t(N) * OH() * OW() * F; }
};

// Index into the undilated input of position p of the padded, dilated
// axis, or -1 for padding / a hole of the dilation.
inline int64_t conv_source(int64_t p, uint32_t in, uint32_t ld, uint32_t lo, bool circular)
{
	if (circular) // the rules guarantee ld == 1 and lo <= in
		return ((p - lo) % int64_t(in) + in) % int64_t(in);
	const int64_t q = p - lo;
	if (q < 0 || q > int64_t(in - 1) * ld || q % ld)
		return -1;
	return q / ld;
}

inline std::vector<float> conv(const ConvParams& c, const std::vector<float>& x, const std::vector<float>& w,
			       const std::vector<float>* bias)
{
	const uint32_t OH = c.OH(), OW = c.OW();
	const uint32_t Cg = c.C / c.groups, Fg = c.F / c.groups;
	std::vector<float> y(c.y_size());
	for (uint32_t n = 0; n < c.N; n++)
		for (uint32_t oh = 0; oh < OH; oh++)
			for (uint32_t ow = 0; ow < OW; ow++)
				for (uint32_t f = 0; f < c.F; f++) {
					const uint32_t g = f / Fg;
					double acc = bias ? double((*bias)[f]) : 0.0;
					for (uint32_t kh = 0; kh < c.KH; kh++) {
						const int64_t ih = conv_source(int64_t(oh) * c.sh + int64_t(kh) * c.dh,
									       c.H, c.lh, c.pt, c.circular);
						if (ih < 0)
							continue;
						for (uint32_t kw = 0; kw < c.KW; kw++) {
							const int64_t iw = conv_source(
								int64_t(ow) * c.sw + int64_t(kw) * c.dw, c.W, c.lw,
								c.pl, c.circular);
							if (iw < 0)
								continue;
							for (uint32_t ci = 0; ci < Cg; ci++) {
								const double xv =
									x[((std::size_t(n) * c.H + ih) * c.W + iw) * c.C +
									  g * Cg + ci];
								const double wv =
									w[((std::size_t(kh) * c.KW + kw) * Cg + ci) * c.F + f];
								acc += xv * wv;
							}
						}
					}
					y[((std::size_t(n) * OH + oh) * OW + ow) * c.F + f] = float(acc);
				}
	return y;
}

struct PoolParams {
	uint32_t N = 1, H = 1, W = 1, C = 1;
	uint32_t wh = 1, ww = 1; // window
	uint32_t sh = 1, sw = 1; // strides
	uint32_t pt = 0, pb = 0, pl = 0, pr = 0;
	bool count_include_pad = true; // avg only

	uint32_t OH() const { return uint32_t(ConvParams::out_size(H, 1, pt, pb, wh, 1, sh)); }
	uint32_t OW() const { return uint32_t(ConvParams::out_size(W, 1, pl, pr, ww, 1, sw)); }
	std::size_t x_size() const { return std::size_t(N) * H * W * C; }
	std::size_t y_size() const { return std::size_t(N) * OH() * OW() * C; }
};

// Flax's avg_pool (sum / window size, or / valid count) and max_pool
// (padding is -inf; NaN propagates, as lax.max does).
inline std::vector<float> pool(const PoolParams& p, const std::vector<float>& x, bool max)
{
	const uint32_t OH = p.OH(), OW = p.OW();
	std::vector<float> y(p.y_size());
	for (uint32_t n = 0; n < p.N; n++)
		for (uint32_t oh = 0; oh < OH; oh++)
			for (uint32_t ow = 0; ow < OW; ow++)
				for (uint32_t c = 0; c < p.C; c++) {
					double acc = max ? -INFINITY : 0.0;
					uint32_t count = 0;
					for (uint32_t kh = 0; kh < p.wh; kh++) {
						const int64_t ih = int64_t(oh) * p.sh + kh - p.pt;
						for (uint32_t kw = 0; kw < p.ww; kw++) {
							const int64_t iw = int64_t(ow) * p.sw + kw - p.pl;
							if (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W)
								continue;
							const double v = x[((std::size_t(n) * p.H + ih) * p.W + iw) * p.C + c];
							count++;
							if (!max)
								acc += v;
							else if (std::isnan(v) || v > acc)
								acc = std::isnan(acc) ? acc : v;
						}
					}
					if (!max)
						acc /= p.count_include_pad ? double(p.wh) * p.ww : double(count);
					y[((std::size_t(n) * OH + oh) * OW + ow) * p.C + c] = float(acc);
				}
	return y;
}

// a[batch..., M, K] @ b[batch..., K, N] with NumPy broadcasting of the
// batch dims; ta / tb: the operand is stored transposed ([..., K, M] and
// [..., N, K]). Dims are given in full (rank >= 2 each).
inline std::vector<float> matmul(const std::vector<float>& a, const std::vector<uint32_t>& ad,
				 const std::vector<float>& b, const std::vector<uint32_t>& bd, bool ta, bool tb,
				 std::vector<uint32_t>* out_dims = nullptr)
{
	const std::size_t ra = ad.size(), rb = bd.size(), r = std::max(ra, rb);
	const uint32_t M = ta ? ad[ra - 1] : ad[ra - 2], K = ta ? ad[ra - 2] : ad[ra - 1];
	const uint32_t N = tb ? bd[rb - 2] : bd[rb - 1];
	std::vector<uint32_t> od(r), a_b(r - 2, 1), b_b(r - 2, 1);
	for (std::size_t i = 0; i + 2 < r; i++) {
		if (i + ra >= r)
			a_b[i] = ad[i + ra - r];
		if (i + rb >= r)
			b_b[i] = bd[i + rb - r];
		od[i] = a_b[i] == 1 ? b_b[i] : a_b[i];
	}
	od[r - 2] = M;
	od[r - 1] = N;
	std::size_t batch = 1;
	for (std::size_t i = 0; i + 2 < r; i++)
		batch *= od[i];
	std::vector<float> y(batch * M * N);
	for (std::size_t bi = 0; bi < batch; bi++) {
		// batch index -> a's and b's batch offsets
		std::size_t rem = bi, ao = 0, bo = 0, as = 1, bs = 1;
		for (std::size_t i = r - 2; i-- > 0;) {
			const std::size_t idx = rem % od[i];
			rem /= od[i];
			ao += (a_b[i] == 1 ? 0 : idx) * as;
			bo += (b_b[i] == 1 ? 0 : idx) * bs;
			as *= a_b[i];
			bs *= b_b[i];
		}
		const float* A = a.data() + ao * M * K;
		const float* B = b.data() + bo * K * N;
		for (uint32_t m = 0; m < M; m++)
			for (uint32_t n = 0; n < N; n++) {
				double acc = 0;
				for (uint32_t k = 0; k < K; k++)
					acc += double(ta ? A[k * M + m] : A[m * K + k]) *
					       double(tb ? B[n * K + k] : B[k * N + n]);
				y[(bi * M + m) * N + n] = float(acc);
			}
	}
	if (out_dims)
		*out_dims = od;
	return y;
}

// Embed lookup as jnp.take(table, idx, axis=0): an index in [-N, 0) counts
// from the end, anything outside [-N, N) gives NaN (JAX's fill mode).
inline std::vector<float> embed(const std::vector<int32_t>& idx, const std::vector<float>& table, uint32_t N,
				uint32_t F)
{
	std::vector<float> y(idx.size() * F);
	for (std::size_t i = 0; i < idx.size(); i++) {
		int64_t row = idx[i];
		if (row < 0)
			row += N;
		for (uint32_t f = 0; f < F; f++)
			y[i * F + f] = row >= 0 && row < int64_t(N) ? table[std::size_t(row) * F + f]
								    : std::numeric_limits<float>::quiet_NaN();
	}
	return y;
}

} // namespace flaxdrm::ref
