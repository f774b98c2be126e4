// f16 on the runtime: astype between f32 and f16, f16 Dense/DenseGeneral,
// matmul and Embed.attend (f16 tensors in and out, f32 accumulation), the
// f16 activations and binary ops with broadcasting (f32 arithmetic), the
// rule that an op's tensors are all f16 or all f32, and the refusal of f16
// programs on a device without f16; on the default and the fallback device.
//
// The CPU side converts with GCC's _Float16 (IEEE binary16, round to
// nearest even; checked against numpy goldens below). Tolerances:
// - astype: bit-exact, except that f16 subnormals may come back as zero of
//   the same sign (Vulkan lets a device flush f16 denormals; lavapipe
//   reports shaderDenormPreserveFloat16 = false) and NaN only has to stay NaN.
// - f16 GEMMs: the reference is computed in double from the same f16
//   inputs and rounded to f16; NMSE <= 1e-6 (one f16 ulp is 2^-11 relative,
//   so rounding alone gives an NMSE near 1e-7; f32 accumulation adds far less).
// - f16 activations and binary ops: against the double-precision reference
//   of the same f16 inputs rounded to f16, NMSE <= 1e-6 over the finite
//   values; NaN and infinities exactly where the reference has them.
#include <cmath>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "f16_test_util.hpp"
#include "flaxdrm_rules.h"
#include "ops_conv_util.hpp"
#include "reference_elementwise.hpp"

