// Layers, activations, initialisers and the PRNG on the local backend,
// against plain CPU references.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "flax_test_util.hpp"

using namespace flaxtest;
using ::testing::HasSubstr;

namespace {

struct Stats {
	double mean = 0, std = 0, min = 1e30, max = -1e30;
};
Stats stats(const Tensor& t)
{
	Stats s;
	for (float v : t.data) {
		s.mean += v;
		s.min = std::min(s.min, double(v));
		s.max = std::max(s.max, double(v));
	}
	s.mean /= double(t.data.size());
	for (float v : t.data)
		s.std += (v - s.mean) * (v - s.mean);
	s.std = std::sqrt(s.std / double(t.data.size()));
	return s;
}

// one module around a function of the input
template <class F> struct Fn : ModuleT<Fn<F>> {
	F f;
	explicit Fn(F fn) : ModuleT<Fn<F>>("Fn"), f(fn) {}
	Value call(const Value& x) override { return f(static_cast<Module&>(*this), x); }
};
template <class F> Tensor run(F f, const Tensor& x, Variables* vars_out = nullptr)
{
	Fn<F> m(f);
	Variables v = m.init(PRNGKey(0), {x});
	Tensor y = m.apply(v, {x});
	if (vars_out)
		*vars_out = v;
	return y;
}

template <class R> void check_unary(Value (*op)(const Value&), R ref)
{
	Tensor x = iota({3, 5}, 0.7f, -4.0f);
	Tensor y = run([op](Module&, const Value& v) { return op(v); }, x);
	Tensor r = x;
	for (float& v : r.data)
		v = ref(v);
	expect_near(y, r, 2e-4f);
}

} // namespace

// ------------------------------------------------------------- PRNG/inits
TEST(FlaxPrng, DeterministicSplitFoldIn)
{
	Key k = PRNGKey(42);
	EXPECT_EQ(split(k, 3), split(k, 3));
	auto ks = split(k, 2);
	EXPECT_NE(ks[0], ks[1]);
	EXPECT_EQ(fold_in(k, "Dense_0"), fold_in(k, "Dense_0"));
	EXPECT_NE(fold_in(k, "Dense_0"), fold_in(k, "Dense_1"));
	EXPECT_NE(fold_in(k, 1u), fold_in(k, 2u));
	Tensor a = random::normal(k, {1000}), b = random::normal(k, {1000}), c = random::normal(ks[0], {1000});
	EXPECT_EQ(a.data, b.data);
	EXPECT_NE(a.data, c.data);
}

TEST(FlaxPrng, Distributions)
{
	const Key k = PRNGKey(7);
	Stats u = stats(random::uniform(k, {100000}, -1, 3));
	EXPECT_NEAR(u.mean, 1.0, 0.02);
	EXPECT_NEAR(u.std, 4 / std::sqrt(12.0), 0.02);
	EXPECT_GE(u.min, -1.0);
	EXPECT_LT(u.max, 3.0);
	Stats n = stats(random::normal(k, {100000}));
	EXPECT_NEAR(n.mean, 0.0, 0.02);
	EXPECT_NEAR(n.std, 1.0, 0.02);
	Stats t = stats(random::truncated_normal(k, {100000}, -2, 2));
	EXPECT_GE(t.min, -2.0);
	EXPECT_LE(t.max, 2.0);
	EXPECT_NEAR(t.mean, 0.0, 0.02);
	EXPECT_NEAR(t.std, 0.87962566103423978, 0.01); // std of N(0,1) truncated to [-2, 2]
}

