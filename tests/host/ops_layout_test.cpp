// Reductions (sum, mean, max with axes bitmasks and keepdims) and layout
// ops (reshape, transpose, concatenate, slice) on the runtime against
// tests/host/reference_elementwise.hpp; layout ops must move bits exactly
// (NaN payloads, i32 data).
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
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

// ------------------------------------------------------------ reductions

struct ReduceParam {
	Dims dims;
	uint32_t axes;
};

Dims reduced_dims(const Dims& d, uint32_t axes, bool keep)
{
	Dims y;
	for (std::size_t k = 0; k < d.size(); k++) {
		if (!((axes >> k) & 1))
			y.push_back(d[k]);
		else if (keep)
			y.push_back(1);
	}
	return y;
}

class ReduceTest : public ::testing::TestWithParam<ReduceParam> {};

TEST_P(ReduceTest, MatchesReference)
{
	const ReduceParam& p = GetParam();
	std::vector<float> x = ref::random_vector(ref::numel(p.dims), 31, -2.0f, 2.0f);
	const struct {
		uint32_t opcode;
		ref::Reduce op;
	} ops[] = {{FLAXDRM_OP_REDUCE_SUM, ref::Reduce::Sum},
		   {FLAXDRM_OP_REDUCE_MEAN, ref::Reduce::Mean},
		   {FLAXDRM_OP_REDUCE_MAX, ref::Reduce::Max}};
	const auto want_sum = ref::reduce(ref::Reduce::Sum, x, p.dims, p.axes);
	for (const auto& o : ops) {
		const auto want = ref::reduce(o.op, x, p.dims, p.axes);
		for (uint32_t keep : {0u, 1u}) {
			// keepdims on the fallback device: the GPU-style split
			const Dims yd = reduced_dims(p.dims, p.axes, keep);
			const auto y = ref::run_op(o.opcode, {&x}, {p.dims}, yd, {p.axes, keep}, keep == 1);
			// Sums cancel: judge the error against the summands' scale.
			EXPECT_TRUE(ref::close(y, want, 1e-9, 1e-4)) << "opcode " << o.opcode << " keep " << keep;
		}
	}
}

INSTANTIATE_TEST_SUITE_P(Shapes, ReduceTest,
			 ::testing::Values(ReduceParam{{1}, 1}, ReduceParam{{7}, 1}, ReduceParam{{100003}, 1},
					   ReduceParam{{4, 5}, 1}, ReduceParam{{4, 5}, 2}, ReduceParam{{4, 5}, 3},
					   ReduceParam{{3, 4, 5}, 5},     // axes 0 and 2
					   ReduceParam{{3, 4, 5}, 2},     // middle axis
					   ReduceParam{{2, 3, 4, 5, 6, 7}, 0x2a}, // alternating
					   ReduceParam{{2, 3, 4, 5, 6, 7}, 0x15},
					   ReduceParam{{2, 1, 4, 1, 6, 1}, 0x2a}, // reduced size-1 dims
					   ReduceParam{{5, 1, 3}, 2},     // only a size-1 axis: a copy
					   ReduceParam{{1000, 1000}, 1},  // leading axis, many outputs
					   ReduceParam{{1000, 1000}, 2},  // last axis, many outputs
					   ReduceParam{{300000, 3}, 1},   // long leading axis, few outputs
					   ReduceParam{{3, 300000}, 2},
					   ReduceParam{{64, 33, 17}, 6},
					   ReduceParam{{8, 16, 16, 32}, 6}, // NHWC spatial mean
					   // vec4 reads: inner run, outer (4 outputs a thread)
					   ReduceParam{{6, 8}, 2}, ReduceParam{{5, 7, 12}, 2}, ReduceParam{{16, 4}, 1},
					   ReduceParam{{3, 8, 16}, 5}, ReduceParam{{100, 3, 64}, 6},
					   ReduceParam{{100, 3, 64}, 1}, ReduceParam{{1u << 20}, 1}),
			 [](const ::testing::TestParamInfo<ReduceParam>& info) {
				 return ref::dims_name(info.param.dims) + "_axes" + std::to_string(info.param.axes);
			 });

