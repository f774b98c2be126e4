// Elementwise ops on the runtime against tests/host/reference_elementwise.hpp:
// activations (with NaN and infinities), binary ops with NumPy
// broadcasting, softmax/log_softmax, dropout; shape refusals.
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "reference_elementwise.hpp"

namespace ref = flaxdrm::ref;
using ref::Dims;
using ::testing::HasSubstr;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaNf = std::numeric_limits<float>::quiet_NaN();

// Random values in [-8, 8] with special values sprinkled in.
std::vector<float> activation_inputs(std::size_t n, uint32_t seed)
{
	std::vector<float> x = ref::random_vector(n, seed, -8.0f, 8.0f);
	const float special[] = {0.0f, -0.0f, kInf, -kInf, kNaNf, 1e-30f, -1e-30f, 1e-5f, -1e-5f, 0.1f, -0.1f,
				 0.19999f, -0.2f, 3.9f, -4.1f, 20.0f, -20.0f, 100.0f, -100.0f, 1e30f, -1e30f};
	for (std::size_t i = 0; i < n && i < std::size(special); i++)
		x[(i * 7919) % n] = special[i];
	return x;
}

// ------------------------------------------------------------ unary

struct UnaryCase {
	const char* name;
	uint32_t opcode;
	ref::Unary op;
	float attr = 0;     // elu alpha / leaky slope
	uint32_t attr0 = 0; // gelu: 1 tanh approximation
};

const UnaryCase kUnary[] = {
	{"relu", FLAXDRM_OP_RELU, ref::Unary::Relu},
	{"gelu_tanh", FLAXDRM_OP_GELU, ref::Unary::GeluTanh, 0, 1},
	{"gelu_exact", FLAXDRM_OP_GELU, ref::Unary::GeluErf, 0, 0},
	{"silu", FLAXDRM_OP_SILU, ref::Unary::Silu},
	{"sigmoid", FLAXDRM_OP_SIGMOID, ref::Unary::Sigmoid},
	{"tanh", FLAXDRM_OP_TANH, ref::Unary::Tanh},
	{"elu", FLAXDRM_OP_ELU, ref::Unary::Elu, 1.0f},
	{"elu_alpha", FLAXDRM_OP_ELU, ref::Unary::Elu, 0.3f},
	{"leaky_relu", FLAXDRM_OP_LEAKY_RELU, ref::Unary::LeakyRelu, 0.01f},
	{"leaky_relu_0.2", FLAXDRM_OP_LEAKY_RELU, ref::Unary::LeakyRelu, 0.2f},
	{"softplus", FLAXDRM_OP_SOFTPLUS, ref::Unary::Softplus},
};

struct UnaryParam {
	UnaryCase c;
	Dims dims;
};

class UnaryTest : public ::testing::TestWithParam<UnaryParam> {};

TEST_P(UnaryTest, MatchesReference)
{
	const UnaryParam& p = GetParam();
	std::vector<float> x = activation_inputs(ref::numel(p.dims), 17 + p.dims.size());
	std::vector<uint32_t> attrs;
	if (p.c.opcode == FLAXDRM_OP_GELU)
		attrs = {p.c.attr0};
	else if (p.c.opcode == FLAXDRM_OP_ELU || p.c.opcode == FLAXDRM_OP_LEAKY_RELU)
		attrs = {ref::f32_bits(p.c.attr)};
	const auto y = ref::run_op(p.c.opcode, {&x}, {p.dims}, p.dims, attrs);
	const auto want = ref::unary(p.c.op, x, p.c.attr);
	EXPECT_TRUE(ref::close(y, want, 1e-12, 2e-6));
}

std::vector<UnaryParam> unary_params()
{
	std::vector<UnaryParam> v;
	const Dims shapes[] = {{1}, {3}, {255}, {257}, {7, 33, 5}, {1000003}, {2, 1, 3, 1, 4, 5}};
	for (const UnaryCase& c : kUnary)
		for (const Dims& d : shapes)
			v.push_back({c, d});
	return v;
}