TEST(FlaxInit, Initializers)
{
	const Key k = PRNGKey(3);
	const flaxdrm::Shape s = {400, 300};
	const double fi = 400, fo = 300;
	Stats ln = stats(init::lecun_normal()(k, s));
	EXPECT_NEAR(ln.std, std::sqrt(1 / fi), 0.02 * std::sqrt(1 / fi));
	EXPECT_LE(ln.max, 2 * std::sqrt(1 / fi) / 0.87962566103423978 + 1e-6);
	Stats lu = stats(init::lecun_uniform()(k, s));
	EXPECT_LE(lu.max, std::sqrt(3 / fi));
	EXPECT_NEAR(lu.std, std::sqrt(1 / fi), 0.02 * std::sqrt(1 / fi));
	Stats gn = stats(init::glorot_normal()(k, s));
	EXPECT_NEAR(gn.std, std::sqrt(2 / (fi + fo)), 0.02 * std::sqrt(2 / (fi + fo)));
	Stats gu = stats(init::xavier_uniform()(k, s));
	EXPECT_LE(gu.max, std::sqrt(6 / (fi + fo)));
	EXPECT_NEAR(gu.std, std::sqrt(2 / (fi + fo)), 0.02 * std::sqrt(2 / (fi + fo)));
	Stats hn = stats(init::he_normal()(k, s));
	EXPECT_NEAR(hn.std, std::sqrt(2 / fi), 0.02 * std::sqrt(2 / fi));
	Stats hu = stats(init::he_uniform()(k, s));
	EXPECT_LE(hu.max, std::sqrt(6 / fi));
	Stats fo_n = stats(init::variance_scaling(1.0, "fan_out", "normal")(k, s));
	EXPECT_NEAR(fo_n.std, std::sqrt(1 / fo), 0.02 * std::sqrt(1 / fo));
	Stats nrm = stats(init::normal()(k, s));
	EXPECT_NEAR(nrm.std, 0.01, 0.0003);
	Stats uni = stats(init::uniform()(k, s));
	EXPECT_GE(uni.min, 0.0);
	EXPECT_LT(uni.max, 0.01);
	EXPECT_EQ(stats(init::zeros()(k, {3})).max, 0.0);
	EXPECT_EQ(stats(init::ones()(k, {3})).min, 1.0);
	EXPECT_EQ(stats(init::constant(2.5f)(k, {3})).mean, 2.5);
	// conv kernels: fan_in = receptive field * in
	auto [a, b] = init::compute_fans({3, 3, 8, 16});
	EXPECT_EQ(a, 72);
	EXPECT_EQ(b, 144);
	EXPECT_THAT(error_of<flaxdrm::Error>([] { init::variance_scaling(1, "fan_x", "normal"); }), HasSubstr("fan_x"));
}

// ---------------------------------------------------------------- layers
TEST(FlaxLayers, DenseDefaults)
{
	Dense d(64);
	EXPECT_TRUE(d.use_bias());
	Tensor x = iota({2, 256});
	Variables v = d.init(PRNGKey(0), {x});
	Stats k = stats(v.at("params/kernel").value);
	EXPECT_NEAR(k.std, 1 / 16.0, 0.05 / 16.0);
	EXPECT_LE(k.max, 2 / 16.0 / 0.87962566103423978 + 1e-6);
	EXPECT_EQ(stats(v.at("params/bias").value).max, 0.0);
	Dense nb(3, DenseOptions{false});
	EXPECT_EQ(nb.init(PRNGKey(0), {x}).size(), 1u);
}

TEST(FlaxLayers, Activations)
{
	check_unary(relu, [](float v) { return std::max(v, 0.0f); });
	check_unary(silu, [](float v) { return v / (1 + std::exp(-v)); });
	check_unary(sigmoid, [](float v) { return 1 / (1 + std::exp(-v)); });
	check_unary(flaxdrm::flax::tanh, [](float v) { return std::tanh(v); });
	check_unary(softplus, [](float v) { return std::log1p(std::exp(v)); });
	Tensor x = iota({3, 5}, 0.7f, -4.0f);
	Tensor g = run([](Module&, const Value& v) { return gelu(v); }, x), ge = run([](Module&, const Value& v) {
		return gelu(v, false);
	}, x);
	Tensor e = run([](Module&, const Value& v) { return elu(v); }, x),
	       l = run([](Module&, const Value& v) { return leaky_relu(v); }, x);
	for (std::size_t i = 0; i < x.data.size(); i++) {
		const double v = x.data[i];
		EXPECT_NEAR(g.data[i], 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))), 1e-4);
		EXPECT_NEAR(ge.data[i], 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))), 1e-4);
		EXPECT_NEAR(e.data[i], v > 0 ? v : std::expm1(v), 1e-4);
		EXPECT_NEAR(l.data[i], v > 0 ? v : 0.01 * v, 1e-6);
	}
	Tensor sm = run([](Module&, const Value& v) { return softmax(v); }, x);
	Tensor lsm = run([](Module&, const Value& v) { return log_softmax(v); }, x);
	for (int r = 0; r < 3; r++) {
		double mx = -1e30, z = 0;
		for (int c = 0; c < 5; c++)
			mx = std::max(mx, double(x.data[r * 5 + c]));
		for (int c = 0; c < 5; c++)
			z += std::exp(x.data[r * 5 + c] - mx);
		for (int c = 0; c < 5; c++) {
			EXPECT_NEAR(sm.data[r * 5 + c], std::exp(x.data[r * 5 + c] - mx) / z, 1e-5);
			EXPECT_NEAR(lsm.data[r * 5 + c], x.data[r * 5 + c] - mx - std::log(z), 1e-4);
		}
	}
}

