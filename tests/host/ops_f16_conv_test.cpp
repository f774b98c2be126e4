// f16 convolution and pooling on the runtime: Conv/ConvTranspose
// (FLAXDRM_OP_CONV), avg_pool and max_pool with every operand f16, on the
// default device (texel kernels conv_texel / conv_dw_texel with RGBA16F
// views where the channels allow, conv.comp's f16 variant otherwise) and
// the fallback device (the storage-buffer f16 variants only); plus the
// refusal of f16 conv and pooling on a device without f16.
//
// Reference: reference_conv.hpp on the same f16-rounded inputs, weights
// and bias (accumulated in double), rounded to f16. Tolerance NMSE <= 1e-6:
// the runtime accumulates in f32 and rounds once to f16, so it differs
// from the reference by at most about one f16 ulp (2^-11 relative) where
// the f32 and double sums fall on either side of a rounding boundary;
// one ulp on every element would be an NMSE near 2^-22 = 2.4e-7, and only
// a few elements differ at all. A wrong f16 path (f32 stores, 4-byte
// strides or offsets, f16 accumulation) gives garbage or an NMSE far
// above 1e-6; the project limit is 5e-4. Pooling is checked the same way
// (max_pool is exact: the max of f16 values is an f16 value).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "f16_test_util.hpp"
#include "flaxdrm_rules.h"
#include "ops_conv_util.hpp"