INSTANTIATE_TEST_SUITE_P(Ops, UnaryTest, ::testing::ValuesIn(unary_params()),
			 [](const ::testing::TestParamInfo<UnaryParam>& info) {
				 std::string s = std::string(info.param.c.name) + "_" + ref::dims_name(info.param.dims);
				 for (char& ch : s)
					 if (ch == '.')
						 ch = '_';
				 return s;
			 });

// A dense sweep of [-10, 10]: the approximations' worst cases.
TEST(Unary, DenseSweepAccuracy)
{
	std::vector<float> x(200001);
	for (std::size_t i = 0; i < x.size(); i++)
		x[i] = -10.0f + 20.0f * float(i) / float(x.size() - 1);
	for (const UnaryCase& c : kUnary) {
		std::vector<uint32_t> attrs;
		if (c.opcode == FLAXDRM_OP_GELU)
			attrs = {c.attr0};
		else if (c.opcode == FLAXDRM_OP_ELU || c.opcode == FLAXDRM_OP_LEAKY_RELU)
			attrs = {ref::f32_bits(c.attr)};
		const Dims d{uint32_t(x.size())};
		const auto y = ref::run_op(c.opcode, {&x}, {d}, d, attrs);
		const auto want = ref::unary(c.op, x, c.attr);
		const auto r = ref::close(y, want, 1e-12, 1e-6);
		EXPECT_TRUE(r) << c.name;
		std::printf("%-16s %s\n", c.name, r.message());
	}
}

TEST(Unary, SpecialValues)
{
	std::vector<float> x = {kNaNf, kInf, -kInf, 0.0f};
	const Dims d{4};
	auto run = [&](uint32_t opcode, std::vector<uint32_t> attrs = {}) {
		return ref::run_op(opcode, {&x}, {d}, d, attrs);
	};
	auto y = run(FLAXDRM_OP_RELU);
	EXPECT_TRUE(std::isnan(y[0])); // jax.nn.relu(nan) = nan
	EXPECT_EQ(y[1], kInf);
	EXPECT_EQ(y[2], 0.0f);
	y = run(FLAXDRM_OP_SIGMOID);
	EXPECT_TRUE(std::isnan(y[0]));
	EXPECT_EQ(y[1], 1.0f);
	EXPECT_EQ(y[2], 0.0f);
	EXPECT_EQ(y[3], 0.5f);
	y = run(FLAXDRM_OP_TANH);
	EXPECT_TRUE(std::isnan(y[0]));
	EXPECT_EQ(y[1], 1.0f);
	EXPECT_EQ(y[2], -1.0f);
	y = run(FLAXDRM_OP_SILU);
	EXPECT_TRUE(std::isnan(y[0]));
	EXPECT_EQ(y[1], kInf);
	EXPECT_TRUE(std::isnan(y[2])); // -inf * sigmoid(-inf) = -inf * 0
	for (uint32_t approx : {0u, 1u}) {
		y = run(FLAXDRM_OP_GELU, {approx});
		EXPECT_TRUE(std::isnan(y[0]));
		EXPECT_EQ(y[1], kInf);
		EXPECT_TRUE(std::isnan(y[2])); // -inf * cdf(-inf) = -inf * 0, as jax
		EXPECT_EQ(y[3], 0.0f);
	}
	y = run(FLAXDRM_OP_SOFTPLUS);
	EXPECT_TRUE(std::isnan(y[0]));
	EXPECT_EQ(y[1], kInf);
	EXPECT_EQ(y[2], 0.0f);
	EXPECT_FLOAT_EQ(y[3], float(std::log(2.0)));
	y = run(FLAXDRM_OP_ELU, {ref::f32_bits(1.5f)});
	EXPECT_TRUE(std::isnan(y[0]));
	EXPECT_EQ(y[1], kInf);
	EXPECT_EQ(y[2], -1.5f);
	y = run(FLAXDRM_OP_LEAKY_RELU, {ref::f32_bits(0.01f)});
	EXPECT_TRUE(std::isnan(y[0]));
	EXPECT_EQ(y[1], kInf);
	EXPECT_EQ(y[2], -kInf);
}