TEST(Reduce, NaNAndInfinity)
{
	// rows: a NaN, a +inf, a -inf and +inf, all -inf
	for (uint32_t len : {4u, 3000u}) {
		std::vector<float> x(4 * len, 1.0f);
		x[0 * len + 1] = kNaNf;
		x[1 * len + 2] = kInf;
		x[2 * len + 0] = -kInf;
		x[2 * len + len - 1] = kInf;
		for (uint32_t j = 0; j < len; j++)
			x[3 * len + j] = -kInf;
		const Dims d{4, len};
		const auto mx = ref::run_op(FLAXDRM_OP_REDUCE_MAX, {&x}, {d}, {4}, {2, 0});
		EXPECT_TRUE(std::isnan(mx[0]));
		EXPECT_EQ(mx[1], kInf);
		EXPECT_EQ(mx[2], kInf);
		EXPECT_EQ(mx[3], -kInf);
		const auto sm = ref::run_op(FLAXDRM_OP_REDUCE_SUM, {&x}, {d}, {4}, {2, 0});
		EXPECT_TRUE(std::isnan(sm[0]));
		EXPECT_EQ(sm[1], kInf);
		EXPECT_TRUE(std::isnan(sm[2]));
		EXPECT_EQ(sm[3], -kInf);
		// the NaN sits in different positions of a column reduction
		const auto cm = ref::run_op(FLAXDRM_OP_REDUCE_MAX, {&x}, {d}, {len}, {1, 0});
		EXPECT_TRUE(std::isnan(cm[1]));
		EXPECT_EQ(cm[2], kInf);
	}
}

TEST(Reduce, RefusesBadAxesAndShapes)
{
	const struct {
		Dims x, y;
		uint32_t axes, keep;
	} cases[] = {
		{{4, 5}, {4}, 0, 0},    // no axes
		{{4, 5}, {4}, 4, 0},    // axis 2 of a rank-2 tensor
		{{4, 5}, {4}, 1, 0},    // wrong output shape: [5]
		{{4, 5}, {4}, 2, 1},    // keepdims: [4, 1]
		{{4, 5}, {4, 1}, 2, 2}, // keepdims must be 0 or 1
	};
	for (const auto& c : cases) {
		ref::Program p;
		const uint32_t x = p.input(c.x), y = p.output(c.y);
		p.op(FLAXDRM_OP_REDUCE_SUM, {x}, {y}, {c.axes, c.keep});
		std::vector<float> xv(ref::numel(c.x)), yv(ref::numel(c.y));
		ref::Bindings b(p);
		b.host(x, xv);
		b.host(y, yv);
		EXPECT_EQ(ref::run_status(p, b), -EINVAL) << c.axes << " " << c.keep;
	}
}

// ------------------------------------------------------------ layout

// Bit patterns (with NaN payloads) that must survive a copy exactly.
std::vector<float> bit_pattern(std::size_t n, uint32_t seed)
{
	std::vector<float> v = ref::random_vector(n, seed);
	for (std::size_t i = 0; i < n; i += 97) {
		const uint32_t nan = 0x7fc00000u | uint32_t(i & 0x3fffff);
		std::memcpy(&v[i], &nan, 4);
	}
	return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b)
{
	return a.size() == b.size() && !std::memcmp(a.data(), b.data(), a.size() * 4);
}

TEST(Reshape, CopiesBytes)
{
	const struct {
		Dims x, y;
	} cases[] = {{{6}, {2, 3}}, {{2, 3, 4}, {24}}, {{1}, {}}, {{}, {1, 1}}, {{1000, 1001}, {1001, 10, 100}},
		     {{5, 7}, {7, 5}}};
	for (const auto& c : cases) {
		std::vector<float> x = bit_pattern(ref::numel(c.x), 3);
		const auto y = ref::run_op(FLAXDRM_OP_RESHAPE, {&x}, {c.x}, c.y);
		EXPECT_TRUE(same_bits(x, y)) << ref::dims_name(c.x) << " -> " << ref::dims_name(c.y);
	}
}