namespace {

using namespace flaxdrm::optest;
namespace ref = flaxdrm::ref;

constexpr double kGemmTol = 1e-6;

// ---------------------------------------------------------- the reference

TEST(F16Reference, ConversionsMatchNumpy)
{
	// numpy: np.float32(v).astype(np.float16).view(np.uint16)
	const struct {
		float f;
		uint16_t bits;
	} goldens[] = {
		{1.0f, 0x3c00},
		{1.00048828125f, 0x3c00},  // 1 + 2^-11: a tie, to even
		{1.00146484375f, 0x3c02},  // 1 + 3 * 2^-11: a tie, to even (up)
		{65504.0f, 0x7bff},        // largest finite
		{65519.98828125f, 0x7bff}, // just below the overflow threshold
		{65520.0f, 0x7c00},        // rounds to infinity
		{-70000.0f, 0xfc00},
		{5.960464477539063e-08f, 0x0001}, // 2^-24, the smallest subnormal
		{2.9802322387695312e-08f, 0x0000}, // 2^-25: a tie, to even (zero)
		{4.470348358154297e-08f, 0x0001},
		{6.0999998822808266e-05f, 0x03ff},
		{0.1f, 0x2e66},
		{-0.0f, 0x8000},
		{1e-8f, 0x0000},
		{3.14159265f, 0x4248},
	};
	for (const auto& g : goldens)
		EXPECT_EQ(f16_bits(g.f), g.bits) << g.f;
	EXPECT_EQ(f16_value(0x2e66), 0.0999755859375f);
	EXPECT_EQ(f16_value(0x0001), 5.960464477539063e-08f);
	EXPECT_TRUE(std::isnan(f16_value(0x7e00)));
}

// ----------------------------------------------------------------- astype

class Astype : public ::testing::TestWithParam<bool> {};

// Values that probe every part of f32 -> f16: ties, the overflow
// threshold, subnormal results, specials, and random values over the
// whole exponent range of f16 and beyond.
std::vector<float> astype_inputs()
{
	std::vector<float> v = {0.0f, -0.0f, 1.0f, -1.0f, 1.00048828125f, 1.00146484375f, 65504.0f,
				65519.98828125f, 65520.0f, -70000.0f, 1e30f, -1e30f, INFINITY, -INFINITY, NAN,
				-NAN, 2.9802322387695312e-08f, 4.470348358154297e-08f, 6.1e-5f, 1e-8f, 0.1f};
	std::mt19937 gen(7);
	std::uniform_real_distribution<float> mant(1.0f, 2.0f);
	std::uniform_int_distribution<int> expo(-28, 17);
	for (int i = 0; i < 5000; i++)
		v.push_back((i % 2 ? -1.0f : 1.0f) * std::ldexp(mant(gen), expo(gen)));
	// exact ties between neighbouring f16 values: 1 + (2j + 1) * 2^-11
	for (int j = 0; j < 64; j++)
		v.push_back(1.0f + float(2 * j + 1) * 0x1p-11f);
	return v;
}

TEST_P(Astype, F32ToF16RoundsToNearestEven)
{
	REQUIRE_F16();
	const std::vector<float> x = astype_inputs();
	const uint32_t n = uint32_t(x.size());
	Program p;
	const uint32_t tx = p.input({n});
	const uint32_t ty = p.tensor(FLAXDRM_TENSOR_OUTPUT, {n}, FLAXDRM_DTYPE_F16);
	p.op(FLAXDRM_OP_ASTYPE, 0, {tx}, {ty});
	std::vector<float> xin = x;
	std::vector<uint16_t> y(n, 0xdead);
	Bindings b(p);
	b.host(tx, xin);
	b.host(ty, y);
	executor(GetParam()).run(p.tensors, p.ops, b.mem);
	std::size_t bad = 0;
	for (uint32_t i = 0; i < n; i++) {
		const uint16_t want = f16_bits(x[i]);
		const bool ok = f16_is_nan(want) ? f16_is_nan(y[i])
			      : f16_is_subnormal(want) ? (y[i] == want || y[i] == (want & 0x8000))
							 : y[i] == want;
		if (!ok && bad++ < 5)
			ADD_FAILURE() << "x = " << x[i] << ": got 0x" << std::hex << y[i] << " want 0x" << want;
	}
	EXPECT_EQ(bad, 0u);
}

TEST_P(Astype, F16ToF32IsExactForEveryF16)
{
	REQUIRE_F16();
	const uint32_t n = 65536;
	std::vector<uint16_t> x(n);
	for (uint32_t i = 0; i < n; i++)
		x[i] = uint16_t(i);
	Program p;
	const uint32_t tx = p.input({256, 256}, FLAXDRM_DTYPE_F16);
	const uint32_t ty = p.output({256, 256});
	p.op(FLAXDRM_OP_ASTYPE, 0, {tx}, {ty});
	std::vector<float> y(n, -1.0f);
	Bindings b(p);
	b.host(tx, x);
	b.host(ty, y);
	executor(GetParam()).run(p.tensors, p.ops, b.mem);
	std::size_t bad = 0;
	for (uint32_t i = 0; i < n; i++) {
		const float want = f16_value(x[i]);
		const bool ok = std::isnan(want) ? std::isnan(y[i])
			      : f16_is_subnormal(x[i])
				      ? (f32_bits(y[i]) == f32_bits(want) || f32_bits(y[i]) == (f32_bits(want) & 0x80000000u))
				      : f32_bits(y[i]) == f32_bits(want);
		if (!ok && bad++ < 5)
			ADD_FAILURE() << "f16 0x" << std::hex << x[i] << ": got " << y[i] << " want " << want;
	}
	EXPECT_EQ(bad, 0u);
}

// f32 -> f16 -> f16 -> f32 through temps: each step as the CPU does it.
TEST_P(Astype, ChainThroughTemps)
{
	REQUIRE_F16();
	for (const std::vector<uint32_t>& dims :
	     std::vector<std::vector<uint32_t>>{{1}, {7}, {3, 5, 7}, {65539}, {2, 300, 301}}) {
		uint64_t n = 1;
		for (uint32_t d : dims)
			n *= d;
		Program p;
		const uint32_t tx = p.input(dims);
		const uint32_t th = p.tensor(FLAXDRM_TENSOR_TEMP, dims, FLAXDRM_DTYPE_F16);
		const uint32_t th2 = p.tensor(FLAXDRM_TENSOR_TEMP, dims, FLAXDRM_DTYPE_F16);
		const uint32_t tf = p.temp(dims);
		const uint32_t ty = p.output(dims);
		p.op(FLAXDRM_OP_ASTYPE, 0, {tx}, {th});
		p.op(FLAXDRM_OP_ASTYPE, 0, {th}, {th2});  // f16 -> f16: a copy
		p.op(FLAXDRM_OP_ASTYPE, 0, {th2}, {tf});
		p.op(FLAXDRM_OP_ASTYPE, 0, {tf}, {ty});   // f32 -> f32: a copy
		std::vector<float> x = random_vector(n, 3, -100.0f, 100.0f), y(n, -1.0f);
		Bindings b(p);
		b.host(tx, x);
		b.host(ty, y);
		executor(GetParam()).run(p.tensors, p.ops, b.mem);
		const std::vector<float> want = round_f16(x);
		std::size_t bad = 0;
		for (uint64_t i = 0; i < n; i++)
			bad += f32_bits(y[i]) != f32_bits(want[i]);
		EXPECT_EQ(bad, 0u) << dims.size() << "-d, " << n << " elements";
	}
}

INSTANTIATE_TEST_SUITE_P(Devices, Astype, ::testing::Values(false, true),
			 [](const auto& info) { return info.param ? "Fallback" : "Default"; });

// ------------------------------------------------------------------ GEMMs

class DenseF16 : public ::testing::TestWithParam<DenseCase> {};

TEST_P(DenseF16, MatchesReferenceOnTheSameF16Inputs)
{
	REQUIRE_F16();
	const DenseCase& c = GetParam();
	const uint32_t n = c.n ? c.n : 1;
	const std::size_t lead = c.x_dims.size() - n;
	std::vector<uint32_t> w_dims(c.x_dims.begin() + long(lead), c.x_dims.end());
	w_dims.insert(w_dims.end(), c.f_dims.begin(), c.f_dims.end());
	std::vector<uint32_t> y_dims(c.x_dims.begin(), c.x_dims.begin() + long(lead));
	y_dims.insert(y_dims.end(), c.f_dims.begin(), c.f_dims.end());
	const uint64_t M = prod(c.x_dims, 0, lead), K = prod(c.x_dims, lead), N = prod(c.f_dims);

	Program p;
	const uint32_t tx = p.input(c.x_dims, FLAXDRM_DTYPE_F16);
	const uint32_t tw = p.tensor(FLAXDRM_TENSOR_VARIABLE, w_dims, FLAXDRM_DTYPE_F16, 1, "params", "kernel");
	std::vector<uint32_t> in{tx, tw};
	if (c.bias)
		in.push_back(p.tensor(FLAXDRM_TENSOR_VARIABLE, c.f_dims, FLAXDRM_DTYPE_F16, 1, "params", "bias"));
	const uint32_t ty = p.tensor(FLAXDRM_TENSOR_OUTPUT, y_dims, FLAXDRM_DTYPE_F16);
	p.op(FLAXDRM_OP_DENSE, 1, in, {ty}, {c.n});

	const std::vector<float> x = round_f16(random_vector(M * K, 21)), w = round_f16(random_vector(K * N, 22)),
				 bias = round_f16(random_vector(N, 23));
	std::vector<uint16_t> xh = to_f16(x), wh = to_f16(w), bh = to_f16(bias), yh(M * N, 0x7e00);
	Bindings b(p);
	b.host(tx, xh);
	b.host(tw, wh);
	if (c.bias)
		b.host(in[2], bh);
	b.host(ty, yh);
	executor(c.fallback).run(p.tensors, p.ops, b.mem);
	const std::vector<float> want = round_f16(ref::dense(x, w, c.bias ? &bias : nullptr, M, K, N));
	EXPECT_MATCHES(from_f16(yh), want, kGemmTol);
}

std::vector<DenseCase> dense_cases()
{
	std::vector<DenseCase> v;
	for (bool fallback : {false, true}) {
		v.push_back({{1, 1}, 0, {1}, true, fallback});
		v.push_back({{1, 64}, 0, {10}, true, fallback});           // M = 1, vec4
		v.push_back({{3, 5}, 0, {7}, true, fallback});             // odd: scalar paths
		v.push_back({{3, 5}, 0, {7}, false, fallback});
		v.push_back({{33, 100}, 0, {36}, true, fallback});          // odd M, vec4 K and N
		v.push_back({{130, 67}, 0, {33}, false, fallback});         // past a row tile, odd
		v.push_back({{64, 784}, 0, {256}, true, fallback});         // an MLP layer
		v.push_back({{2, 3, 4, 6}, 2, {5, 2}, true, fallback});     // DenseGeneral
		v.push_back({{2, 9, 16}, 0, {12}, true, fallback});         // batched leading dims
	}
	v.push_back({{256, 256}, 0, {256}, true, false});
	return v;
}

std::string dense_name(const ::testing::TestParamInfo<DenseCase>& info)
{
	const DenseCase& c = info.param;
	std::string s;
	for (uint32_t d : c.x_dims)
		s += std::to_string(d) + "x";
	s += "n" + std::to_string(c.n) + "_f";
	for (uint32_t d : c.f_dims)
		s += std::to_string(d) + "x";
	s.pop_back();
	return s + (c.bias ? "_bias" : "") + (c.fallback ? "_Fallback" : "_Default");
}

INSTANTIATE_TEST_SUITE_P(Shapes, DenseF16, ::testing::ValuesIn(dense_cases()), dense_name);

struct MatmulCase {
	std::vector<uint32_t> a_dims, b_dims;
	uint32_t flags; // bit 0 transposes a, bit 1 b
};

class MatmulF16 : public ::testing::TestWithParam<bool> {};

TEST_P(MatmulF16, MatchesReferenceOnTheSameF16Inputs)
{
	REQUIRE_F16();
	const MatmulCase cases[] = {
		{{2, 3, 5, 8}, {8, 6}, 0},        // plain GEMM over a's rows
		{{4, 12}, {12, 20}, 0},
		{{5, 3}, {5, 7}, 1},              // a transposed
		{{3, 5}, {7, 5}, 2},              // b transposed
		{{2, 6, 4}, {2, 9, 6}, 3},        // both, batched
		{{2, 1, 4, 5}, {3, 5, 6}, 0},     // broadcast batch dims
		{{70, 33}, {2, 33, 65}, 0},       // batched b, odd sizes
	};
	for (const MatmulCase& c : cases) {
		std::vector<uint32_t> y_dims;
		const std::vector<float> a = round_f16(random_vector(prod(c.a_dims), 31));
		const std::vector<float> bm = round_f16(random_vector(prod(c.b_dims), 32));
		const std::vector<float> want =
			round_f16(ref::matmul(a, c.a_dims, bm, c.b_dims, c.flags & 1, c.flags & 2, &y_dims));
		Program p;
		const uint32_t ta = p.input(c.a_dims, FLAXDRM_DTYPE_F16);
		const uint32_t tb = p.input(c.b_dims, FLAXDRM_DTYPE_F16);
		const uint32_t ty = p.tensor(FLAXDRM_TENSOR_OUTPUT, y_dims, FLAXDRM_DTYPE_F16);
		p.op(FLAXDRM_OP_MATMUL, 0, {ta, tb}, {ty}, {c.flags});
		std::vector<uint16_t> ah = to_f16(a), bh = to_f16(bm), yh(want.size(), 0x7e00);
		Bindings b(p);
		b.host(ta, ah);
		b.host(tb, bh);
		b.host(ty, yh);
		executor(GetParam()).run(p.tensors, p.ops, b.mem);
		SCOPED_TRACE(std::to_string(c.a_dims.size()) + "-d a, flags " + std::to_string(c.flags));
		EXPECT_MATCHES(from_f16(yh), want, kGemmTol);
	}
}

TEST_P(MatmulF16, AttendMatchesReference)
{
	REQUIRE_F16();
	const uint32_t F = 24, rows = 37;
	const std::vector<uint32_t> q_dims{2, 3, F};
	const std::vector<float> q = round_f16(random_vector(6 * F, 41)), table = round_f16(random_vector(rows * F, 42));
	Program p;
	const uint32_t tq = p.input(q_dims, FLAXDRM_DTYPE_F16);
	const uint32_t tt = p.tensor(FLAXDRM_TENSOR_VARIABLE, {rows, F}, FLAXDRM_DTYPE_F16, 1, "params", "embedding");
	const uint32_t ty = p.tensor(FLAXDRM_TENSOR_OUTPUT, {2, 3, rows}, FLAXDRM_DTYPE_F16);
	p.op(FLAXDRM_OP_ATTEND, 1, {tq, tt}, {ty});
	std::vector<uint16_t> qh = to_f16(q), th = to_f16(table), yh(6 * rows, 0x7e00);
	Bindings b(p);
	b.host(tq, qh);
	b.host(tt, th);
	b.host(ty, yh);
	executor(GetParam()).run(p.tensors, p.ops, b.mem);
	EXPECT_MATCHES(from_f16(yh), round_f16(ref::matmul(q, {6, F}, table, {rows, F}, false, true)), kGemmTol);
}

// An f32 program around an f16 Dense: astype in, Dense, astype out.
TEST_P(MatmulF16, DenseBetweenAstypes)
{
	REQUIRE_F16();
	const uint32_t M = 9, K = 40, N = 12;
	Program p;
	const uint32_t tx = p.input({M, K});
	const uint32_t txh = p.tensor(FLAXDRM_TENSOR_TEMP, {M, K}, FLAXDRM_DTYPE_F16);
	const uint32_t tw = p.tensor(FLAXDRM_TENSOR_VARIABLE, {K, N}, FLAXDRM_DTYPE_F16, 1, "params", "kernel");
	const uint32_t tyh = p.tensor(FLAXDRM_TENSOR_TEMP, {M, N}, FLAXDRM_DTYPE_F16);
	const uint32_t ty = p.output({M, N});
	p.op(FLAXDRM_OP_ASTYPE, 0, {tx}, {txh});
	p.op(FLAXDRM_OP_DENSE, 1, {txh, tw}, {tyh});
	p.op(FLAXDRM_OP_ASTYPE, 0, {tyh}, {ty});
	std::vector<float> x = random_vector(M * K, 51), y(M * N, -1.0f);
	const std::vector<float> w = round_f16(random_vector(K * N, 52));
	std::vector<uint16_t> wh = to_f16(w);
	Bindings b(p);
	b.host(tx, x);
	b.host(tw, wh);
	b.host(ty, y);
	executor(GetParam()).run(p.tensors, p.ops, b.mem);
	EXPECT_MATCHES(y, round_f16(ref::dense(round_f16(x), w, nullptr, M, K, N)), kGemmTol);
}

INSTANTIATE_TEST_SUITE_P(Devices, MatmulF16, ::testing::Values(false, true),
			 [](const auto& info) { return info.param ? "Fallback" : "Default"; });

// ----------------------------------------------------- f16 elementwise

constexpr double kElementwiseTol = 1e-6;

class ElementwiseF16 : public ::testing::TestWithParam<bool> {};

TEST_P(ElementwiseF16, ActivationsMatchReference)
{
	REQUIRE_F16();
	const struct {
		uint32_t opcode;
		std::vector<uint32_t> attrs;
		ref::Unary op;
		double alpha;
		const char* name;
	} cases[] = {
		{FLAXDRM_OP_RELU, {}, ref::Unary::Relu, 0, "relu"},
		{FLAXDRM_OP_GELU, {1}, ref::Unary::GeluTanh, 0, "gelu tanh"},
		{FLAXDRM_OP_GELU, {0}, ref::Unary::GeluErf, 0, "gelu exact"},
		{FLAXDRM_OP_SILU, {}, ref::Unary::Silu, 0, "silu"},
		{FLAXDRM_OP_SIGMOID, {}, ref::Unary::Sigmoid, 0, "sigmoid"},
		{FLAXDRM_OP_TANH, {}, ref::Unary::Tanh, 0, "tanh"},
		{FLAXDRM_OP_ELU, {f32_bits(0.7f)}, ref::Unary::Elu, double(0.7f), "elu"},
		{FLAXDRM_OP_LEAKY_RELU, {f32_bits(0.1f)}, ref::Unary::LeakyRelu, double(0.1f), "leaky_relu"},
		{FLAXDRM_OP_SOFTPLUS, {}, ref::Unary::Softplus, 0, "softplus"},
	};
	const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 65504.0f, -65504.0f, 1e-3f};
	for (const auto& c : cases) {
		// 1031: vec4 or texel modules and a scalar tail; 3: the scalar module
		for (uint32_t n : {1031u, 3u}) {
			std::vector<float> x = round_f16(random_vector(n, 71, -8.0f, 8.0f));
			for (std::size_t i = 0; i < std::size(specials) && n > 8; i++)
				x[i * 97 % n] = specials[i];
			Program p;
			const uint32_t tx = p.input({n}, FLAXDRM_DTYPE_F16);
			const uint32_t ty = p.tensor(FLAXDRM_TENSOR_OUTPUT, {n}, FLAXDRM_DTYPE_F16);
			p.op(c.opcode, 0, {tx}, {ty}, c.attrs);
			std::vector<uint16_t> xh = to_f16(x), yh(n, 0x7e00);
			Bindings b(p);
			b.host(tx, xh);
			b.host(ty, yh);
			executor(GetParam()).run(p.tensors, p.ops, b.mem);
			SCOPED_TRACE(std::string(c.name) + ", " + std::to_string(n) + " elements");
			EXPECT_MATCHES(from_f16(yh), round_f16(ref::unary(c.op, x, c.alpha)), kElementwiseTol);
		}
	}
}