TEST(Unary, FallbackPaths)
{
	std::vector<float> x = activation_inputs(4099, 5);
	const Dims d{4099};
	const auto y = ref::run_op(FLAXDRM_OP_GELU, {&x}, {d}, d, {0}, true);
	EXPECT_TRUE(ref::close(y, ref::unary(ref::Unary::GeluErf, x), 1e-12, 2e-6));
}

TEST(Unary, RefusesBadShapesAndAttrs)
{
	{
		ref::Program p;
		const uint32_t x = p.input({4, 5});
		const uint32_t y = p.output({5, 4});
		p.op(FLAXDRM_OP_SILU, {x}, {y});
		std::vector<float> xv(20), yv(20);
		ref::Bindings b(p);
		b.host(x, xv);
		b.host(y, yv);
		std::string what;
		EXPECT_EQ(ref::run_status(p, b, &what), -EINVAL);
		EXPECT_THAT(what, HasSubstr("op 0 (silu)"));
	}
	{
		ref::Program p;
		const uint32_t x = p.input({4});
		const uint32_t y = p.output({4});
		p.op(FLAXDRM_OP_GELU, {x}, {y}, {2});
		std::vector<float> xv(4), yv(4);
		ref::Bindings b(p);
		b.host(x, xv);
		b.host(y, yv);
		EXPECT_EQ(ref::run_status(p, b), -EINVAL);
	}
}

// ------------------------------------------------------------ binary

struct BinaryParam {
	Dims a, b;
};

class BinaryTest : public ::testing::TestWithParam<BinaryParam> {};

TEST_P(BinaryTest, MatchesReference)
{
	const BinaryParam& p = GetParam();
	Dims yd;
	ASSERT_TRUE(ref::broadcast_shape(p.a, p.b, &yd));
	std::vector<float> a = ref::random_vector(ref::numel(p.a), 3, -4.0f, 4.0f);
	std::vector<float> b = ref::random_vector(ref::numel(p.b), 4, 0.5f, 4.0f);
	// negative divisors too, never near zero
	for (std::size_t i = 0; i < b.size(); i += 2)
		b[i] = -b[i];
	const struct {
		uint32_t opcode;
		ref::Binary op;
	} ops[] = {
		{FLAXDRM_OP_ADD, ref::Binary::Add}, {FLAXDRM_OP_SUB, ref::Binary::Sub},
		{FLAXDRM_OP_MUL, ref::Binary::Mul}, {FLAXDRM_OP_DIV, ref::Binary::Div},
		{FLAXDRM_OP_MAXIMUM, ref::Binary::Max}, {FLAXDRM_OP_MINIMUM, ref::Binary::Min},
	};
	for (const auto& o : ops) {
		const auto y = ref::run_op(o.opcode, {&a, &b}, {p.a, p.b}, yd);
		const auto want = ref::binary(o.op, a, p.a, b, p.b);
		EXPECT_TRUE(ref::close(y, want, 1e-13, 1e-6)) << "opcode " << o.opcode;
	}
}