TEST(Reshape, ChainThroughTemps)
{
	// x[4, 6] -> reshape [24] -> relu -> reshape [2, 12] -> y, and the
	// intermediate reshape also feeds a second output.
	ref::Program p;
	const uint32_t x = p.input({4, 6}), t0 = p.temp({24}), t1 = p.temp({24});
	const uint32_t y = p.output({2, 12}), z = p.output({3, 8});
	p.op(FLAXDRM_OP_RESHAPE, {x}, {t0});
	p.op(FLAXDRM_OP_RELU, {t0}, {t1});
	p.op(FLAXDRM_OP_RESHAPE, {t1}, {y});
	p.op(FLAXDRM_OP_RESHAPE, {t0}, {z});
	std::vector<float> xv = ref::random_vector(24, 1), yv(24), zv(24);
	ref::Bindings b(p);
	b.host(x, xv);
	b.host(y, yv);
	b.host(z, zv);
	ref::run(p, b);
	EXPECT_EQ(yv, ref::unary(ref::Unary::Relu, xv));
	EXPECT_EQ(zv, xv);
}

TEST(Reshape, RefusesDifferentSize)
{
	ref::Program p;
	const uint32_t x = p.input({4, 6}), y = p.output({25});
	p.op(FLAXDRM_OP_RESHAPE, {x}, {y});
	std::vector<float> xv(24), yv(25);
	ref::Bindings b(p);
	b.host(x, xv);
	b.host(y, yv);
	EXPECT_EQ(ref::run_status(p, b), -EINVAL);
}

struct TransposeParam {
	Dims dims;
	std::vector<uint32_t> perm;
};

class TransposeTest : public ::testing::TestWithParam<TransposeParam> {};

TEST_P(TransposeTest, MatchesReference)
{
	const TransposeParam& p = GetParam();
	Dims yd;
	for (uint32_t a : p.perm)
		yd.push_back(p.dims[a]);
	std::vector<float> x = bit_pattern(ref::numel(p.dims), 11);
	const auto y = ref::run_op(FLAXDRM_OP_TRANSPOSE, {&x}, {p.dims}, yd, p.perm);
	EXPECT_TRUE(same_bits(y, ref::transpose(x, p.dims, p.perm)));
}

INSTANTIATE_TEST_SUITE_P(Shapes, TransposeTest,
			 ::testing::Values(TransposeParam{{5}, {0}}, TransposeParam{{3, 4}, {1, 0}},
					   TransposeParam{{3, 4}, {0, 1}}, TransposeParam{{1, 7}, {1, 0}},
					   TransposeParam{{2, 3, 4}, {2, 0, 1}}, TransposeParam{{2, 3, 4}, {1, 2, 0}},
					   TransposeParam{{2, 3, 4}, {0, 2, 1}},
					   TransposeParam{{8, 16, 16, 32}, {0, 3, 1, 2}}, // NHWC -> NCHW
					   TransposeParam{{2, 5, 4, 8}, {0, 2, 1, 3}},    // heads swap
					   TransposeParam{{2, 3, 1, 5, 1, 7}, {5, 3, 1, 0, 2, 4}},
					   TransposeParam{{2, 3, 4, 5, 6, 7}, {5, 4, 3, 2, 1, 0}},
					   TransposeParam{{1023, 1025}, {1, 0}},
					   TransposeParam{{6, 5, 8}, {1, 0, 2}}), // 16-byte words
			 [](const ::testing::TestParamInfo<TransposeParam>& info) {
				 std::string s = ref::dims_name(info.param.dims) + "_p";
				 for (uint32_t a : info.param.perm)
					 s += std::to_string(a);
				 return s;
			 });