TEST_P(ElementwiseF16, BinaryOpsBroadcastLikeNumpy)
{
	REQUIRE_F16();
	const uint32_t opcodes[] = {FLAXDRM_OP_ADD, FLAXDRM_OP_SUB, FLAXDRM_OP_MUL,
				    FLAXDRM_OP_DIV, FLAXDRM_OP_MAXIMUM, FLAXDRM_OP_MINIMUM};
	const ref::Binary ops[] = {ref::Binary::Add, ref::Binary::Sub, ref::Binary::Mul,
				   ref::Binary::Div, ref::Binary::Max, ref::Binary::Min};
	const std::vector<std::pair<ref::Dims, ref::Dims>> shapes = {
		{{37, 20}, {37, 20}}, // same shapes (vector modules)
		{{16, 8}, {8}},       // bias rows
		{{6, 4}, {6, 1}},     // a column against rows
		{{1}, {5, 8}},        // a scalar
		{{5, 7}, {7}},        // odd: the scalar module
		{{3, 1, 5}, {1, 4, 1}}, // both broadcast: the general walk
		{{7}, {7}},
	};
	for (std::size_t o = 0; o < std::size(opcodes); o++) {
		for (const auto& [ad, bd] : shapes) {
			ref::Dims yd;
			ASSERT_TRUE(ref::broadcast_shape(ad, bd, &yd));
			std::vector<float> a = round_f16(random_vector(ref::numel(ad), 81, -4.0f, 4.0f));
			// b away from 0, so that quotients stay well inside f16's range
			std::vector<float> bv = random_vector(ref::numel(bd), 82, 0.5f, 4.0f);
			for (std::size_t i = 0; i < bv.size(); i += 2)
				bv[i] = -bv[i];
			bv = round_f16(bv);
			if (a.size() > 2)
				a[1] = NAN;
			if (bv.size() > 2)
				bv.back() = INFINITY;
			Program p;
			const uint32_t ta = p.input(ad, FLAXDRM_DTYPE_F16);
			const uint32_t tb = p.input(bd, FLAXDRM_DTYPE_F16);
			const uint32_t ty = p.tensor(FLAXDRM_TENSOR_OUTPUT, yd, FLAXDRM_DTYPE_F16);
			p.op(opcodes[o], 0, {ta, tb}, {ty});
			std::vector<uint16_t> ah = to_f16(a), bh = to_f16(bv), yh(ref::numel(yd), 0x7e00);
			Bindings b(p);
			b.host(ta, ah);
			b.host(tb, bh);
			b.host(ty, yh);
			executor(GetParam()).run(p.tensors, p.ops, b.mem);
			SCOPED_TRACE(std::string(flaxdrm_op_name(opcodes[o])) + " " + ref::dims_name(ad) + " with " +
				     ref::dims_name(bd));
			EXPECT_MATCHES(from_f16(yh), round_f16(ref::binary(ops[o], a, ad, bv, bd)), kElementwiseTol);
		}
	}
}