TEST(FlaxLayers, ConvSameMatchesCpu)
{
	Tensor x = iota({1, 5, 5, 2});
	Variables v;
	Tensor y = run([](Module& m, const Value& in) { return m.make_child<Conv>(3, flaxdrm::Shape{3, 3})(in); }, x, &v);
	ASSERT_EQ(y.shape, (flaxdrm::Shape{1, 5, 5, 3}));
	const Tensor& k = v.at("params/Conv_0/kernel").value;
	EXPECT_EQ(k.shape, (flaxdrm::Shape{3, 3, 2, 3}));
	for (int oh = 0; oh < 5; oh++)
		for (int ow = 0; ow < 5; ow++)
			for (int f = 0; f < 3; f++) {
				double acc = 0;
				for (int kh = 0; kh < 3; kh++)
					for (int kw = 0; kw < 3; kw++)
						for (int c = 0; c < 2; c++) {
							int ih = oh + kh - 1, iw = ow + kw - 1;
							if (ih < 0 || iw < 0 || ih >= 5 || iw >= 5)
								continue;
							acc += x.data[(ih * 5 + iw) * 2 + c] * k.data[((kh * 3 + kw) * 2 + c) * 3 + f];
						}
				EXPECT_NEAR(y.data[(oh * 5 + ow) * 3 + f], acc, 1e-4);
			}
}

TEST(FlaxLayers, ConvPaddingModesAndTranspose)
{
	auto shape_of = [](ConvOptions o, flaxdrm::Shape ks, flaxdrm::Shape xs, bool transpose = false) {
		Tensor x = iota(xs);
		return run([o, ks, transpose](Module& m, const Value& in) {
			return transpose ? m.make_child<ConvTranspose>(4, ks, o)(in) : m.make_child<Conv>(4, ks, o)(in);
		}, x).shape;
	};
	ConvOptions valid;
	valid.padding = "VALID";
	EXPECT_EQ(shape_of(valid, {3, 3}, {2, 6, 6, 1}), (flaxdrm::Shape{2, 4, 4, 4}));
	ConvOptions causal;
	causal.padding = "CAUSAL";
	EXPECT_EQ(shape_of(causal, {3}, {2, 7, 2}), (flaxdrm::Shape{2, 7, 4}));
	ConvOptions circ;
	circ.padding = "CIRCULAR";
	EXPECT_EQ(shape_of(circ, {3, 3}, {1, 5, 5, 1}), (flaxdrm::Shape{1, 5, 5, 4}));
	ConvOptions expl;
	expl.explicit_padding = {{1, 2}, {0, 0}};
	EXPECT_EQ(shape_of(expl, {3, 3}, {1, 5, 5, 1}), (flaxdrm::Shape{1, 6, 3, 4}));
	ConvOptions s2;
	s2.strides = {2, 2};
	EXPECT_EQ(shape_of(s2, {3, 3}, {1, 4, 4, 2}, true), (flaxdrm::Shape{1, 8, 8, 4}));
	EXPECT_EQ(shape_of(s2, {3, 3}, {1, 5, 5, 2}), (flaxdrm::Shape{1, 3, 3, 4}));
	ConvOptions grouped;
	grouped.feature_group_count = 2;
	Variables v;
	run([grouped](Module& m, const Value& in) { return m.make_child<Conv>(4, flaxdrm::Shape{3, 3}, grouped)(in); },
	    iota({1, 4, 4, 6}), &v);
	EXPECT_EQ(v.at("params/Conv_0/kernel").value.shape, (flaxdrm::Shape{3, 3, 3, 4}));
	// causal: output t sees inputs <= t only
	Tensor x = iota({1, 6, 1});
	Variables cv;
	Tensor y = run([causal](Module& m, const Value& in) {
		return m.make_child<Conv>(1, flaxdrm::Shape{3}, causal)(in);
	}, x, &cv);
	const Tensor& k = cv.at("params/Conv_0/kernel").value;
	for (int t = 0; t < 6; t++) {
		double acc = 0;
		for (int j = 0; j < 3; j++)
			if (t - 2 + j >= 0)
				acc += x.data[t - 2 + j] * k.data[j];
		EXPECT_NEAR(y.data[t], acc, 1e-5);
	}
}