TEST(Transpose, Int32)
{
	ref::Program p;
	const uint32_t x = p.input({3, 5}, FLAXDRM_DTYPE_I32), y = p.output({5, 3}, FLAXDRM_DTYPE_I32);
	p.op(FLAXDRM_OP_TRANSPOSE, {x}, {y}, {1, 0});
	std::vector<int32_t> xv(15), yv(15);
	std::iota(xv.begin(), xv.end(), -7);
	ref::Bindings b(p);
	b.host(x, xv);
	b.host(y, yv);
	ref::run(p, b);
	EXPECT_EQ(yv, ref::transpose(xv, {3, 5}, {1, 0}));
}

TEST(Transpose, RefusesBadPermutation)
{
	for (std::vector<uint32_t> perm : {std::vector<uint32_t>{0, 0}, {0, 2}, {1, 0, 1}, {2, 0}}) {
		ref::Program p;
		const uint32_t x = p.input({3, 3}), y = p.output({3, 3});
		p.op(FLAXDRM_OP_TRANSPOSE, {x}, {y}, perm);
		std::vector<float> xv(9), yv(9);
		ref::Bindings b(p);
		b.host(x, xv);
		b.host(y, yv);
		EXPECT_EQ(ref::run_status(p, b), -EINVAL);
	}
}

struct ConcatParam {
	std::vector<Dims> inputs;
	uint32_t axis;
};

class ConcatTest : public ::testing::TestWithParam<ConcatParam> {};

TEST_P(ConcatTest, MatchesReference)
{
	const ConcatParam& p = GetParam();
	std::vector<std::vector<float>> xs;
	std::vector<std::vector<float>*> ptrs;
	for (std::size_t k = 0; k < p.inputs.size(); k++)
		xs.push_back(bit_pattern(ref::numel(p.inputs[k]), uint32_t(40 + k)));
	for (auto& x : xs)
		ptrs.push_back(&x);
	Dims yd = p.inputs[0];
	yd[p.axis] = 0;
	for (const Dims& d : p.inputs)
		yd[p.axis] += d[p.axis];
	const auto y = ref::run_op(FLAXDRM_OP_CONCAT, ptrs, p.inputs, yd, {p.axis});
	EXPECT_TRUE(same_bits(y, ref::concat(xs, p.inputs, p.axis)));
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConcatTest,
			 ::testing::Values(ConcatParam{{{5}}, 0}, ConcatParam{{{3}, {4}}, 0},
					   ConcatParam{{{2, 3}, {2, 5}}, 1}, ConcatParam{{{2, 3}, {4, 3}}, 0},
					   ConcatParam{{{2, 3, 4}, {2, 1, 4}, {2, 7, 4}}, 1},
					   ConcatParam{{{1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}}, 1},
					   ConcatParam{{{3, 1}, {3, 2}, {3, 3}, {3, 4}, {3, 5}, {3, 6}, {3, 7}, {3, 8}}, 1},
					   ConcatParam{{{2, 2, 2, 2, 2, 3}, {2, 2, 2, 2, 2, 1}}, 5},
					   ConcatParam{{{2, 2, 2, 2, 2, 3}, {1, 2, 2, 2, 2, 3}}, 0},
					   ConcatParam{{{300, 1000}, {300, 24}}, 1},
					   ConcatParam{{{4, 8}, {4, 12}, {4, 4}}, 1}, // 16-byte words
					   ConcatParam{{{4, 8}, {4, 6}, {4, 4}}, 1},  // words after a misaligned input
					   ConcatParam{{{3, 16}, {5, 16}}, 0}),
			 [](const ::testing::TestParamInfo<ConcatParam>& info) {
				 std::string s = "axis" + std::to_string(info.param.axis);
				 for (const Dims& d : info.param.inputs)
					 s += "_" + ref::dims_name(d);
				 return s;
			 });

TEST(Concat, SameTensorTwice)
{
	ref::Program p;
	const uint32_t x = p.input({2, 3}), y = p.output({2, 6});
	p.op(FLAXDRM_OP_CONCAT, {x, x}, {y}, {1});
	std::vector<float> xv = {1, 2, 3, 4, 5, 6}, yv(12);
	ref::Bindings b(p);
	b.host(x, xv);
	b.host(y, yv);
	ref::run(p, b);
	EXPECT_EQ(yv, (std::vector<float>{1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6}));
}