// An f16 MLP layer as Flax's Dense(dtype=float16) then relu and a residual add.
TEST_P(ElementwiseF16, DenseReluAddChain)
{
	REQUIRE_F16();
	const uint32_t M = 8, K = 32, N = 32;
	Program p;
	const uint32_t tx = p.input({M, K}, FLAXDRM_DTYPE_F16);
	const uint32_t tw = p.tensor(FLAXDRM_TENSOR_VARIABLE, {K, N}, FLAXDRM_DTYPE_F16, 1, "params", "kernel");
	const uint32_t th = p.tensor(FLAXDRM_TENSOR_TEMP, {M, N}, FLAXDRM_DTYPE_F16);
	const uint32_t tr = p.tensor(FLAXDRM_TENSOR_TEMP, {M, N}, FLAXDRM_DTYPE_F16);
	const uint32_t ty = p.tensor(FLAXDRM_TENSOR_OUTPUT, {M, N}, FLAXDRM_DTYPE_F16);
	p.op(FLAXDRM_OP_DENSE, 1, {tx, tw}, {th});
	p.op(FLAXDRM_OP_RELU, 0, {th}, {tr});
	p.op(FLAXDRM_OP_ADD, 0, {tr, tx}, {ty});
	const std::vector<float> x = round_f16(random_vector(M * K, 91)), w = round_f16(random_vector(K * N, 92));
	std::vector<uint16_t> xh = to_f16(x), wh = to_f16(w), yh(M * N, 0x7e00);
	Bindings b(p);
	b.host(tx, xh);
	b.host(tw, wh);
	b.host(ty, yh);
	executor(GetParam()).run(p.tensors, p.ops, b.mem);
	const std::vector<float> h = round_f16(ref::relu(round_f16(ref::dense(x, w, nullptr, M, K, N))));
	EXPECT_MATCHES(from_f16(yh), round_f16(ref::binary(ref::Binary::Add, h, {M, N}, x, {M, K})), kGemmTol);
}