INSTANTIATE_TEST_SUITE_P(Shapes, BinaryTest,
			 ::testing::Values(BinaryParam{{1}, {1}}, BinaryParam{{7}, {7}},
					   BinaryParam{{3, 1}, {1, 4}},           // both sides stretch
					   BinaryParam{{}, {5, 6}},               // rank-0 scalar a
					   BinaryParam{{5, 6}, {}},               // rank-0 scalar b
					   BinaryParam{{}, {}},                   // both scalars
					   BinaryParam{{1, 1}, {1}},
					   BinaryParam{{65, 33}, {33}},           // bias-style, rank mismatch
					   BinaryParam{{33}, {65, 33}},
					   BinaryParam{{4, 5, 6}, {4, 1, 6}},     // middle broadcast
					   BinaryParam{{4, 1, 6}, {1, 5, 1}},     // size-1 dims on both sides
					   BinaryParam{{2, 3, 1, 5, 1, 7}, {3, 4, 5, 6, 1}}, // rank 6
					   BinaryParam{{1, 1, 1, 257}, {255, 1}},
					   BinaryParam{{1000, 1001}, {1000, 1001}},
					   BinaryParam{{1000, 1001}, {1}},
					   BinaryParam{{1}, {999, 1003}},
					   BinaryParam{{512, 1}, {1, 2048}},
					   // vector paths: innermost dim a multiple of 4
					   BinaryParam{{8, 12}, {8, 12}}, BinaryParam{{64, 256}, {256}},
					   BinaryParam{{256}, {64, 256}}, BinaryParam{{4, 1, 8}, {1, 5, 8}},
					   BinaryParam{{3, 4, 1, 2, 4}, {5, 2, 4}}, BinaryParam{{1000, 1024}, {1000, 1024}},
					   BinaryParam{{}, {6, 8}}, BinaryParam{{16}, {1}}, BinaryParam{{1}, {2, 8}},
					   BinaryParam{{1000, 1000}, {}},
					   // columns broadcast along a vector-width row
					   BinaryParam{{16, 8}, {16, 1}}, BinaryParam{{6, 1}, {6, 12}},
					   BinaryParam{{3, 1, 8}, {3, 5, 1}}, BinaryParam{{2, 3, 1}, {4}}),
			 [](const ::testing::TestParamInfo<BinaryParam>& info) {
				 return ref::dims_name(info.param.a) + "_" + ref::dims_name(info.param.b);
			 });

TEST(Binary, NaNAndInfinity)
{
	std::vector<float> a = {kNaNf, 1.0f, kNaNf, kInf, -kInf, kInf, 2.0f, -0.0f};
	std::vector<float> b = {1.0f, kNaNf, kNaNf, 1.0f, kInf, kInf, 0.0f, 0.0f};
	const Dims d{8};
	auto y = ref::run_op(FLAXDRM_OP_MAXIMUM, {&a, &b}, {d, d}, d);
	EXPECT_TRUE(std::isnan(y[0]) && std::isnan(y[1]) && std::isnan(y[2])); // jnp.maximum propagates NaN
	EXPECT_EQ(y[3], kInf);
	EXPECT_EQ(y[4], kInf);
	y = ref::run_op(FLAXDRM_OP_MINIMUM, {&a, &b}, {d, d}, d);
	EXPECT_TRUE(std::isnan(y[0]) && std::isnan(y[1]) && std::isnan(y[2]));
	EXPECT_EQ(y[3], 1.0f);
	EXPECT_EQ(y[4], -kInf);
	y = ref::run_op(FLAXDRM_OP_ADD, {&a, &b}, {d, d}, d);
	EXPECT_TRUE(std::isnan(y[4])); // -inf + inf
	EXPECT_EQ(y[5], kInf);
	y = ref::run_op(FLAXDRM_OP_DIV, {&a, &b}, {d, d}, d);
	EXPECT_EQ(y[6], kInf);         // 2 / 0
	EXPECT_TRUE(std::isnan(y[7])); // -0 / 0
	EXPECT_TRUE(std::isnan(y[5])); // inf / inf
	y = ref::run_op(FLAXDRM_OP_MUL, {&a, &b}, {d, d}, d);
	EXPECT_TRUE(std::isnan(y[0]));
	EXPECT_EQ(y[3], kInf);
}