TEST(Concat, RefusesMismatchedInputs)
{
	const struct {
		std::vector<Dims> in;
		Dims y;
		uint32_t axis;
	} cases[] = {
		{{{2, 3}, {3, 3}}, {2, 6}, 1}, // other dim differs
		{{{2, 3}, {2, 3}}, {2, 7}, 1}, // wrong total
		{{{2, 3}, {2, 3}}, {2, 6}, 2}, // axis out of range
		{{{2, 3}, {6}}, {2, 6}, 1},    // rank differs
	};
	for (const auto& c : cases) {
		ref::Program p;
		std::vector<uint32_t> in;
		std::vector<std::vector<float>> xv;
		for (const Dims& d : c.in) {
			in.push_back(p.input(d));
			xv.emplace_back(ref::numel(d));
		}
		const uint32_t y = p.output(c.y);
		p.op(FLAXDRM_OP_CONCAT, in, {y}, {c.axis});
		std::vector<float> yv(ref::numel(c.y));
		ref::Bindings b(p);
		for (std::size_t k = 0; k < in.size(); k++)
			b.host(in[k], xv[k]);
		b.host(y, yv);
		std::string what;
		EXPECT_EQ(ref::run_status(p, b, &what), -EINVAL);
		EXPECT_THAT(what, HasSubstr("concatenate"));
	}
}

struct SliceParam {
	Dims x;
	std::vector<uint32_t> start;
	Dims y;
};

class SliceTest : public ::testing::TestWithParam<SliceParam> {};

TEST_P(SliceTest, MatchesReference)
{
	const SliceParam& p = GetParam();
	std::vector<float> x = bit_pattern(ref::numel(p.x), 77);
	const auto y = ref::run_op(FLAXDRM_OP_SLICE, {&x}, {p.x}, p.y, p.start);
	EXPECT_TRUE(same_bits(y, ref::slice(x, p.x, p.start, p.y)));
}

INSTANTIATE_TEST_SUITE_P(Shapes, SliceTest,
			 ::testing::Values(SliceParam{{10}, {0}, {10}}, SliceParam{{10}, {3}, {4}},
					   SliceParam{{10}, {9}, {1}}, SliceParam{{5, 6}, {1, 2}, {3, 3}},
					   SliceParam{{5, 6}, {2, 0}, {2, 6}},  // whole rows: contiguous
					   SliceParam{{5, 6}, {0, 5}, {5, 1}},  // a column
					   SliceParam{{4, 5, 6}, {1, 1, 1}, {2, 3, 4}},
					   SliceParam{{2, 3, 4, 5, 6, 7}, {1, 0, 2, 1, 3, 4}, {1, 3, 2, 3, 2, 3}},
					   SliceParam{{1000, 1000}, {17, 301}, {900, 513}},
					   SliceParam{{16, 32}, {3, 8}, {10, 16}},   // 16-byte words
					   SliceParam{{16, 32}, {3, 6}, {10, 16}},   // misaligned start
					   SliceParam{{16, 30}, {3, 8}, {10, 16}}),  // misaligned stride
			 [](const ::testing::TestParamInfo<SliceParam>& info) {
				 std::string s = ref::dims_name(info.param.x) + "_at";
				 for (uint32_t a : info.param.start)
					 s += "_" + std::to_string(a);
				 return s + "_" + ref::dims_name(info.param.y);
			 });

TEST(Slice, RefusesOutOfRange)
{
	const struct {
		Dims x;
		std::vector<uint32_t> start;
		Dims y;
	} cases[] = {
		{{10}, {8}, {3}},
		{{10}, {11}, {1}},
		{{5, 6}, {0, 0}, {6, 6}},
		{{5, 6}, {0xffffffffu, 0}, {1, 6}},
	};
	for (const auto& c : cases) {
		ref::Program p;
		const uint32_t x = p.input(c.x), y = p.output(c.y);
		p.op(FLAXDRM_OP_SLICE, {x}, {y}, c.start);
		std::vector<float> xv(ref::numel(c.x)), yv(ref::numel(c.y));
		ref::Bindings b(p);
		b.host(x, xv);
		b.host(y, yv);
		EXPECT_EQ(ref::run_status(p, b), -EINVAL);
	}
}