// f16 dropout keeps the f32 op's mask for the same seed and rounds its
// scaled values once: the f32 program on the same (f16) inputs, rounded.
TEST_P(ElementwiseF16, DropoutKeepsTheF32MaskAndRoundsOnce)
{
	REQUIRE_F16();
	const uint32_t n = 1029;
	const std::vector<float> x = round_f16(random_vector(n, 93, 0.5f, 4.0f));
	const auto run = [&](uint32_t dtype, float rate) {
		Program p;
		const uint32_t tx = p.input({n}, dtype);
		const uint32_t ty = p.tensor(FLAXDRM_TENSOR_OUTPUT, {n}, dtype);
		p.op(FLAXDRM_OP_DROPOUT, 0, {tx}, {ty}, {f32_bits(rate), 0x1234u, 0x5678u});
		Bindings b(p);
		std::vector<float> y32(n, NAN), x32 = x;
		std::vector<uint16_t> xh = to_f16(x), yh(n, 0x7e00);
		if (dtype == FLAXDRM_DTYPE_F16) {
			b.host(tx, xh);
			b.host(ty, yh);
		} else {
			b.host(tx, x32);
			b.host(ty, y32);
		}
		executor(GetParam()).run(p.tensors, p.ops, b.mem);
		return dtype == FLAXDRM_DTYPE_F16 ? from_f16(yh) : y32;
	};
	for (float rate : {0.0f, 0.3f, 0.9f}) {
		SCOPED_TRACE("rate " + std::to_string(rate));
		const std::vector<float> want = round_f16(run(FLAXDRM_DTYPE_F32, rate));
		const std::vector<float> got = run(FLAXDRM_DTYPE_F16, rate);
		std::size_t dropped = 0;
		for (uint32_t i = 0; i < n; i++) {
			ASSERT_EQ(f16_bits(got[i]), f16_bits(want[i])) << "element " << i;
			dropped += got[i] == 0.0f;
		}
		// the mask is not all-keep or all-drop (x is never 0)
		if (rate > 0.0f) {
			EXPECT_GT(dropped, 0u);
			EXPECT_LT(dropped, n);
		} else {
			EXPECT_EQ(dropped, 0u);
		}
	}
}