TEST(FlaxLayers, Norms)
{
	Tensor x = iota({4, 64}, 0.3f, -1.0f);
	Variables v;
	Tensor y = run([](Module& m, const Value& in) { return m.make_child<LayerNorm>()(in); }, x, &v);
	EXPECT_EQ(v.at("params/LayerNorm_0/scale").value.data, std::vector<float>(64, 1.0f));
	EXPECT_EQ(stats(v.at("params/LayerNorm_0/bias").value).max, 0.0);
	Tensor r = run([](Module& m, const Value& in) { return m.make_child<RMSNorm>()(in); }, x, &v);
	EXPECT_FALSE(v.count("params/RMSNorm_0/bias"));
	Tensor g = run([](Module& m, const Value& in) { return m.make_child<GroupNorm>()(in); }, x, &v); // 32 groups
	for (int row = 0; row < 4; row++) {
		double mean = 0, sq = 0;
		for (int c = 0; c < 64; c++) {
			mean += x.data[row * 64 + c];
			sq += double(x.data[row * 64 + c]) * x.data[row * 64 + c];
		}
		mean /= 64;
		const double var = std::max(sq / 64 - mean * mean, 0.0);
		for (int c = 0; c < 64; c++) {
			const double xv = x.data[row * 64 + c];
			EXPECT_NEAR(y.data[row * 64 + c], (xv - mean) / std::sqrt(var + 1e-6), 2e-4);
			EXPECT_NEAR(r.data[row * 64 + c], xv / std::sqrt(sq / 64 + 1e-6), 2e-4);
			// group of 2 channels
			const int g0 = c / 2 * 2;
			const double a = x.data[row * 64 + g0], b = x.data[row * 64 + g0 + 1], gm = (a + b) / 2;
			const double gv = std::max((a * a + b * b) / 2 - gm * gm, 0.0);
			EXPECT_NEAR(g.data[row * 64 + c], (xv - gm) / std::sqrt(gv + 1e-6), 5e-3);
		}
	}
}

TEST(FlaxLayers, BatchNormRunningStats)
{
	Tensor x = iota({6, 3}, 0.5f, -1.0f);
	BatchNorm train;
	Variables v = train.init(PRNGKey(0), {x});
	EXPECT_EQ(v.at("batch_stats/mean").value.data, std::vector<float>(3, 0.0f));
	EXPECT_EQ(v.at("batch_stats/var").value.data, std::vector<float>(3, 1.0f));
	auto [y, upd] = train.apply(v, {x}, Mutable{"batch_stats"});
	for (int c = 0; c < 3; c++) {
		double m = 0, s = 0;
		for (int r = 0; r < 6; r++) {
			m += x.data[r * 3 + c];
			s += double(x.data[r * 3 + c]) * x.data[r * 3 + c];
		}
		m /= 6;
		const double var = s / 6 - m * m; // biased
		EXPECT_NEAR(upd.at("batch_stats/mean").value.data[c], 0.01 * m, 1e-5);
		EXPECT_NEAR(upd.at("batch_stats/var").value.data[c], 0.99 + 0.01 * var, 1e-5);
		for (int r = 0; r < 6; r++)
			EXPECT_NEAR(y.data[r * 3 + c], (x.data[r * 3 + c] - m) / std::sqrt(var + 1e-5), 1e-3);
	}
	BatchNormOptions o;
	o.use_running_average = true;
	BatchNorm eval(o);
	Variables ev = upd;
	ev["params/scale"] = v.at("params/scale");
	ev["params/bias"] = v.at("params/bias");
	Tensor ye = eval.apply(ev, {x});
	for (int i = 0; i < 18; i++) {
		const int c = i % 3;
		EXPECT_NEAR(ye.data[i],
			    (x.data[i] - upd.at("batch_stats/mean").value.data[c]) /
				    std::sqrt(upd.at("batch_stats/var").value.data[c] + 1e-5),
			    1e-4);
	}
}