TEST(Binary, FallbackPaths)
{
	std::vector<float> a = ref::random_vector(64 * 33, 8), b = ref::random_vector(33, 9);
	const auto y = ref::run_op(FLAXDRM_OP_SUB, {&a, &b}, {{64, 33}, {33}}, {64, 33}, {}, true);
	EXPECT_TRUE(ref::close(y, ref::binary(ref::Binary::Sub, a, {64, 33}, b, {33}), 1e-13, 1e-6));
	std::vector<float> c = ref::random_vector(24 * 36, 10), d = ref::random_vector(36, 11);
	std::vector<float> e = {2.5f};
	for (bool fallback : {false, true}) {
		const auto z = ref::run_op(FLAXDRM_OP_DIV, {&d, &c}, {{36}, {24, 36}}, {24, 36}, {}, fallback);
		EXPECT_TRUE(ref::close(z, ref::binary(ref::Binary::Div, d, {36}, c, {24, 36}), 1e-13, 1e-6));
		const auto u = ref::run_op(FLAXDRM_OP_MAXIMUM, {&c, &e}, {{24, 36}, {}}, {24, 36}, {}, fallback);
		EXPECT_TRUE(ref::close(u, ref::binary(ref::Binary::Max, c, {24, 36}, e, {}), 0, 0));
		const auto v = ref::run_op(FLAXDRM_OP_SUB, {&e, &c}, {{1}, {24, 36}}, {24, 36}, {}, fallback);
		EXPECT_TRUE(ref::close(v, ref::binary(ref::Binary::Sub, e, {1}, c, {24, 36}), 1e-13, 1e-6));
	}
}

TEST(Binary, RefusesMismatchedShapes)
{
	const struct {
		Dims a, b, y;
	} cases[] = {
		{{3}, {4}, {4}},        // 3 vs 4
		{{2, 3}, {3, 2}, {2, 3}},
		{{4, 1}, {3}, {4, 4}},   // broadcasts to [4, 3], not [4, 4]
		{{4, 1}, {3}, {3, 4}},
		{{5}, {}, {1, 5}},       // output rank must be the max rank
	};
	for (const auto& c : cases) {
		ref::Program p;
		const uint32_t a = p.input(c.a), b = p.input(c.b), y = p.output(c.y);
		p.op(FLAXDRM_OP_ADD, {a, b}, {y});
		std::vector<float> av(ref::numel(c.a)), bv(ref::numel(c.b)), yv(ref::numel(c.y));
		ref::Bindings m(p);
		m.host(a, av);
		m.host(b, bv);
		m.host(y, yv);
		std::string what;
		EXPECT_EQ(ref::run_status(p, m, &what), -EINVAL) << ref::dims_name(c.a) << " " << ref::dims_name(c.b);
		EXPECT_THAT(what, HasSubstr("op 0 (add)"));
	}
}

// Binary ops chained through temps: (a * b + c) / d, then maximum with 0.
TEST(Binary, Chain)
{
	const Dims d{37, 41};
	ref::Program p;
	const uint32_t a = p.input(d), b = p.input({41}), c = p.input({37, 1}), e = p.input({});
	const uint32_t t0 = p.temp(d), t1 = p.temp(d), t2 = p.temp(d), zero = p.input({1}), y = p.output(d);
	p.op(FLAXDRM_OP_MUL, {a, b}, {t0});
	p.op(FLAXDRM_OP_ADD, {t0, c}, {t1});
	p.op(FLAXDRM_OP_DIV, {t1, e}, {t2});
	p.op(FLAXDRM_OP_MAXIMUM, {t2, zero}, {y});
	std::vector<float> av = ref::random_vector(37 * 41, 1), bv = ref::random_vector(41, 2),
			   cv = ref::random_vector(37, 3), ev = {1.7f}, zv = {0.0f}, yv(37 * 41);
	ref::Bindings m(p);
	m.host(a, av);
	m.host(b, bv);
	m.host(c, cv);
	m.host(e, ev);
	m.host(zero, zv);
	m.host(y, yv);
	ref::run(p, m);
	std::vector<float> want(yv.size());
	for (uint32_t i = 0; i < 37; i++)
		for (uint32_t j = 0; j < 41; j++) {
			const float t = (av[i * 41 + j] * bv[j] + cv[i]) / ev[0];
			want[i * 41 + j] = std::max(t, 0.0f);
		}
	EXPECT_TRUE(ref::close(yv, want, 1e-13, 1e-6));
}

// ------------------------------------------------------------ softmax

