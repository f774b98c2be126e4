// Plain CPU references for the normalisation layers and scaled dot-product
// attention, in double, written for clarity: the Flax formulas
// (flax.linen.normalization, flax.linen.attention) one loop at a time.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "cpu_reference.hpp"

namespace flaxdrm::ref {

// Normalises x viewed as [NB, S, G, CG]: statistics per (nb, g) over s and
// c; channel g * CG + c takes scale and bias. rms: no mean (RMSNorm).
// Variance is the biased one (E[x^2] - E[x]^2, exact in double).
inline std::vector<float> normalize_segments(const std::vector<float>& x, std::size_t NB, std::size_t S,
					     std::size_t G, std::size_t CG, double eps,
					     const std::vector<float>* scale, const std::vector<float>* bias,
					     bool rms, std::vector<double>* means = nullptr,
					     std::vector<double>* vars = nullptr)
{
	std::vector<float> y(x.size());
	const std::size_t C = G * CG;
	auto at = [&](std::size_t nb, std::size_t s, std::size_t g, std::size_t c) {
		return ((nb * S + s) * G + g) * CG + c;
	};
	for (std::size_t nb = 0; nb < NB; nb++) {
		for (std::size_t g = 0; g < G; g++) {
			double sum = 0, n = double(S * CG);
			for (std::size_t s = 0; s < S; s++)
				for (std::size_t c = 0; c < CG; c++)
					sum += x[at(nb, s, g, c)];
			const double mean = rms ? 0.0 : sum / n;
			double ss = 0;
			for (std::size_t s = 0; s < S; s++)
				for (std::size_t c = 0; c < CG; c++) {
					const double d = x[at(nb, s, g, c)] - mean;
					ss += d * d;
				}
			const double var = ss / n;
			if (means)
				means->push_back(mean);
			if (vars)
				vars->push_back(var);
			const double mul = 1.0 / std::sqrt(var + eps);
			for (std::size_t s = 0; s < S; s++)
				for (std::size_t c = 0; c < CG; c++) {
					const std::size_t i = at(nb, s, g, c), ch = g * CG + c;
					double v = (x[i] - mean) * mul;
					if (scale)
						v *= (*scale)[ch];
					if (bias)
						v += (*bias)[ch];
					y[i] = float(v);
				}
		}
	}
	(void)C;
	return y;
}

// LayerNorm over the last `n` elements of each row (n = product of the
// reduced axes; scale/bias over the last axis C).
inline std::vector<float> layer_norm(const std::vector<float>& x, std::size_t n, std::size_t C, double eps,
				     const std::vector<float>* scale, const std::vector<float>* bias)
{
	return normalize_segments(x, x.size() / n, n / C, 1, C, eps, scale, bias, false);
}

inline std::vector<float> rms_norm(const std::vector<float>& x, std::size_t n, std::size_t C, double eps,
				   const std::vector<float>* scale)
{
	return normalize_segments(x, x.size() / n, n / C, 1, C, eps, scale, nullptr, true);
}

// x[N, spatial..., C]
inline std::vector<float> group_norm(const std::vector<float>& x, std::size_t N, std::size_t C,
				     std::size_t groups, double eps, const std::vector<float>* scale,
				     const std::vector<float>* bias)
{
	return normalize_segments(x, N, x.size() / (N * C), groups, C / groups, eps, scale, bias, false);
}

// BatchNorm with running statistics (use_running_average=True).
inline std::vector<float> batch_norm_infer(const std::vector<float>& x, std::size_t C,
					   const std::vector<float>& mean, const std::vector<float>& var,
					   double eps, const std::vector<float>* scale,
					   const std::vector<float>* bias)
{
	std::vector<float> y(x.size());
	for (std::size_t i = 0; i < x.size(); i++) {
		const std::size_t c = i % C;
		double v = (x[i] - double(mean[c])) / std::sqrt(double(var[c]) + eps);
		if (scale)
			v *= (*scale)[c];
		if (bias)
			v += (*bias)[c];
		y[i] = float(v);
	}
	return y;
}

struct BatchNormTrain {
	std::vector<float> y, new_mean, new_var;
};

// BatchNorm in training: biased batch statistics over all axes but the
// last normalise y; ra = momentum * ra + (1 - momentum) * batch stat.
inline BatchNormTrain batch_norm_train(const std::vector<float>& x, std::size_t C,
				       const std::vector<float>& mean, const std::vector<float>& var,
				       double eps, double momentum, const std::vector<float>* scale,
				       const std::vector<float>* bias)
{
	BatchNormTrain r;
	std::vector<double> bm, bv;
	r.y = normalize_segments(x, 1, x.size() / C, C, 1, eps, scale, bias, false, &bm, &bv);
	for (std::size_t c = 0; c < C; c++) {
		r.new_mean.push_back(float(momentum * mean[c] + (1 - momentum) * bm[c]));
		r.new_var.push_back(float(momentum * var[c] + (1 - momentum) * bv[c]));
	}
	return r;
}

// Scaled dot-product attention as flax.linen.dot_product_attention:
// q[B, Lq, H, D], k[B, Lk, H, D], v[B, Lk, H, Dv]; mask (if given) is
// [mB, mH, mLq, mLk] with each dim 1 or full, non-zero keeps; causal keeps
// key j <= query i. Masked logits are the lowest f32, then softmax (a fully
// masked row averages v uniformly).
inline std::vector<float> attention(const std::vector<float>& q, const std::vector<float>& k,
				    const std::vector<float>& v, std::size_t B, std::size_t Lq, std::size_t Lk,
				    std::size_t H, std::size_t D, std::size_t Dv, double scale,
				    const std::vector<int32_t>* mask, const std::size_t* mdims, bool causal)
{
	std::vector<float> o(B * Lq * H * Dv);
	const double lowest = double(std::numeric_limits<float>::lowest());
	std::vector<double> logits(Lk);
	for (std::size_t b = 0; b < B; b++)
		for (std::size_t h = 0; h < H; h++)
			for (std::size_t i = 0; i < Lq; i++) {
				double mx = -INFINITY;
				for (std::size_t j = 0; j < Lk; j++) {
					double s = 0;
					for (std::size_t d = 0; d < D; d++)
						s += double(q[((b * Lq + i) * H + h) * D + d]) *
						     double(k[((b * Lk + j) * H + h) * D + d]);
					s *= scale;
					bool keep = !causal || j <= i;
					if (mask) {
						const std::size_t mi =
							(((mdims[0] == 1 ? 0 : b) * mdims[1] + (mdims[1] == 1 ? 0 : h)) *
								 mdims[2] +
							 (mdims[2] == 1 ? 0 : i)) *
								mdims[3] +
							(mdims[3] == 1 ? 0 : j);
						keep = keep && (*mask)[mi] != 0;
					}
					logits[j] = keep ? s : lowest;
					mx = std::max(mx, logits[j]);
				}
				double sum = 0;
				for (std::size_t j = 0; j < Lk; j++) {
					logits[j] = std::exp(logits[j] - mx);
					sum += logits[j];
				}
				for (std::size_t e = 0; e < Dv; e++) {
					double acc = 0;
					for (std::size_t j = 0; j < Lk; j++)
						acc += logits[j] * double(v[((b * Lk + j) * H + h) * Dv + e]);
					o[((b * Lq + i) * H + h) * Dv + e] = float(acc / sum);
				}
			}
	return o;
}

} // namespace flaxdrm::ref