namespace {

using namespace flaxdrm::optest;
namespace ref = flaxdrm::ref;

constexpr uint32_t F16 = FLAXDRM_DTYPE_F16;
constexpr double kTol = 1e-6;
// Written into outputs before a run: NaN, so an element the kernel never
// stores shows up as a special-value mismatch.
constexpr uint16_t kUnwritten = 0x7e01;

// ------------------------------------------------------------ programs

std::vector<uint16_t> run_conv_f16(const ref::ConvParams& c, std::vector<uint16_t>& x, std::vector<uint16_t>& w,
				   std::vector<uint16_t>* bias, bool fallback)
{
	Program p = conv_program(c, bias != nullptr, F16);
	std::vector<uint16_t> y(c.y_size(), kUnwritten);
	Bindings b(p);
	b.host(0, x);
	b.host(1, w);
	if (bias)
		b.host(2, *bias);
	b.host(uint32_t(p.tensors.size() - 1), y);
	executor(fallback).run(p.tensors, p.ops, b.mem);
	return y;
}

// The reference on the f16 values, rounded to f16 as the runtime stores.
std::vector<float> conv_reference(const ref::ConvParams& c, const std::vector<uint16_t>& x,
				  const std::vector<uint16_t>& w, const std::vector<uint16_t>* bias)
{
	const std::vector<float> bf = bias ? from_f16(*bias) : std::vector<float>();
	return round_f16(ref::conv(c, from_f16(x), from_f16(w), bias ? &bf : nullptr));
}

std::vector<uint16_t> run_pool_f16(const ref::PoolParams& q, bool max, std::vector<uint16_t>& x, bool fallback)
{
	Program p = pool_program(q, max, F16);
	std::vector<uint16_t> y(q.y_size(), kUnwritten);
	Bindings b(p);
	b.host(0, x);
	b.host(1, y);
	executor(fallback).run(p.tensors, p.ops, b.mem);
	return y;
}

// Random f16 tensors (values on the f16 grid).
std::vector<uint16_t> random_f16(std::size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f)
{
	return to_f16(random_vector(n, seed, lo, hi));
}

// ------------------------------------------------------------ conv

struct ConvCase {
	ref::ConvParams c;
	bool fallback;
};

// For gtest's messages (instead of the bytes of the struct).
void PrintTo(const ConvCase& c, std::ostream* os)
{
	*os << conv_name(c.c) << (c.fallback ? " fallback" : " default");
}

class ConvF16 : public ::testing::TestWithParam<ConvCase> {};

// Each shape with and without bias.
TEST_P(ConvF16, MatchesReference)
{
	REQUIRE_F16();
	const ref::ConvParams& c = GetParam().c;
	std::vector<uint16_t> x = random_f16(c.x_size(), 1 + c.H + c.C);
	std::vector<uint16_t> w = random_f16(c.w_size(), 2 + c.KW + c.F);
	std::vector<uint16_t> bias = random_f16(c.F, 3);
	for (bool with_bias : {false, true}) {
		SCOPED_TRACE(with_bias ? "with bias" : "without bias");
		std::vector<uint16_t>* b = with_bias ? &bias : nullptr;
		const std::vector<float> want = conv_reference(c, x, w, b);
		const std::vector<float> got = from_f16(run_conv_f16(c, x, w, b, GetParam().fallback));
		EXPECT_MATCHES(got, want, kTol);
	}
}

std::vector<ConvCase> conv_f16_cases()
{
	// On the default (CPU) device: texel = conv_texel (C/G, F/G % 4 == 0),
	// dw = conv_dw_texel (G == C == F, C % 4 == 0), else conv.comp.
	const std::vector<ref::ConvParams> shapes = {
		P(1, 7, 9, 3, 3, 3, 5, {1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1}),          // 3x3 SAME, C = 3
		P(1, 10, 11, 64, 3, 3, 64, {1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1}),      // 3x3 SAME, C = 64: texel
		P(2, 17, 19, 36, 3, 3, 68, {1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1}),      // texel, ragged tiles
		P(2, 13, 11, 12, 3, 3, 20, {2, 2}),                                    // VALID stride 2: texel
		P(1, 12, 9, 5, 3, 3, 7, {2, 2}),                                       // VALID stride 2, odd C, F
		P(2, 6, 7, 8, 3, 2, 8, {1, 1, 0, 0, 0, 0, 0, 0, 2, 0, 1, 3}),          // explicit, asymmetric
		P(1, 3, 3, 4, 3, 3, 4, {1, 1, 0, 0, 0, 0, 0, 0, 5, 5, 5, 5}),          // mostly padding
		P(2, 6, 5, 8, 3, 3, 8, {1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1}),          // circular: texel
		P(1, 5, 6, 5, 3, 3, 6, {1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1}),          // circular, odd C
		P(1, 5, 5, 4, 5, 5, 4, {1, 1, 0, 0, 0, 0, 0, 1, 5, 5, 5, 5}),          // circular, pad = H
		P(1, 6, 6, 4, 3, 3, 4, {2, 2, 0, 0, 2, 1, 0, 1, 2, 1, 1, 1}),          // circular, strided, dilated
		P(1, 9, 9, 8, 5, 5, 4, {1, 1, 0, 0, 2, 2, 0, 0, 4, 4, 4, 4}),          // kernel dilation 2: texel
		P(1, 11, 10, 3, 3, 3, 2, {1, 1, 0, 0, 2, 2}),                          // kernel dilation 2, odd
		P(1, 4, 6, 8, 3, 3, 8, {1, 1, 2, 2, 0, 0, 0, 0, 2, 2, 2, 2}),          // ConvTranspose s2 VALID
		P(2, 5, 5, 4, 4, 4, 12, {1, 1, 3, 2, 1, 1, 0, 0, 2, 3, 1, 2}),         // input dilation, odd pads
		P(1, 5, 4, 3, 3, 3, 5, {1, 1, 2, 2, 0, 0, 0, 0, 1, 2, 1, 2}),          // ConvTranspose SAME, odd C
		P(1, 8, 8, 16, 3, 3, 32, {1, 1, 0, 0, 0, 0, 2, 0, 1, 1, 1, 1}),        // groups 2: texel
		P(1, 7, 8, 6, 3, 3, 10, {1, 1, 0, 0, 0, 0, 2, 0, 1, 1, 1, 1}),         // groups 2, odd C/G, F/G
		P(1, 7, 7, 16, 3, 3, 16, {1, 1, 0, 0, 0, 0, 16, 0, 1, 1, 1, 1}),       // depthwise: dw
		P(2, 9, 8, 8, 3, 3, 8, {2, 1, 0, 0, 2, 1, 8, 0, 1, 2, 2, 1}),          // depthwise, strided, dilated: dw
		P(1, 5, 6, 4, 3, 3, 4, {1, 1, 0, 0, 0, 0, 4, 1, 1, 1, 1, 1}),          // depthwise, circular: dw
		P(1, 4, 5, 12, 3, 3, 12, {1, 1, 2, 2, 0, 0, 12, 0, 1, 1, 2, 2}),       // depthwise, input dilation: dw
		P(1, 5, 7, 5, 3, 3, 5, {1, 1, 0, 0, 0, 0, 5, 0, 1, 1, 1, 1}),          // depthwise, odd C
		P(1, 7, 7, 12, 3, 3, 24, {2, 1, 0, 0, 0, 0, 12, 0, 1, 1, 1, 1}),       // depthwise x2
		P(4, 7, 7, 32, 1, 1, 48),                                              // 1x1: texel
		P(1, 3, 5, 3, 1, 1, 7),                                                // 1x1, odd
		P(1, 1, 40, 8, 1, 5, 12, {1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0}),        // 1-D causal
		P(1, 1, 1, 1, 1, 1, 1),
	};
	std::vector<ConvCase> v;
	for (bool fallback : {false, true})
		for (const auto& c : shapes)
			v.push_back({c, fallback});
	return v;
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConvF16, ::testing::ValuesIn(conv_f16_cases()), [](const auto& info) {
	return conv_name(info.param.c) + (info.param.fallback ? "_Fallback" : "_Default");
});

class ConvF16Special : public ::testing::TestWithParam<bool> {};

// Partial sums far beyond f16's range (65504) that cancel: f32 accumulation
// gives the exact result, f16 accumulation would give inf or NaN.
TEST_P(ConvF16Special, AccumulatesInF32)
{
	REQUIRE_F16();
	for (const uint32_t C : {8u, 5u}) { // the texel path, and conv.comp
		SCOPED_TRACE("C = " + std::to_string(C));
		const ref::ConvParams c = P(1, 3, 4, C, 1, 1, 4);
		// channels [0, P): +1000, [P, 2P): -1000, the rest 1 + f; x = 100:
		// partial sums up to P * 1e5 (3e5 or 2e5), then (C - 2P) * 100 * (1 + f)
		const uint32_t half = (C - 1) / 2;
		std::vector<float> xf(c.x_size(), 100.0f), wf(c.w_size());
		for (uint32_t ci = 0; ci < C; ci++)
			for (uint32_t f = 0; f < c.F; f++)
				wf[ci * c.F + f] = ci < half ? 1000.0f : ci < 2 * half ? -1000.0f : 1.0f + float(f);
		std::vector<uint16_t> x = to_f16(xf), w = to_f16(wf), bias = to_f16({0.5f, -0.5f, 0.25f, 2.0f});
		const std::vector<float> got = from_f16(run_conv_f16(c, x, w, &bias, GetParam()));
		const std::vector<float> want = conv_reference(c, x, w, &bias);
		for (std::size_t i = 0; i < got.size(); i++)
			ASSERT_EQ(got[i], want[i]) << i;
		EXPECT_TRUE(std::isfinite(want[0]) && std::abs(want[0]) < 65504.0f);
	}
}

// NaN and infinities propagate as in the f32 path; padding never reads them.
TEST_P(ConvF16Special, NanAndInfPropagate)
{
	REQUIRE_F16();
	for (const uint32_t C : {4u, 3u}) {
		SCOPED_TRACE("C = " + std::to_string(C));
		const ref::ConvParams c = P(1, 6, 6, C, 3, 3, 4, {1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1});
		std::vector<float> xf = random_vector(c.x_size(), 5);
		xf[(1 * 6 + 1) * C + 2] = NAN;      // pixel (1, 1)
		xf[(4 * 6 + 4) * C + 1] = INFINITY; // pixel (4, 4)
		std::vector<uint16_t> x = to_f16(xf), w = random_f16(c.w_size(), 6);
		const std::vector<float> want = conv_reference(c, x, w, nullptr);
		const std::vector<float> got = from_f16(run_conv_f16(c, x, w, nullptr, GetParam()));
		EXPECT_MATCHES(got, want, kTol);
		EXPECT_TRUE(std::isnan(got[0]));
		EXPECT_FALSE(std::isnan(got[(5 * 6 + 0) * 4]));
	}
}

// More output pixels than one dispatch's grid holds on lavapipe (65535
// groups of 64 pixels on conv.comp): the second dispatch binds y from
// pixel m_base on, at a byte offset in 2-byte elements.
TEST_P(ConvF16Special, SplitIntoSeveralDispatches)
{
	REQUIRE_F16();
	const ref::ConvParams c = P(1, 2051, 2048, 1, 1, 1, 3); // 4.2M pixels > 65535 * 64
	std::vector<uint16_t> x = random_f16(c.x_size(), 8, -4.0f, 4.0f), w = to_f16({0.5f, -1.25f, 3.0f});
	std::vector<uint16_t> bias = to_f16({0.0f, 1.0f, -2.0f});
	const std::vector<float> got = from_f16(run_conv_f16(c, x, w, &bias, GetParam()));
	const std::vector<float> want = conv_reference(c, x, w, &bias);
	EXPECT_MATCHES(got, want, kTol);
	// products of two f16 values with 1 or 2 significant-bit weights are
	// exact in f32: every element is the reference's
	std::size_t bad = 0;
	for (std::size_t i = 0; i < got.size(); i++)
		bad += f32_bits(got[i]) != f32_bits(want[i]);
	EXPECT_EQ(bad, 0u);
}

INSTANTIATE_TEST_SUITE_P(Devices, ConvF16Special, ::testing::Values(false, true),
			 [](const auto& info) { return info.param ? "Fallback" : "Default"; });

// ------------------------------------------------------------ pooling

struct PoolCase {
	ref::PoolParams q;
	bool max;
	bool fallback;
};

std::string pool_name(const PoolCase& c)
{
	const auto& q = c.q;
	std::ostringstream s;
	s << (c.max ? "max_" : "avg_") << q.N << "x" << q.H << "x" << q.W << "x" << q.C << "_w" << q.wh << "x" << q.ww
	  << "_s" << q.sh << "x" << q.sw << "_p" << q.pt << q.pb << q.pl << q.pr
	  << (q.count_include_pad ? "_incl" : "_excl") << (c.fallback ? "_Fallback" : "_Default");
	return s.str();
}

void PrintTo(const PoolCase& c, std::ostream* os)
{
	*os << pool_name(c);
}

class PoolF16 : public ::testing::TestWithParam<PoolCase> {};

TEST_P(PoolF16, MatchesReference)
{
	REQUIRE_F16();
	const PoolCase& pc = GetParam();
	std::vector<uint16_t> x = random_f16(pc.q.x_size(), 7 + pc.q.W, -8.0f, 8.0f);
	const std::vector<float> want = round_f16(ref::pool(pc.q, from_f16(x), pc.max));
	const std::vector<float> got = from_f16(run_pool_f16(pc.q, pc.max, x, pc.fallback));
	if (pc.max) {
		// the max of f16 values is one of them: exact
		std::size_t bad = 0;
		for (std::size_t i = 0; i < got.size(); i++)
			bad += f32_bits(got[i]) != f32_bits(want[i]);
		EXPECT_EQ(bad, 0u);
	}
	EXPECT_MATCHES(got, want, kTol);
}

ref::PoolParams Q(uint32_t N, uint32_t H, uint32_t W, uint32_t C, uint32_t wh, uint32_t ww, uint32_t sh, uint32_t sw,
		  uint32_t pt, uint32_t pb, uint32_t pl, uint32_t pr, bool incl)
{
	ref::PoolParams q;
	q.N = N, q.H = H, q.W = W, q.C = C, q.wh = wh, q.ww = ww, q.sh = sh, q.sw = sw;
	q.pt = pt, q.pb = pb, q.pl = pl, q.pr = pr, q.count_include_pad = incl;
	return q;
}

std::vector<PoolCase> pool_f16_cases()
{
	const std::vector<ref::PoolParams> shapes = {
		Q(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, true),
		Q(2, 4, 4, 3, 2, 2, 2, 2, 0, 0, 0, 0, true),      // VALID, stride 2
		Q(1, 7, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, false),     // SAME stride 1, odd sizes
		Q(1, 7, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, true),
		Q(1, 7, 5, 5, 3, 3, 2, 2, 1, 1, 1, 1, false),     // SAME stride 2
		Q(3, 9, 10, 17, 3, 2, 1, 3, 2, 0, 1, 1, false),   // odd window, uneven strides and pads
		Q(1, 11, 9, 6, 5, 3, 2, 1, 0, 0, 0, 0, true),     // VALID, odd window 5x3
		Q(1, 3, 3, 2, 2, 2, 1, 1, 3, 3, 3, 3, true),      // windows entirely in the padding
		Q(2, 32, 33, 64, 3, 3, 2, 2, 0, 1, 1, 1, true),
	};
	std::vector<PoolCase> v;
	for (bool fallback : {false, true})
		for (bool max : {false, true})
			for (const auto& q : shapes)
				v.push_back({q, max, fallback});
	return v;
}

INSTANTIATE_TEST_SUITE_P(Shapes, PoolF16, ::testing::ValuesIn(pool_f16_cases()),
			 [](const auto& info) { return pool_name(info.param); });

class PoolF16Special : public ::testing::TestWithParam<bool> {};

// max_pool: -inf in the input and as padding (a window of -inf gives
// -inf), NaN propagates (as lax.max); the results are exact.
TEST_P(PoolF16Special, MaxPoolInfAndNan)
{
	REQUIRE_F16();
	const ref::PoolParams q = Q(1, 6, 7, 3, 3, 3, 1, 1, 1, 1, 1, 1, false);
	std::vector<float> xf = random_vector(q.x_size(), 11, -8.0f, 8.0f);
	for (uint32_t h = 0; h < 6; h++) // channel 0 of rows 0..5, columns 0..3: all -inf
		for (uint32_t wi = 0; wi < 4; wi++)
			xf[(h * 7 + wi) * 3] = -INFINITY;
	xf[(2 * 7 + 5) * 3 + 1] = NAN;
	xf[(5 * 7 + 6) * 3 + 2] = -NAN;
	xf[(0 * 7 + 6) * 3 + 2] = INFINITY;
	std::vector<uint16_t> x = to_f16(xf);
	const std::vector<float> want = round_f16(ref::pool(q, from_f16(x), true));
	const std::vector<float> got = from_f16(run_pool_f16(q, true, x, GetParam()));
	EXPECT_MATCHES(got, want, 0.0);
	std::size_t bad = 0;
	for (std::size_t i = 0; i < got.size(); i++)
		bad += !(std::isnan(want[i]) ? std::isnan(got[i]) : f32_bits(got[i]) == f32_bits(want[i]));
	EXPECT_EQ(bad, 0u);
	EXPECT_EQ(got[0], -INFINITY); // (0, 0) channel 0: -inf input and padding only
	EXPECT_TRUE(std::isnan(got[(2 * 7 + 5) * 3 + 1]));
}

// avg_pool sums in f32: window sums beyond f16's range average back into
// it; an f16 sum would overflow to inf.
TEST_P(PoolF16Special, AvgPoolSumsInF32)
{
	REQUIRE_F16();
	for (bool incl : {true, false}) {
		const ref::PoolParams q = Q(1, 5, 5, 3, 3, 3, 1, 1, 1, 1, 1, 1, incl);
		std::vector<uint16_t> x = random_f16(q.x_size(), 12, 50000.0f, 65504.0f);
		const std::vector<float> want = round_f16(ref::pool(q, from_f16(x), false));
		const std::vector<float> got = from_f16(run_pool_f16(q, false, x, GetParam()));
		EXPECT_MATCHES(got, want, kTol);
		for (float v : got)
			ASSERT_TRUE(std::isfinite(v));
	}
}

INSTANTIATE_TEST_SUITE_P(Devices, PoolF16Special, ::testing::Values(false, true),
			 [](const auto& info) { return info.param ? "Fallback" : "Default"; });

// ------------------------------------------------------------ benchmarks

// f16 beside ops_conv_test's ConvBench (f32): the same shapes on the
// default device (conv_texel_f16 and conv_dw_texel_f16 on a CPU device).
TEST(ConvF16Bench, DISABLED_Resnet3x3AndDepthwise)
{
	REQUIRE_F16();
	const ref::ConvParams shapes[] = {
		P(1, 56, 56, 64, 3, 3, 64, {1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1}),
		P(1, 112, 112, 32, 3, 3, 32, {1, 1, 0, 0, 0, 0, 32, 0, 1, 1, 1, 1}),
	};
	for (const ref::ConvParams& c : shapes) {
		std::vector<uint16_t> x = random_f16(c.x_size(), 1), w = random_f16(c.w_size(), 2);
		std::vector<uint16_t> bias = random_f16(c.F, 3), y(c.y_size());
		Program p = conv_program(c, true, F16);
		Bindings b(p);
		b.host(0, x);
		b.host(1, w);
		b.host(2, bias);
		b.host(3, y);
		executor(false).run(p.tensors, p.ops, b.mem);
		constexpr int kReps = 5;
		const auto t0 = std::chrono::steady_clock::now();
		for (int i = 0; i < kReps; i++)
			executor(false).run(p.tensors, p.ops, b.mem);
		const double ms =
			std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / kReps;
		std::printf("f16 conv %s: %.2f ms\n", conv_name(c).c_str(), ms);
	}
}

// ------------------------------------------------------ devices without f16

TEST(ConvF16Device, RefusedNamingTheOpWithoutF16)
{
	ASSERT_FALSE(NoF16Device::get().device->info().f16);
	rt::Executor* ex = &no_f16_executor();

	Program conv = conv_program(P(1, 5, 5, 4, 3, 3, 8, {1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1}), true, F16);
	std::string e = run_error(*ex, conv);
	EXPECT_NE(e.find("op 0 (Conv): tensor 0 is f16, which this device"), std::string::npos) << e;
	EXPECT_NE(e.find("shaderFloat16"), std::string::npos) << e;

	const ref::PoolParams q = Q(1, 4, 4, 3, 2, 2, 2, 2, 0, 0, 0, 0, true);
	Program avg = pool_program(q, false, F16);
	e = run_error(*ex, avg);
	EXPECT_NE(e.find("op 0 (avg_pool): tensor 0 is f16"), std::string::npos) << e;
	Program mx = pool_program(q, true, F16);
	e = run_error(*ex, mx);
	EXPECT_NE(e.find("op 0 (max_pool): tensor 0 is f16"), std::string::npos) << e;

	// the f32 ops still run there
	Program conv32 = conv_program(P(1, 5, 5, 4, 3, 3, 8), false, FLAXDRM_DTYPE_F32);
	EXPECT_EQ(run_error(*ex, conv32), "");
	Program pool32 = pool_program(q, true, FLAXDRM_DTYPE_F32);
	EXPECT_EQ(run_error(*ex, pool32), "");
}

} // namespace