TEST(Layout, FallbackPaths)
{
	std::vector<float> x = bit_pattern(6 * 7 * 8, 5);
	auto y = ref::run_op(FLAXDRM_OP_TRANSPOSE, {&x}, {{6, 7, 8}}, {8, 6, 7}, {2, 0, 1}, true);
	EXPECT_TRUE(same_bits(y, ref::transpose(x, {6, 7, 8}, {2, 0, 1})));
	y = ref::run_op(FLAXDRM_OP_RESHAPE, {&x}, {{6, 7, 8}}, {42, 8}, {}, true);
	EXPECT_TRUE(same_bits(y, x));
	const auto r = ref::run_op(FLAXDRM_OP_REDUCE_MEAN, {&x}, {{6, 7, 8}}, {7}, {5, 0}, true);
	EXPECT_TRUE(ref::close(r, ref::reduce(ref::Reduce::Mean, x, {6, 7, 8}, 5), 1e-9, 1e-4));
}

} // namespace

// Timings on the default device (not run by default):
//   ops_layout_test --gtest_also_run_disabled_tests --gtest_filter='*Timing*'
namespace {

class LayoutTiming : public ::testing::TestWithParam<bool> {};

// Param: the fallback device (GPU-style kernels) instead of the default.
TEST_P(LayoutTiming, DISABLED_Report)
{
	const bool fallback = GetParam();
	const uint32_t n = 1u << 24;
	std::vector<float> x = ref::random_vector(n, 1), y(n);
	auto one = [&](uint32_t opcode, Dims xd, Dims yd, std::vector<uint32_t> attrs, const char* name) {
		ref::Program p;
		const uint32_t xi = p.input(xd), yi = p.output(yd);
		p.op(opcode, {xi}, {yi}, attrs);
		ref::Bindings b(p);
		b.host(xi, x);
		b.host(yi, y);
		double best = 1e30;
		for (int i = 0; i < 4; i++) {
			const auto st = ref::run(p, b, fallback);
			best = std::min(best, st.ops.empty() ? double(st.total_ns) / 1e6
							     : double(st.ops[0].end_ns - st.ops[0].start_ns) / 1e6);
		}
		std::printf("%-32s %8.3f ms  %6.2f GB/s\n", name, best,
			    4.0 * double(ref::numel(xd) + ref::numel(yd)) / best / 1e6);
	};
	one(FLAXDRM_OP_RESHAPE, {n}, {n / 64, 64}, {}, "reshape 16M");
	one(FLAXDRM_OP_TRANSPOSE, {4096, 4096}, {4096, 4096}, {1, 0}, "transpose 4096^2");
	one(FLAXDRM_OP_TRANSPOSE, {64, 64, 64, 64}, {64, 64, 64, 64}, {0, 2, 1, 3}, "transpose 64^4 (0213)");
	one(FLAXDRM_OP_SLICE, {4096, 4096}, {4000, 4000}, {10, 10}, "slice 4000^2 of 4096^2");
	one(FLAXDRM_OP_REDUCE_SUM, {4096, 4096}, {4096}, {2, 0}, "sum last axis 4096^2");
	one(FLAXDRM_OP_REDUCE_SUM, {4096, 4096}, {4096}, {1, 0}, "sum first axis 4096^2");
	one(FLAXDRM_OP_REDUCE_MAX, {n}, {}, {1, 0}, "max all 16M");
	one(FLAXDRM_OP_REDUCE_MEAN, {64, 256, 1024}, {64, 1024}, {2, 0}, "mean middle 64x256x1024");
}

INSTANTIATE_TEST_SUITE_P(Device, LayoutTiming, ::testing::Values(false, true));

} // namespace