TEST(FlaxLayers, EmbedLookupAttendAndInit)
{
	struct M : ModuleT<M> {
		M() : ModuleT("M") {}
		Value call(const Value& idx) override { return make_child<Embed>(10, 4)(idx); }
	} m;
	Array idx = Array::i32({2, 3}, {0, 3, 9, 1, 1, 5});
	Variables v = m.init(PRNGKey(0), {idx});
	const Tensor& table = v.at("params/Embed_0/embedding").value;
	EXPECT_EQ(table.shape, (flaxdrm::Shape{10, 4}));
	Tensor y = m.apply(v, {idx});
	ASSERT_EQ(y.shape, (flaxdrm::Shape{2, 3, 4}));
	const int ids[] = {0, 3, 9, 1, 1, 5};
	for (int i = 0; i < 6; i++)
		for (int f = 0; f < 4; f++)
			EXPECT_EQ(y.data[i * 4 + f], table.data[ids[i] * 4 + f]);
	Embed big(1000, 64);
	Stats s = stats(big.init(PRNGKey(1), {Array::i32({1}, {0})}).at("params/embedding").value);
	EXPECT_NEAR(s.std, std::sqrt(1 / 64.0), 0.03 * std::sqrt(1 / 64.0));

	struct A : ModuleT<A> {
		A() : ModuleT("A") {}
		Value call(const Value& q) override { return make_child<Embed>(10, 4).attend(q); }
	} a;
	Tensor q = iota({2, 4});
	Variables av = a.init(PRNGKey(0), {q});
	Tensor at = a.apply(av, {q});
	const Tensor& t2 = av.at("params/Embed_0/embedding").value;
	for (int r = 0; r < 2; r++)
		for (int n = 0; n < 10; n++) {
			double acc = 0;
			for (int f = 0; f < 4; f++)
				acc += q.data[r * 4 + f] * t2.data[n * 4 + f];
			EXPECT_NEAR(at.data[r * 10 + n], acc, 1e-5);
		}
}

TEST(FlaxLayers, MultiHeadAttention)
{
	Tensor x = iota({2, 5, 8});
	MultiHeadDotProductAttention mha(2);
	Variables v = mha.init(PRNGKey(0), {x});
	EXPECT_EQ(v.at("params/query/kernel").value.shape, (flaxdrm::Shape{8, 2, 4}));
	EXPECT_EQ(v.at("params/key/bias").value.shape, (flaxdrm::Shape{2, 4}));
	EXPECT_EQ(v.at("params/out/kernel").value.shape, (flaxdrm::Shape{2, 4, 8}));
	Tensor y = mha.apply(v, {x});
	ASSERT_EQ(y.shape, (flaxdrm::Shape{2, 5, 8}));
	// CPU reference
	auto proj = [&](const std::string& n) {
		Tensor k = v.at("params/" + n + "/kernel").value, b = v.at("params/" + n + "/bias").value;
		k.shape = {8, 8};
		b.shape = {8};
		return dense_ref(x, k, &b); // (2, 5, 8) = (B, L, H*D)
	};
	Tensor q = proj("query"), k = proj("key"), vv = proj("value");
	Tensor att({2, 5, 8});
	for (int b = 0; b < 2; b++)
		for (int h = 0; h < 2; h++)
			for (int i = 0; i < 5; i++) {
				double logits[5], mx = -1e30, z = 0;
				for (int j = 0; j < 5; j++) {
					double d = 0;
					for (int e = 0; e < 4; e++)
						d += q.data[(b * 5 + i) * 8 + h * 4 + e] * k.data[(b * 5 + j) * 8 + h * 4 + e];
					logits[j] = d / 2.0; // 1/sqrt(head_dim 4)
					mx = std::max(mx, logits[j]);
				}
				for (int j = 0; j < 5; j++)
					z += std::exp(logits[j] - mx);
				for (int e = 0; e < 4; e++) {
					double acc = 0;
					for (int j = 0; j < 5; j++)
						acc += std::exp(logits[j] - mx) / z * vv.data[(b * 5 + j) * 8 + h * 4 + e];
					att.data[(b * 5 + i) * 8 + h * 4 + e] = float(acc);
				}
			}
	Tensor ok = v.at("params/out/kernel").value;
	ok.shape = {8, 8};
	expect_near(y, dense_ref(att, ok, &v.at("params/out/bias").value), 2e-4f);
}

