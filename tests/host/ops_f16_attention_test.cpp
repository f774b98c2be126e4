// f16 dot_product_attention (FLAXDRM_OP_ATTENTION), softmax and
// log_softmax on the runtime: q, k, v, output (and x, y) f16, the optional
// attention mask i32; on the default device (CPU texel path for attention)
// and the fallback device (storage-buffer path), and refused by name on a
// device without f16.
//
// Two checks each:
// - against the double-precision references (reference_norm.hpp,
//   reference_elementwise.hpp) of the same f16 inputs, rounded to f16:
//   NMSE <= 1e-6. Rounding the output to f16 alone costs a relative error
//   of up to 2^-11 per element (an NMSE near 1e-7); f32 arithmetic adds
//   about 1e-7 relative to the logits, i.e. a relative error of ~1e-7 *
//   |logit| in each weight: below 1e-4 for the |logits| of about 1000 used
//   here, an NMSE contribution under 1e-8. So 1e-6 holds for attention too
//   (the project limit is 5e-4), while an f16 path that computed in f16, or
//   stored, strided or offset anything as f32, is off by far more.
// - against the f32 op on the same inputs, each output rounded to f16: the
//   f16 path is the f32 computation with f16 loads and one rounding at the
//   store, so every element is within one f16 ulp of it (one, not zero, as
//   a device may round f32 -> f16 otherwise than to nearest even), NaN and
//   infinities exactly where the f32 path has them, and a result in f16's
//   subnormal range may come back as a zero of the same sign (Vulkan lets
//   devices flush f16 denormals). This is how fully masked attention rows
//   and +-inf / NaN softmax rows are checked: they behave as in f32.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "f16_test_util.hpp"
#include "flaxdrm_rules.h"
#include "ops_conv_util.hpp"
#include "reference_elementwise.hpp"
#include "reference_norm.hpp"