struct SoftmaxParam {
	Dims dims;
	bool log;
};

class SoftmaxTest : public ::testing::TestWithParam<SoftmaxParam> {};

TEST_P(SoftmaxTest, MatchesReference)
{
	const SoftmaxParam& p = GetParam();
	std::vector<float> x = ref::random_vector(ref::numel(p.dims), 21, -10.0f, 10.0f);
	const auto want = ref::softmax(x, p.dims.back(), p.log);
	for (bool fallback : {false, true}) { // CPU-device and GPU-style row splits
		const auto y = ref::run_op(p.log ? FLAXDRM_OP_LOG_SOFTMAX : FLAXDRM_OP_SOFTMAX, {&x}, {p.dims}, p.dims,
					   {}, fallback);
		EXPECT_TRUE(ref::close(y, want, 1e-11, 1e-5)) << "fallback " << fallback;
	}
}

INSTANTIATE_TEST_SUITE_P(Shapes, SoftmaxTest,
			 ::testing::ValuesIn([] {
				 std::vector<SoftmaxParam> v;
				 const Dims shapes[] = {{1}, {10}, {4, 10}, {3, 33}, {1000, 10}, {5, 7, 31},
							{2, 32}, {8, 1023}, {3, 1025}, {2, 8192}, {2, 100003},
							{70000, 3}, {1, 1, 1, 1, 1, 2},
							// vec4 rows
							{4}, {16, 64}, {300, 12}, {2, 4096}, {3, 5, 1028}};
				 for (const Dims& d : shapes)
					 for (bool log : {false, true})
						 v.push_back({d, log});
				 return v;
			 }()),
			 [](const ::testing::TestParamInfo<SoftmaxParam>& info) {
				 return ref::dims_name(info.param.dims) + (info.param.log ? "_log" : "");
			 });

TEST(Softmax, SumsToOneAndIsStable)
{
	// Large logits: exp without the max subtracted would overflow.
	std::vector<float> x = ref::random_vector(4 * 300, 5, 500.0f, 800.0f);
	const Dims d{4, 300};
	const auto y = ref::run_op(FLAXDRM_OP_SOFTMAX, {&x}, {d}, d);
	for (int r = 0; r < 4; r++) {
		double s = 0;
		for (int j = 0; j < 300; j++) {
			ASSERT_TRUE(std::isfinite(y[r * 300 + j]));
			s += y[r * 300 + j];
		}
		EXPECT_NEAR(s, 1.0, 1e-5);
	}
	EXPECT_TRUE(ref::close(y, ref::softmax(x, 300, false), 1e-11, 1e-5));
}

TEST(Softmax, InfinityAndNaNRows)
{
	for (uint32_t len : {5u, 8u, 99u, 100u}) { // per-thread and per-workgroup rows, scalar and vec4
		std::vector<float> x(5 * len);
		for (uint32_t j = 0; j < len; j++) {
			x[0 * len + j] = -kInf;                          // all -inf: NaN like JAX
			x[1 * len + j] = j == 1 ? -kInf : float(j) * 0.1f; // one -inf: 0 there
			x[2 * len + j] = j == 2 ? kNaNf : 1.0f;          // NaN: NaN row
			x[3 * len + j] = j == 3 ? kInf : 1.0f;           // +inf: NaN row (inf - inf)
			x[4 * len + j] = float(j);
		}
		const Dims d{5, len};
		for (bool log : {false, true}) {
			const auto y = ref::run_op(log ? FLAXDRM_OP_LOG_SOFTMAX : FLAXDRM_OP_SOFTMAX, {&x}, {d}, d);
			const auto want = ref::softmax(x, len, log);
			EXPECT_TRUE(std::isnan(want[0]));
			EXPECT_TRUE(ref::close(y, want, 1e-11, 1e-5)) << "len " << len << " log " << log;
			EXPECT_EQ(y[len + 1], log ? -kInf : 0.0f);
		}
	}
}