INSTANTIATE_TEST_SUITE_P(Devices, ElementwiseF16, ::testing::Values(false, true),
			 [](const auto& info) { return info.param ? "Fallback" : "Default"; });

// ------------------------------------------------------- refused programs

// A Dense x[4, 8] @ kernel[8, 3] + bias[3] -> y[4, 3] with the given dtypes.
Program dense_program(uint32_t x, uint32_t w, uint32_t bias, uint32_t y)
{
	Program p;
	const uint32_t tx = p.input({4, 8}, x);
	const uint32_t tw = p.tensor(FLAXDRM_TENSOR_VARIABLE, {8, 3}, w, 1, "params", "kernel");
	const uint32_t tb = p.tensor(FLAXDRM_TENSOR_VARIABLE, {3}, bias, 1, "params", "bias");
	const uint32_t ty = p.tensor(FLAXDRM_TENSOR_OUTPUT, {4, 3}, y);
	p.op(FLAXDRM_OP_DENSE, 1, {tx, tw, tb}, {ty});
	return p;
}

TEST(F16Rules, MixedDtypesAreRefusedNamingTheOpAndTensor)
{
	constexpr uint32_t F16 = FLAXDRM_DTYPE_F16, F32 = FLAXDRM_DTYPE_F32;
	const struct {
		uint32_t x, w, bias, y;
		const char* tensor;
	} cases[] = {
		{F16, F32, F16, F16, "tensor 1 (variable params/kernel f32[8, 3])"},
		{F32, F16, F32, F32, "tensor 1 (variable params/kernel f16[8, 3])"},
		{F16, F16, F32, F16, "tensor 2 (variable params/bias f32[3])"},
		{F16, F16, F16, F32, "tensor 3 (output f32[4, 3])"},
		{FLAXDRM_DTYPE_BF16, FLAXDRM_DTYPE_BF16, FLAXDRM_DTYPE_BF16, FLAXDRM_DTYPE_BF16,
		 "tensor 0 (input bf16[4, 8])"},
	};
	for (const auto& c : cases) {
		Program p = dense_program(c.x, c.w, c.bias, c.y);
		const std::string e = run_error(executor(false), p);
		EXPECT_NE(e.find("op 0 (Dense)"), std::string::npos) << e;
		EXPECT_NE(e.find(c.tensor), std::string::npos) << e;
	}
	// the all-f16 and all-f32 programs run
	for (uint32_t dt : {F16, F32}) {
		if (dt == F16 && !have_f16())
			continue;
		Program p = dense_program(dt, dt, dt, dt);
		EXPECT_EQ(run_error(executor(false), p), "");
	}

	// matmul and astype
	Program mm;
	const uint32_t a = mm.input({2, 3}, F32), b = mm.input({3, 4}, F16);
	mm.op(FLAXDRM_OP_MATMUL, 0, {a, b}, {mm.tensor(FLAXDRM_TENSOR_OUTPUT, {2, 4}, F32)});
	std::string e = run_error(executor(false), mm);
	EXPECT_NE(e.find("op 0 (matmul), tensor 1 (input f16[3, 4])"), std::string::npos) << e;

	Program as;
	const uint32_t xi = as.input({5}, FLAXDRM_DTYPE_I32);
	as.op(FLAXDRM_OP_ASTYPE, 0, {xi}, {as.tensor(FLAXDRM_TENSOR_OUTPUT, {5}, F16)});
	e = run_error(executor(false), as);
	EXPECT_NE(e.find("op 0 (astype), tensor 0 (input i32[5])"), std::string::npos) << e;

	Program shape;
	const uint32_t xs = shape.input({5}, F32);
	shape.op(FLAXDRM_OP_ASTYPE, 0, {xs}, {shape.tensor(FLAXDRM_TENSOR_OUTPUT, {6}, F16)});
	e = run_error(executor(false), shape);
	EXPECT_NE(e.find("op 0 (astype), tensor 1 (output f16[6])"), std::string::npos) << e;

	Program sm;
	const uint32_t xsm = sm.input({2, 8}, F16);
	sm.op(FLAXDRM_OP_SOFTMAX, 0, {xsm}, {sm.tensor(FLAXDRM_TENSOR_OUTPUT, {2, 8}, F32)});
	e = run_error(executor(false), sm);
	EXPECT_NE(e.find("op 0 (softmax), tensor 1 (output f32[2, 8])"), std::string::npos) << e;

	Program add;
	const uint32_t xa1 = add.input({4}, F16), xa2 = add.input({4}, F32);
	add.op(FLAXDRM_OP_ADD, 0, {xa1, xa2}, {add.tensor(FLAXDRM_TENSOR_OUTPUT, {4}, F16)});
	e = run_error(executor(false), add);
	EXPECT_NE(e.find("op 0 (add), tensor 1 (input f32[4])"), std::string::npos) << e;

	Program relu;
	const uint32_t xr = relu.input({4}, F16);
	relu.op(FLAXDRM_OP_RELU, 0, {xr}, {relu.tensor(FLAXDRM_TENSOR_OUTPUT, {4}, F32)});
	e = run_error(executor(false), relu);
	EXPECT_NE(e.find("op 0 (relu), tensor 1 (output f32[4])"), std::string::npos) << e;

	Program attrs;
	const uint32_t xa = attrs.input({5}, F32);
	attrs.op(FLAXDRM_OP_ASTYPE, 0, {xa}, {attrs.tensor(FLAXDRM_TENSOR_OUTPUT, {5}, F16)}, {1});
	e = run_error(executor(false), attrs);
	EXPECT_NE(e.find("op 0 (astype)"), std::string::npos) << e;
}