TEST(FlaxLayers, DropoutAndPools)
{
	Tensor x = iota({4, 64}, 0.1f, 1.0f);
	Tensor id = run([](Module& m, const Value& in) { return m.make_child<Dropout>(0.5, true)(in); }, x);
	EXPECT_EQ(id.data, x.data);
	struct D : ModuleT<D> {
		D() : ModuleT("D") {}
		Value call(const Value& in) override { return make_child<Dropout>(0.5)(in); }
	} d;
	ApplyOptions o;
	o.rngs = {{"dropout", PRNGKey(9)}};
	Tensor y1 = d.apply({}, {x}, o), y2 = d.apply({}, {x}, o);
	EXPECT_EQ(y1.data, y2.data);
	int kept = 0;
	for (std::size_t i = 0; i < x.data.size(); i++) {
		if (y1.data[i] != 0) {
			kept++;
			EXPECT_NEAR(y1.data[i], 2 * x.data[i], 1e-5);
		}
	}
	EXPECT_GT(kept, 80);
	EXPECT_LT(kept, 176);

	Tensor img = iota({1, 4, 4, 1});
	Tensor ap = run([](Module&, const Value& in) { return avg_pool(in, {2, 2}, {2, 2}); }, img);
	Tensor mp = run([](Module&, const Value& in) { return max_pool(in, {2, 2}, {2, 2}); }, img);
	ASSERT_EQ(ap.shape, (flaxdrm::Shape{1, 2, 2, 1}));
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++) {
			float a = img.data[(2 * i) * 4 + 2 * j], b = img.data[(2 * i) * 4 + 2 * j + 1],
			      c = img.data[(2 * i + 1) * 4 + 2 * j], e = img.data[(2 * i + 1) * 4 + 2 * j + 1];
			EXPECT_NEAR(ap.data[i * 2 + j], (a + b + c + e) / 4, 1e-6);
			EXPECT_EQ(mp.data[i * 2 + j], std::max({a, b, c, e}));
		}
	Tensor same = run([](Module&, const Value& in) { return max_pool(in, {3, 3}, {1, 1}, "SAME"); }, img);
	EXPECT_EQ(same.shape, img.shape);
}

TEST(FlaxLayers, DenseGeneralAxes)
{
	Tensor x = iota({2, 3, 4});
	Variables v;
	Tensor y = run([](Module& m, const Value& in) {
		return m.make_child<DenseGeneral>(std::vector<int64_t>{5}, std::vector<int64_t>{-2, -1})(in);
	}, x, &v);
	ASSERT_EQ(y.shape, (flaxdrm::Shape{2, 5}));
	Tensor k = v.at("params/DenseGeneral_0/kernel").value;
	EXPECT_EQ(k.shape, (flaxdrm::Shape{3, 4, 5}));
	k.shape = {12, 5};
	Tensor xf = x;
	xf.shape = {2, 12};
	expect_near(y, dense_ref(xf, k, &v.at("params/DenseGeneral_0/bias").value));
	// fan_in of the flattened kernel: 12
	DenseGeneral big(std::vector<int64_t>{64}, std::vector<int64_t>{-2, -1});
	Stats s = stats(big.init(PRNGKey(0), {iota({1, 16, 16})}).at("params/kernel").value);
	EXPECT_NEAR(s.std, 1 / 16.0, 0.05 / 16.0);
}