TEST(Softmax, RefusesRankZero)
{
	ref::Program p;
	const uint32_t x = p.input({}), y = p.output({});
	p.op(FLAXDRM_OP_SOFTMAX, {x}, {y});
	std::vector<float> xv(1), yv(1);
	ref::Bindings b(p);
	b.host(x, xv);
	b.host(y, yv);
	EXPECT_EQ(ref::run_status(p, b), -EINVAL);
}

// ------------------------------------------------------------ dropout

std::vector<float> run_dropout(std::vector<float>& x, float rate, uint32_t s0, uint32_t s1, bool fallback = false)
{
	const Dims d{uint32_t(x.size())};
	return ref::run_op(FLAXDRM_OP_DROPOUT, {&x}, {d}, d, {ref::f32_bits(rate), s0, s1}, fallback);
}

TEST(Dropout, RateZeroIsIdentity)
{
	std::vector<float> x = activation_inputs(10007, 2);
	const auto y = run_dropout(x, 0.0f, 123, 456);
	ASSERT_EQ(y.size(), x.size());
	EXPECT_EQ(std::memcmp(y.data(), x.data(), x.size() * 4), 0);
}

TEST(Dropout, KeptFractionScaleAndMask)
{
	const std::size_t n = 1 << 20;
	std::vector<float> x = ref::random_vector(n, 9, 0.5f, 2.0f); // never zero
	for (float rate : {0.1f, 0.5f, 0.9f, 0.013f}) {
		const uint32_t s0 = 0xdeadbeef, s1 = 42;
		const auto y = run_dropout(x, rate, s0, s1);
		const float keep = float(1.0 - double(rate));
		std::size_t kept = 0, mask_mismatch = 0, value_mismatch = 0;
		for (std::size_t i = 0; i < n; i++) {
			const bool k = y[i] != 0.0f;
			kept += k;
			mask_mismatch += k != ref::dropout_keep(rate, s0, s1, uint32_t(i));
			if (k && y[i] != x[i] / keep) // exactly x / (1 - rate) in f32
				value_mismatch++;
		}
		const double mean = double(n) * (1.0 - rate);
		const double sigma = std::sqrt(double(n) * rate * (1.0 - rate));
		EXPECT_LE(std::fabs(double(kept) - mean), 5 * sigma) << "rate " << rate << " kept " << kept;
		EXPECT_EQ(mask_mismatch, 0u) << "rate " << rate;
		EXPECT_EQ(value_mismatch, 0u) << "rate " << rate;
	}
}

TEST(Dropout, DeterministicPerSeedDifferentAcrossSeeds)
{
	std::vector<float> x = ref::random_vector(100000, 4, 0.5f, 2.0f);
	const auto a = run_dropout(x, 0.5f, 1, 0);
	const auto b = run_dropout(x, 0.5f, 1, 0);
	const auto fb = run_dropout(x, 0.5f, 1, 0, true);
	EXPECT_EQ(a, b);
	EXPECT_EQ(a, fb);
	for (auto [s0, s1] : {std::pair<uint32_t, uint32_t>{2, 0}, {1, 1}, {0, 1}, {0xffffffffu, 0xffffffffu}}) {
		const auto c = run_dropout(x, 0.5f, s0, s1);
		std::size_t diff = 0;
		for (std::size_t i = 0; i < x.size(); i++)
			diff += (a[i] == 0.0f) != (c[i] == 0.0f);
		// independent masks differ in half the places
		EXPECT_NEAR(double(diff) / double(x.size()), 0.5, 0.01) << s0 << " " << s1;
	}
	// Neighbouring elements are not correlated: runs of kept elements
	// have the geometric distribution's mean length 1 / rate.
	std::size_t runs = 0, kept = 0;
	for (std::size_t i = 0; i < x.size(); i++) {
		kept += a[i] != 0.0f;
		runs += a[i] != 0.0f && (i == 0 || a[i - 1] == 0.0f);
	}
	EXPECT_NEAR(double(kept) / double(runs), 2.0, 0.05);
}