namespace {

using namespace flaxdrm::optest;
namespace ref = flaxdrm::ref;

constexpr double kTol = 1e-6; // NMSE, see above

const char* device_name(const ::testing::TestParamInfo<bool>& info)
{
	return info.param ? "Fallback" : "Default";
}

// f16 bits as integers that are ordered like the values they encode, so
// that neighbouring f16 values differ by one.
int ordered(uint16_t b)
{
	return (b & 0x8000) ? -int(b & 0x7fff) : int(b);
}

// got (f16) is the f32 path's result want32 rounded to f16, to one ulp;
// specials exact; a subnormal result may be flushed to a zero.
::testing::AssertionResult matches_f32_path(const std::vector<uint16_t>& got, const std::vector<float>& want32)
{
	if (got.size() != want32.size())
		return ::testing::AssertionFailure() << "size " << got.size() << " != " << want32.size();
	for (std::size_t i = 0; i < got.size(); i++) {
		const uint16_t w = f16_bits(want32[i]), g = got[i];
		bool ok;
		if (f16_is_nan(w) || f16_is_nan(g))
			ok = f16_is_nan(w) && f16_is_nan(g);
		else if ((w & 0x7fff) == 0x7c00 || (g & 0x7fff) == 0x7c00) // infinities
			ok = w == g || std::abs(ordered(g) - ordered(w)) <= 1;
		else if (f16_is_subnormal(w) && (g & 0x7fff) == 0)
			ok = (g & 0x8000) == (w & 0x8000);
		else
			ok = std::abs(ordered(g) - ordered(w)) <= 1;
		if (!ok)
			return ::testing::AssertionFailure() << "element " << i << ": got " << f16_value(g) << " (0x"
							     << std::hex << g << "), f32 path " << std::dec
							     << want32[i] << " (f16 0x" << std::hex << w << ")";
	}
	return ::testing::AssertionSuccess();
}

// ------------------------------------------------------------ attention

struct Shape {
	uint32_t B, Lq, Lk, H, D, Dv;
};

std::string shape_name(const Shape& s)
{
	return "B" + std::to_string(s.B) + " Lq" + std::to_string(s.Lq) + " Lk" + std::to_string(s.Lk) + " H" +
	       std::to_string(s.H) + " D" + std::to_string(s.D) + " Dv" + std::to_string(s.Dv);
}

struct Mask {
	std::vector<int32_t> data;
	std::size_t dims[4] = {1, 1, 1, 1};
};

// f16-exact inputs (the values an f16 tensor holds).
struct Inputs {
	std::vector<float> q, k, v;
	Inputs(const Shape& s, uint32_t seed, float spread = 1.0f)
	{
		std::mt19937 gen(seed);
		std::normal_distribution<float> dist(0.0f, 1.0f);
		auto fill = [&](std::size_t n, float sd) {
			std::vector<float> x(n);
			for (auto& e : x)
				e = dist(gen) * sd;
			return round_f16(x);
		};
		q = fill(std::size_t(s.B) * s.Lq * s.H * s.D, spread);
		k = fill(std::size_t(s.B) * s.Lk * s.H * s.D, spread);
		v = fill(std::size_t(s.B) * s.Lk * s.H * s.Dv, 1.0f);
	}
};

// One dot_product_attention op of the given dtype for q, k, v and the
// output; returns the output as floats, and its f16 bits in *bits.
std::vector<float> run_attention(bool fallback, uint32_t dtype, const Shape& s, const Inputs& in, Mask* mask,
				 bool causal, float scale = 0.0f, std::vector<uint16_t>* bits = nullptr)
{
	Program p;
	const uint32_t tq = p.input({s.B, s.Lq, s.H, s.D}, dtype);
	const uint32_t tk = p.input({s.B, s.Lk, s.H, s.D}, dtype);
	const uint32_t tv = p.input({s.B, s.Lk, s.H, s.Dv}, dtype);
	const uint32_t to = p.tensor(FLAXDRM_TENSOR_OUTPUT, {s.B, s.Lq, s.H, s.Dv}, dtype);
	std::vector<uint32_t> ins = {tq, tk, tv};
	uint32_t flags = causal ? FLAXDRM_ATTN_CAUSAL : 0;
	uint32_t tm = 0;
	if (mask) {
		tm = p.input({uint32_t(mask->dims[0]), uint32_t(mask->dims[1]), uint32_t(mask->dims[2]),
			      uint32_t(mask->dims[3])},
			     FLAXDRM_DTYPE_I32);
		ins.push_back(tm);
		flags |= FLAXDRM_ATTN_MASK;
	}
	p.op(FLAXDRM_OP_ATTENTION, 0, ins, {to}, {flags, std::bit_cast<uint32_t>(scale)});
	const std::size_t no = std::size_t(s.B) * s.Lq * s.H * s.Dv;
	Bindings b(p);
	std::vector<float> q = in.q, k = in.k, v = in.v, o(no, -7.0f);
	std::vector<uint16_t> qh = to_f16(in.q), kh = to_f16(in.k), vh = to_f16(in.v), oh(no, 0x7e00);
	if (dtype == FLAXDRM_DTYPE_F16) {
		b.host(tq, qh);
		b.host(tk, kh);
		b.host(tv, vh);
		b.host(to, oh);
	} else {
		b.host(tq, q);
		b.host(tk, k);
		b.host(tv, v);
		b.host(to, o);
	}
	if (mask)
		b.host(tm, mask->data);
	executor(fallback).run(p.tensors, p.ops, b.mem);
	if (dtype != FLAXDRM_DTYPE_F16)
		return o;
	if (bits)
		*bits = oh;
	return from_f16(oh);
}

std::vector<float> attention_reference(const Shape& s, const Inputs& in, const Mask* mask, bool causal,
				       float scale = 0.0f)
{
	const double sc = scale != 0.0f ? double(scale) : 1.0 / std::sqrt(double(s.D));
	return round_f16(ref::attention(in.q, in.k, in.v, s.B, s.Lq, s.Lk, s.H, s.D, s.Dv, sc,
					mask ? &mask->data : nullptr, mask ? mask->dims : nullptr, causal));
}

// Runs the f16 op and checks it against the reference and the f32 path;
// returns its output.
std::vector<float> expect_attention_matches(bool fallback, const Shape& s, const Inputs& in, Mask* mask,
					    bool causal, float scale = 0.0f)
{
	std::vector<uint16_t> bits;
	const std::vector<float> o = run_attention(fallback, FLAXDRM_DTYPE_F16, s, in, mask, causal, scale, &bits);
	EXPECT_MATCHES(o, attention_reference(s, in, mask, causal, scale), kTol);
	EXPECT_TRUE(matches_f32_path(bits, run_attention(fallback, FLAXDRM_DTYPE_F32, s, in, mask, causal, scale)));
	return o;
}

class AttentionF16 : public ::testing::TestWithParam<bool> {};

TEST_P(AttentionF16, MatchesReferenceOnTheSameF16Inputs)
{
	REQUIRE_F16();
	// Head dims 8 and 64 (vec4 reads) and odd ones (scalar reads, a
	// partial last vec4 of the output), sequence lengths 1, 7, 129 and
	// 512 with different query and key lengths, one and several heads and
	// batches.
	const Shape shapes[] = {
		{1, 1, 1, 1, 8, 8},       {1, 1, 7, 1, 8, 8},        {2, 7, 129, 3, 8, 8},
		{1, 129, 7, 2, 64, 64},   {1, 129, 512, 2, 64, 64},  {1, 512, 129, 1, 64, 64},
		{2, 129, 7, 2, 13, 13},   {1, 7, 1, 4, 13, 5},       {1, 512, 512, 1, 8, 8},
		{3, 7, 129, 2, 8, 13},
	};
	uint32_t seed = 100;
	for (const Shape& s : shapes) {
		const Inputs in(s, seed++);
		for (bool causal : {false, true}) {
			SCOPED_TRACE(shape_name(s) + (causal ? " causal" : ""));
			expect_attention_matches(GetParam(), s, in, nullptr, causal);
		}
	}
}

TEST_P(AttentionF16, MasksAndFullyMaskedRowsAsInF32)
{
	REQUIRE_F16();
	// A fully masked row (every logit the lowest f32) averages all Lk
	// values uniformly, as in the f32 path and JAX, also under CAUSAL.
	const struct {
		Shape s;
		std::vector<std::size_t> mdims;
		double keep;
		bool causal;
	} cases[] = {
		{{2, 7, 129, 2, 8, 8}, {1, 1, 1, 129}, 0.6, false},   // padding mask
		{{2, 7, 129, 2, 8, 8}, {2, 2, 7, 129}, 0.3, false},
		{{1, 129, 129, 2, 64, 64}, {1, 2, 129, 129}, 0.3, true},
		{{1, 129, 33, 1, 13, 13}, {1, 1, 129, 1}, 0.5, true}, // whole query rows
		{{1, 33, 33, 1, 64, 64}, {1, 1, 33, 33}, 0.0, false}, // everything masked
		{{1, 33, 33, 1, 64, 64}, {1, 1, 33, 33}, 0.0, true},
	};
	uint32_t seed = 200;
	for (const auto& c : cases) {
		const Inputs in(c.s, seed++);
		Mask m;
		std::size_t n = 1;
		for (int d = 0; d < 4; d++)
			n *= m.dims[d] = c.mdims[d];
		std::mt19937 gen(seed++);
		std::bernoulli_distribution keep(c.keep);
		m.data.resize(n);
		for (auto& x : m.data)
			x = keep(gen) ? (int32_t(gen() % 7) - 3) | 1 : 0; // any non-zero keeps
		// fully masked rows in masks with a query axis
		if (c.mdims[2] > 1)
			for (std::size_t r = 0; r < n / c.mdims[3]; r += 3)
				for (std::size_t j = 0; j < c.mdims[3]; j++)
					m.data[r * c.mdims[3] + j] = 0;
		SCOPED_TRACE(shape_name(c.s) + (c.causal ? " causal" : "") + " keep " + std::to_string(c.keep));
		expect_attention_matches(GetParam(), c.s, in, &m, c.causal);
	}

	// The uniform average explicitly: row 5 of a causal 16 x 16 masked out.
	const Shape s{1, 16, 16, 1, 8, 8};
	const Inputs in(s, 9);
	Mask m;
	m.dims[2] = m.dims[3] = 16;
	m.data.assign(256, 1);
	for (int j = 0; j < 16; j++)
		m.data[5 * 16 + j] = 0;
	const std::vector<float> o = run_attention(GetParam(), FLAXDRM_DTYPE_F16, s, in, &m, true);
	for (uint32_t e = 0; e < 8; e++) {
		double avg = 0;
		for (uint32_t j = 0; j < 16; j++)
			avg += in.v[j * 8 + e];
		EXPECT_LE(std::abs(ordered(f16_bits(o[5 * 8 + e])) - ordered(f16_bits(float(avg / 16)))), 1) << e;
	}
}

TEST_P(AttentionF16, LargeLogitsStreamThroughTheRunningMax)
{
	REQUIRE_F16();
	// Logits about 1000 plus N(0, 3): exp overflows f32 without the max
	// subtracted. The key offset grows along the keys in one head (every
	// key block raises the running max, so the running sum and outputs
	// are rescaled) and shrinks in the other.
	const Shape s{2, 129, 129, 2, 16, 16};
	Inputs in(s, 300);
	for (uint32_t b = 0; b < s.B; b++)
		for (uint32_t h = 0; h < s.H; h++) {
			for (uint32_t i = 0; i < s.Lq; i++)
				in.q[((b * s.Lq + i) * s.H + h) * s.D] = 32.0f;
			for (uint32_t j = 0; j < s.Lk; j++) {
				const float trend = h == 0 ? 0.0625f * float(j) : -0.0625f * float(j);
				in.k[((b * s.Lk + j) * s.H + h) * s.D] = round_f16({32.0f + trend})[0];
			}
		}
	for (bool causal : {false, true}) {
		SCOPED_TRACE(causal ? "causal" : "");
		expect_attention_matches(GetParam(), s, in, nullptr, causal, 1.0f);
	}

	// q and k near the top of f16's range: logits near 1e9, which only
	// f32 arithmetic holds (f16 logits would be infinite and the outputs
	// NaN); the softmax is one-hot, the output exactly one value row.
	const Shape big{1, 33, 129, 2, 8, 8};
	Inputs huge(big, 301);
	for (auto* x : {&huge.q, &huge.k})
		for (auto& e : *x)
			e = round_f16({std::clamp(e * 20000.0f, -65504.0f, 65504.0f)})[0];
	for (float x : expect_attention_matches(GetParam(), big, huge, nullptr, false))
		ASSERT_TRUE(std::isfinite(x));
}

TEST_P(AttentionF16, NaNInAQueryStaysInItsRow)
{
	REQUIRE_F16();
	const Shape s{1, 20, 30, 2, 16, 16};
	Inputs in(s, 10);
	in.q[(3 * 2 + 1) * 16 + 4] = NAN; // query 3, head 1
	const std::vector<float> o = run_attention(GetParam(), FLAXDRM_DTYPE_F16, s, in, nullptr, false);
	for (uint32_t i = 0; i < 20; i++)
		for (uint32_t h = 0; h < 2; h++)
			for (uint32_t e = 0; e < 16; e++) {
				const float x = o[(i * 2 + h) * 16 + e];
				if (i == 3 && h == 1)
					ASSERT_TRUE(std::isnan(x));
				else
					ASSERT_TRUE(std::isfinite(x));
			}
}

INSTANTIATE_TEST_SUITE_P(Devices, AttentionF16, ::testing::Values(false, true), device_name);

// ------------------------------------------------------------ softmax

// One softmax / log_softmax op over x [rows, len] of the given dtype.
std::vector<float> run_softmax(bool fallback, uint32_t dtype, bool log, uint32_t rows, uint32_t len,
			       const std::vector<float>& x, std::vector<uint16_t>* bits = nullptr)
{
	Program p;
	const uint32_t tx = p.input({rows, len}, dtype);
	const uint32_t ty = p.tensor(FLAXDRM_TENSOR_OUTPUT, {rows, len}, dtype);
	p.op(log ? FLAXDRM_OP_LOG_SOFTMAX : FLAXDRM_OP_SOFTMAX, 0, {tx}, {ty});
	Bindings b(p);
	std::vector<float> x32 = x, y32(x.size(), -7.0f);
	std::vector<uint16_t> xh = to_f16(x), yh(x.size(), 0x7e00);
	if (dtype == FLAXDRM_DTYPE_F16) {
		b.host(tx, xh);
		b.host(ty, yh);
	} else {
		b.host(tx, x32);
		b.host(ty, y32);
	}
	executor(fallback).run(p.tensors, p.ops, b.mem);
	if (dtype != FLAXDRM_DTYPE_F16)
		return y32;
	if (bits)
		*bits = yh;
	return from_f16(yh);
}

// Runs the f16 op and checks it against the reference and the f32 path;
// returns its output's f16 bits.
std::vector<uint16_t> expect_softmax_matches(bool fallback, bool log, uint32_t rows, uint32_t len,
					     const std::vector<float>& x)
{
	std::vector<uint16_t> bits;
	const std::vector<float> y = run_softmax(fallback, FLAXDRM_DTYPE_F16, log, rows, len, x, &bits);
	EXPECT_MATCHES(y, round_f16(ref::softmax(x, len, log)), kTol);
	EXPECT_TRUE(matches_f32_path(bits, run_softmax(fallback, FLAXDRM_DTYPE_F32, log, rows, len, x)));
	return bits;
}

class SoftmaxF16 : public ::testing::TestWithParam<bool> {};

TEST_P(SoftmaxF16, MatchesReferenceOnTheSameF16Inputs)
{
	REQUIRE_F16();
	// Rows of 1, 3, 5 (scalar module), 8, 1000 and 4096 (vec4 rows, 8
	// bytes per f16 vec4); few rows (a workgroup per row) and many (a
	// thread per row on CPU devices), short rows (a thread per row on
	// GPUs) and long ones.
	const struct {
		uint32_t rows, len;
	} shapes[] = {{1, 1}, {70, 1}, {5, 3}, {100, 3}, {7, 5}, {70, 5}, {9, 8},
		      {3, 1000}, {65, 1000}, {2, 4096}, {65, 4096}, {3, 4099}};
	uint32_t seed = 400;
	for (const auto& sh : shapes) {
		std::vector<float> x = round_f16(random_vector(std::size_t(sh.rows) * sh.len, seed++, -10.0f, 10.0f));
		// a row of large logits: exp overflows without the max subtracted
		if (sh.rows > 1)
			for (uint32_t j = 0; j < sh.len; j++)
				x[sh.len + j] = round_f16({60000.0f + 50.0f * float(j % 7)})[0];
		for (bool log : {false, true}) {
			SCOPED_TRACE(std::to_string(sh.rows) + " x " + std::to_string(sh.len) + (log ? " log" : ""));
			expect_softmax_matches(GetParam(), log, sh.rows, sh.len, x);
		}
	}
}

TEST_P(SoftmaxF16, InfinityAndNaNAsInF32)
{
	REQUIRE_F16();
	// As in JAX and the f32 path: a row of all -inf is NaN, a -inf entry
	// gives 0 (log: -inf), a NaN or +inf anywhere gives a NaN row. Rows
	// with +-65504 (log_softmax below f16's range: -inf).
	const float inf = INFINITY;
	for (uint32_t len : {1u, 3u, 5u, 8u, 99u, 1000u, 4096u}) {
		const uint32_t rows = 7;
		std::vector<float> x(std::size_t(rows) * len);
		for (uint32_t j = 0; j < len; j++) {
			const float ramp = float(j % 17) * 0.25f;
			x[0 * len + j] = -inf;
			x[1 * len + j] = j == 1 % len ? -inf : ramp;
			x[2 * len + j] = j == 2 % len ? NAN : 1.0f;
			x[3 * len + j] = j == 3 % len ? inf : 1.0f;
			x[4 * len + j] = j % 2 ? 65504.0f : -65504.0f;
			x[5 * len + j] = j % 3 ? -inf : ramp;
			x[6 * len + j] = ramp;
		}
		for (bool log : {false, true}) {
			SCOPED_TRACE("len " + std::to_string(len) + (log ? " log" : ""));
			const std::vector<uint16_t> bits = expect_softmax_matches(GetParam(), log, rows, len, x);
			EXPECT_TRUE(f16_is_nan(bits[0]));
			if (len > 1) {
				EXPECT_EQ(bits[len + 1], log ? 0xfc00 : 0x0000);
			}
		}
	}
}

INSTANTIATE_TEST_SUITE_P(Devices, SoftmaxF16, ::testing::Values(false, true), device_name);

// ------------------------------------------------------ devices without f16

Program attention_program(uint32_t dtype, bool mask)
{
	Program p;
	std::vector<uint32_t> in = {p.input({1, 4, 2, 8}, dtype), p.input({1, 5, 2, 8}, dtype),
				    p.input({1, 5, 2, 8}, dtype)};
	if (mask)
		in.push_back(p.input({1, 1, 4, 5}, FLAXDRM_DTYPE_I32));
	p.op(FLAXDRM_OP_ATTENTION, 0, in, {p.tensor(FLAXDRM_TENSOR_OUTPUT, {1, 4, 2, 8}, dtype)},
	     {mask ? uint32_t(FLAXDRM_ATTN_MASK) : 0u});
	return p;
}

Program softmax_program(uint32_t opcode, uint32_t dtype)
{
	Program p;
	const uint32_t x = p.input({3, 8}, dtype);
	p.op(opcode, 0, {x}, {p.tensor(FLAXDRM_TENSOR_OUTPUT, {3, 8}, dtype)});
	return p;
}

TEST(F16Device, AttentionAndSoftmaxAreRefusedNamingTheOp)
{
	ASSERT_FALSE(NoF16Device::get().device->info().f16);
	rt::Executor* ex = &no_f16_executor();
	for (bool mask : {false, true}) {
		Program p = attention_program(FLAXDRM_DTYPE_F16, mask);
		const std::string e = run_error(*ex, p);
		EXPECT_NE(e.find("op 0 (dot_product_attention): tensor 0 is f16, which this device"), std::string::npos)
			<< e;
		EXPECT_NE(e.find("shaderFloat16"), std::string::npos) << e;
		Program f = attention_program(FLAXDRM_DTYPE_F32, mask);
		EXPECT_EQ(run_error(*ex, f), "");
	}
	for (uint32_t opcode : {FLAXDRM_OP_SOFTMAX, FLAXDRM_OP_LOG_SOFTMAX}) {
		Program p = softmax_program(opcode, FLAXDRM_DTYPE_F16);
		const std::string e = run_error(*ex, p);
		EXPECT_NE(e.find("op 0 (" + std::string(flaxdrm_op_name(opcode)) + "): tensor 0 is f16"),
			  std::string::npos)
			<< e;
		Program f = softmax_program(opcode, FLAXDRM_DTYPE_F32);
		EXPECT_EQ(run_error(*ex, f), "");
	}
}

TEST(F16Device, AttentionAndSoftmaxRunWhereTheDeviceHasF16)
{
	REQUIRE_F16();
	for (bool mask : {false, true}) {
		Program p = attention_program(FLAXDRM_DTYPE_F16, mask);
		EXPECT_EQ(run_error(executor(false), p), "");
	}
	for (uint32_t opcode : {FLAXDRM_OP_SOFTMAX, FLAXDRM_OP_LOG_SOFTMAX}) {
		Program p = softmax_program(opcode, FLAXDRM_DTYPE_F16);
		EXPECT_EQ(run_error(executor(false), p), "");
	}
}

} // namespace