// ------------------------------------------------------ devices without f16

void expect_f16_refused(rt::Device& dev)
{
	EXPECT_FALSE(dev.info().f16);
	auto ex = rt::Executor::create(dev);
	Program p = dense_program(FLAXDRM_DTYPE_F16, FLAXDRM_DTYPE_F16, FLAXDRM_DTYPE_F16, FLAXDRM_DTYPE_F16);
	std::string e = run_error(*ex, p);
	EXPECT_NE(e.find("op 0 (Dense): tensor 0 is f16, which this device"), std::string::npos) << e;
	EXPECT_NE(e.find("shaderFloat16"), std::string::npos) << e;

	Program as;
	const uint32_t x = as.input({5});
	as.op(FLAXDRM_OP_ASTYPE, 0, {x}, {as.tensor(FLAXDRM_TENSOR_OUTPUT, {5}, FLAXDRM_DTYPE_F16)});
	e = run_error(*ex, as);
	EXPECT_NE(e.find("op 0 (astype): tensor 1 is f16"), std::string::npos) << e;

	Program relu;
	const uint32_t xr = relu.input({8}, FLAXDRM_DTYPE_F16);
	relu.op(FLAXDRM_OP_RELU, 0, {xr}, {relu.tensor(FLAXDRM_TENSOR_OUTPUT, {8}, FLAXDRM_DTYPE_F16)});
	e = run_error(*ex, relu);
	EXPECT_NE(e.find("op 0 (relu): tensor 0 is f16"), std::string::npos) << e;

	// f32 programs still run, and give the right answer
	Program f = dense_program(FLAXDRM_DTYPE_F32, FLAXDRM_DTYPE_F32, FLAXDRM_DTYPE_F32, FLAXDRM_DTYPE_F32);
	std::vector<float> xv = random_vector(32, 61), wv = random_vector(24, 62), bv = random_vector(3, 63), y(12);
	Bindings b(f);
	b.host(0, xv);
	b.host(1, wv);
	b.host(2, bv);
	b.host(3, y);
	ex->run(f.tensors, f.ops, b.mem);
	EXPECT_MATCHES(y, ref::dense(xv, wv, &bv, 4, 8, 3), 1e-9);
}

TEST(F16Device, ReportsF16WhereTheDeviceHasIt)
{
	// lavapipe (the test machines' device) has shaderFloat16 and 16-bit storage
	const rt::DeviceInfo& info = device(false).info();
	if (info.name.find("llvmpipe") != std::string::npos) {
		EXPECT_TRUE(info.f16);
	}
}

TEST(F16Device, OptionTurnsF16OffAndF16ProgramsAreRefused)
{
	rt::DeviceOptions o;
	o.disable_f16 = true;
	auto dev = rt::Device::create(o);
	expect_f16_refused(*dev);
}

TEST(F16Device, EnvironmentTurnsF16Off)
{
	ASSERT_EQ(setenv("FLAXDRM_DISABLE_F16", "1", 1), 0);
	auto dev = rt::Device::create();
	unsetenv("FLAXDRM_DISABLE_F16");
	expect_f16_refused(*dev);
}

} // namespace