TEST(Dropout, RefusesBadRate)
{
	for (float rate : {1.0f, -0.1f, 1.5f, kNaNf}) {
		ref::Program p;
		const uint32_t x = p.input({8}), y = p.output({8});
		p.op(FLAXDRM_OP_DROPOUT, {x}, {y}, {ref::f32_bits(rate), 1, 2});
		std::vector<float> xv(8), yv(8);
		ref::Bindings b(p);
		b.host(x, xv);
		b.host(y, yv);
		EXPECT_EQ(ref::run_status(p, b), -EINVAL) << rate;
	}
}

} // namespace

// Timings on the default device (not run by default):
//   ops_elementwise_test --gtest_also_run_disabled_tests --gtest_filter='*Timing*'
namespace {

double op_ms(const ref::Program& p, ref::Bindings& b, bool fallback)
{
	double best = 1e30;
	for (int i = 0; i < 4; i++) {
		const auto st = ref::run(p, b, fallback);
		if (!st.ops.empty())
			best = std::min(best, double(st.ops.back().end_ns - st.ops.back().start_ns) / 1e6);
		else
			best = std::min(best, double(st.total_ns) / 1e6);
	}
	return best;
}

class ElementwiseTiming : public ::testing::TestWithParam<bool> {};

// Param: the fallback device (GPU-style kernels) instead of the default.
TEST_P(ElementwiseTiming, DISABLED_Report)
{
	const bool fallback = GetParam();
	const uint32_t n = 1u << 24;
	std::vector<float> x = ref::random_vector(n, 1), z = ref::random_vector(n, 2), y(n);
	auto unary = [&](uint32_t opcode, Dims d, std::vector<uint32_t> attrs, const char* name) {
		ref::Program p;
		const uint32_t xi = p.input(d), yi = p.output(d);
		p.op(opcode, {xi}, {yi}, attrs);
		ref::Bindings b(p);
		b.host(xi, x);
		b.host(yi, y);
		const double ms = op_ms(p, b, fallback);
		std::printf("%-28s %8.3f ms  %6.2f GB/s\n", name, ms, 8.0 * double(ref::numel(d)) / ms / 1e6);
	};
	unary(FLAXDRM_OP_RELU, {n}, {}, "relu 16M");
	unary(FLAXDRM_OP_GELU, {n}, {0}, "gelu exact 16M");
	unary(FLAXDRM_OP_GELU, {n}, {1}, "gelu tanh 16M");
	unary(FLAXDRM_OP_DROPOUT, {n}, {ref::f32_bits(0.1f), 1, 2}, "dropout 16M");
	unary(FLAXDRM_OP_SOFTMAX, {n / 1024, 1024}, {}, "softmax 16k x 1024");
	unary(FLAXDRM_OP_SOFTMAX, {n / 16, 16}, {}, "softmax 1M x 16");
	unary(FLAXDRM_OP_SOFTMAX, {16, n / 16}, {}, "softmax 16 x 1M");
	auto binary = [&](Dims ad, Dims bd, const char* name) {
		ref::Program p;
		Dims yd;
		ref::broadcast_shape(ad, bd, &yd);
		const uint32_t a = p.input(ad), bi = p.input(bd), yi = p.output(yd);
		p.op(FLAXDRM_OP_ADD, {a, bi}, {yi});
		ref::Bindings b(p);
		b.host(a, x);
		b.host(bi, z);
		b.host(yi, y);
		const double ms = op_ms(p, b, fallback);
		std::printf("%-28s %8.3f ms  %6.2f GB/s\n", name, ms, 12.0 * double(ref::numel(yd)) / ms / 1e6);
	};
	binary({n}, {n}, "add same 16M");
	binary({n / 1024, 1024}, {1024}, "add bias 16k x 1024");
	binary({n / 1024, 1024}, {n / 1024, 1}, "add column 16k x 1024");
	binary({n}, {}, "add scalar 16M");
}

INSTANTIATE_TEST_SUITE_P(Device, ElementwiseTiming, ::testing::Values(false, true));

} // namespace
