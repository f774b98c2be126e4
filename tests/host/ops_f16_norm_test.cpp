// f16 LayerNorm, RMSNorm, GroupNorm and BatchNorm (inference, and training
// with the running-statistics outputs) on the default device (CPU texel
// path) and the fallback device (storage-buffer path): every float operand
// f16, computed in f32, rounded once on store.
//
// References: tests/host/reference_norm.hpp in double on the same
// f16-rounded inputs and parameters, rounded to f16. Tolerance NMSE <= 1e-6:
// the runtime's f32 result and the double one round to the same f16 but
// where they straddle a rounding boundary (one f16 ulp, 2^-11 relative,
// at a few elements); even a full f16 rounding of every element gives an
// NMSE near 1e-7, while an output written as f32, or an offset counted in
// 4-byte elements, gives garbage. Stricter still, F16MatchesF32PathRoundedOnce
// checks that the f16 ops give exactly the f32 ops' results (on the same
// rounded inputs) rounded to f16: the same arithmetic, one rounding.
#include <algorithm>
#include <bit>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "f16_test_util.hpp"
#include "flaxdrm_rules.h"
#include "ops_conv_util.hpp"
#include "reference_norm.hpp"

namespace {

using namespace flaxdrm::optest;
namespace ref = flaxdrm::ref;

constexpr double kTol = 1e-6;
constexpr uint32_t kModule = 1;
constexpr uint32_t F16 = FLAXDRM_DTYPE_F16;
constexpr uint32_t F32 = FLAXDRM_DTYPE_F32;

std::size_t product(const std::vector<uint32_t>& dims)
{
	std::size_t n = 1;
	for (uint32_t d : dims)
		n *= d;
	return n;
}

// ------------------------------------------------------------ running one op

// A norm op's float operands, as f32 values already rounded to f16 (so the
// f32 path and the references see exactly what the f16 path sees).
struct NormData {
	std::vector<float> x, scale, bias, mean, var;
};

// What a run wrote: y and (BatchNorm training) the new running statistics,
// as f32 values (from f16 bits when dtype is f16).
struct NormOut {
	std::vector<float> y, new_mean, new_var;
};

struct NormOp {
	uint32_t opcode;
	std::vector<uint32_t> dims;
	uint32_t attr1 = 0; // LayerNorm/RMSNorm: axes; GroupNorm: groups; BatchNorm: momentum bits
	uint32_t flags = 0; // FLAXDRM_NORM_*
	float eps = 1e-6f;
	bool in_place = false; // BatchNorm training: new statistics into mean and var
};

// Host storage for one tensor in either dtype.
struct HostTensor {
	std::vector<uint16_t> h;
	std::vector<float> f;
	void set(uint32_t dtype, const std::vector<float>& v)
	{
		if (dtype == F16)
			h = to_f16(v);
		else
			f = v;
	}
	void fill(uint32_t dtype, std::size_t n)
	{
		// NaN (f16 0x7e01, f32 likewise): anything not written shows
		if (dtype == F16)
			h.assign(n, 0x7e01);
		else
			f.assign(n, std::bit_cast<float>(0x7fc00001u));
	}
	void bind(Bindings& b, uint32_t t, uint32_t dtype)
	{
		if (dtype == F16)
			b.host(t, h);
		else
			b.host(t, f);
	}
	std::vector<float> get(uint32_t dtype) const { return dtype == F16 ? from_f16(h) : f; }
};

NormOut run_norm(rt::Executor& ex, const NormOp& o, const NormData& d, uint32_t dtype)
{
	const uint32_t C = o.dims.back();
	const bool bn = o.opcode == FLAXDRM_OP_BATCH_NORM;
	const bool training = bn && (o.flags & FLAXDRM_NORM_TRAINING);
	Program p;
	std::vector<uint32_t> in, out;
	std::vector<HostTensor> host;
	std::vector<uint32_t> writable;
	auto add = [&](uint32_t t, const std::vector<float>* v, std::size_t n) {
		host.resize(p.tensors.size());
		if (v)
			host[t].set(dtype, *v);
		else
			host[t].fill(dtype, n);
		return t;
	};
	in.push_back(add(p.input(o.dims, dtype), &d.x, 0));
	uint32_t tm = 0, tv = 0;
	if (bn) {
		tm = add(p.tensor(FLAXDRM_TENSOR_VARIABLE, {C}, dtype, kModule, "batch_stats", "mean"), &d.mean, 0);
		tv = add(p.tensor(FLAXDRM_TENSOR_VARIABLE, {C}, dtype, kModule, "batch_stats", "var"), &d.var, 0);
		in.push_back(tm);
		in.push_back(tv);
	}
	if (o.flags & FLAXDRM_NORM_SCALE)
		in.push_back(add(p.tensor(FLAXDRM_TENSOR_VARIABLE, {C}, dtype, kModule, "params", "scale"), &d.scale, 0));
	if (o.flags & FLAXDRM_NORM_BIAS)
		in.push_back(add(p.tensor(FLAXDRM_TENSOR_VARIABLE, {C}, dtype, kModule, "params", "bias"), &d.bias, 0));
	const uint32_t ty = add(p.tensor(FLAXDRM_TENSOR_OUTPUT, o.dims, dtype), nullptr, d.x.size());
	out.push_back(ty);
	uint32_t tnm = 0, tnv = 0;
	if (training) {
		if (o.in_place) {
			tnm = tm;
			tnv = tv;
		} else {
			tnm = add(p.tensor(FLAXDRM_TENSOR_OUTPUT, {C}, dtype), nullptr, C);
			tnv = add(p.tensor(FLAXDRM_TENSOR_OUTPUT, {C}, dtype), nullptr, C);
		}
		out.push_back(tnm);
		out.push_back(tnv);
	}
	p.op(o.opcode, kModule, in, out, {f32_bits(o.eps), o.attr1, o.flags});

	Bindings b(p);
	for (uint32_t t = 0; t < p.tensors.size(); t++)
		host[t].bind(b, t, dtype);
	if (training && o.in_place)
		b.mem[tm].writable = b.mem[tv].writable = true;
	ex.run(p.tensors, p.ops, b.mem);

	NormOut r;
	r.y = host[ty].get(dtype);
	if (training) {
		r.new_mean = host[tnm].get(dtype);
		r.new_var = host[tnv].get(dtype);
	}
	return r;
}

// Random operands, rounded to f16. x in [lo, hi) (+ offset).
NormData random_data(const NormOp& o, uint32_t seed, float lo = -1.0f, float hi = 1.0f, float offset = 0.0f)
{
	const uint32_t C = o.dims.back();
	NormData d;
	d.x = random_vector(product(o.dims), seed, lo, hi);
	for (float& v : d.x)
		v += offset;
	d.x = round_f16(d.x);
	d.scale = round_f16(random_vector(C, seed + 1, 0.5f, 1.5f));
	d.bias = round_f16(random_vector(C, seed + 2));
	d.mean = round_f16(random_vector(C, seed + 3));
	d.var = round_f16(random_vector(C, seed + 4, 0.2f, 3.0f));
	return d;
}

// The double-precision reference of the op on d, rounded to f16 (or, for
// the f32 op, to f32 only).
NormOut reference(const NormOp& o, const NormData& d, uint32_t dtype = F16)
{
	const std::size_t C = o.dims.back();
	const auto* sp = (o.flags & FLAXDRM_NORM_SCALE) ? &d.scale : nullptr;
	const auto* bp = (o.flags & FLAXDRM_NORM_BIAS) ? &d.bias : nullptr;
	NormOut r;
	switch (o.opcode) {
	case FLAXDRM_OP_LAYER_NORM:
	case FLAXDRM_OP_RMS_NORM: {
		const uint32_t axes = o.attr1 ? o.attr1 : 1;
		std::size_t n = 1;
		for (uint32_t i = 0; i < axes; i++)
			n *= o.dims[o.dims.size() - 1 - i];
		r.y = o.opcode == FLAXDRM_OP_RMS_NORM ? ref::rms_norm(d.x, n, C, o.eps, sp)
						      : ref::layer_norm(d.x, n, C, o.eps, sp, bp);
		break;
	}
	case FLAXDRM_OP_GROUP_NORM:
		r.y = ref::group_norm(d.x, o.dims[0], C, o.attr1, o.eps, sp, bp);
		break;
	default:
		if (o.flags & FLAXDRM_NORM_TRAINING) {
			const auto t = ref::batch_norm_train(d.x, C, d.mean, d.var, o.eps,
							     std::bit_cast<float>(o.attr1), sp, bp);
			r.y = t.y;
			r.new_mean = dtype == F16 ? round_f16(t.new_mean) : t.new_mean;
			r.new_var = dtype == F16 ? round_f16(t.new_var) : t.new_var;
		} else {
			r.y = ref::batch_norm_infer(d.x, C, d.mean, d.var, o.eps, sp, bp);
		}
	}
	if (dtype == F16)
		r.y = round_f16(r.y);
	return r;
}

std::string describe(const NormOp& o)
{
	std::string s = std::string(flaxdrm_op_name(o.opcode)) + " [";
	for (std::size_t i = 0; i < o.dims.size(); i++)
		s += (i ? "," : "") + std::to_string(o.dims[i]);
	s += "] attr1 " + std::to_string(o.attr1) + " flags " + std::to_string(o.flags);
	return s + (o.in_place ? " in place" : "");
}

// Runs o in f16 on the fallback or default device against the reference.
void expect_matches_reference(bool fallback, const NormOp& o, const NormData& d)
{
	SCOPED_TRACE(describe(o) + (fallback ? " (fallback device)" : " (default device)"));
	const NormOut got = run_norm(executor(fallback), o, d, F16);
	const NormOut want = reference(o, d);
	EXPECT_MATCHES(got.y, want.y, kTol);
	if (!want.new_mean.empty()) {
		EXPECT_MATCHES(got.new_mean, want.new_mean, kTol);
		EXPECT_MATCHES(got.new_var, want.new_var, kTol);
	}
}

std::string device_name(bool fallback)
{
	return fallback ? "Fallback" : "Default";
}

// ------------------------------------------------------------ LayerNorm, RMSNorm

struct LnCase {
	std::vector<uint32_t> dims;
	uint32_t axes; // 0 means 1
	float offset = 0.0f;
};

class LayerNormF16 : public ::testing::TestWithParam<std::tuple<bool, LnCase>> {};

TEST_P(LayerNormF16, MatchesReference)
{
	REQUIRE_F16();
	const auto& [fallback, c] = GetParam();
	for (uint32_t flags : {0u, 1u, 2u, 3u}) {
		NormOp o{FLAXDRM_OP_LAYER_NORM, c.dims, c.axes, flags};
		const NormData d = random_data(o, 1 + uint32_t(product(c.dims)) + flags, -1.0f, 1.0f, c.offset);
		expect_matches_reference(fallback, o, d);
		if (flags & FLAXDRM_NORM_BIAS)
			continue; // RMSNorm has no bias
		o.opcode = FLAXDRM_OP_RMS_NORM;
		expect_matches_reference(fallback, o, d);
	}
}

INSTANTIATE_TEST_SUITE_P(
	Shapes, LayerNormF16,
	::testing::Combine(::testing::Bool(),
			   ::testing::Values(LnCase{{1}, 0}, LnCase{{1, 5}, 1}, LnCase{{3, 3}, 0}, LnCase{{7, 37}, 1},
					     LnCase{{2, 3, 64}, 1}, LnCase{{64, 768}, 1},
					     // one lane a row on the fallback device too: vec4, scalar
					     LnCase{{4100, 8}, 1}, LnCase{{4099, 5}, 1},
					     // several axes: rows of S * C
					     LnCase{{5, 6, 7}, 2}, LnCase{{2, 3, 4, 5}, 3}, LnCase{{40, 3, 20}, 2},
					     // a long row (workgroup tree); a large mean
					     LnCase{{2, 5001}, 1}, LnCase{{40, 96}, 1, 1000.0f})),
	[](const auto& info) { return device_name(std::get<0>(info.param)) + "_" + std::to_string(info.index); });

// More than 128 MiB of f16 rows: on lavapipe (maxStorageBufferRange 128
// MiB) the kernel binds them in chunks of whole rows, and a later chunk
// starts inside an aligned binding: at an element offset of 6 (C = 3,
// scalar) or 4 (C = 36, one f16vec4), which an offset counted in 4-byte
// elements gets wrong. Every row is checked (a wrong chunk is a few rows
// among millions: the NMSE of the whole would hide it). Lean on purpose,
// 67M elements: x tiles a random f16 pattern whose period (a prime) no row
// shares, so a shifted read still reads other values, and f16 values come
// from a table.
TEST(NormF16, LayerNormRowsBeyondOneBinding)
{
	REQUIRE_F16();
	std::vector<float> f16_to_f32(65536);
	for (uint32_t b = 0; b < 65536; b++)
		f16_to_f32[b] = f16_value(uint16_t(b));
	const std::vector<uint16_t> pattern = to_f16(random_vector(4099, 50));
	for (bool fallback : {false, true}) {
		// Its own executor with a longer wait than the default 30 s: a
		// cold pipeline compile and 67M elements on the fallback kernels
		// can take longer on a loaded 2-core machine under the sanitizers.
		rt::ExecutorOptions slow;
		slow.timeout_ms = 300000;
		const auto ex = rt::Executor::create(device(fallback), slow);
		for (uint32_t C : {3u, 36u}) {
			SCOPED_TRACE(device_name(fallback) + ", C = " + std::to_string(C));
			const uint32_t rows = uint32_t((128u << 20) / (2 * C) + 64);
			const float eps = 1e-6f;
			std::vector<uint16_t> x(std::size_t(rows) * C), y(x.size(), 0x7e01);
			for (std::size_t i = 0; i < x.size(); i++)
				x[i] = pattern[i % pattern.size()];
			std::vector<float> scale = round_f16(random_vector(C, 51, 0.5f, 1.5f)),
					   bias = round_f16(random_vector(C, 52));
			std::vector<uint16_t> sh = to_f16(scale), bh = to_f16(bias);
			Program p;
			const uint32_t tx = p.input({rows, C}, F16);
			const uint32_t ts = p.tensor(FLAXDRM_TENSOR_VARIABLE, {C}, F16, kModule, "params", "scale");
			const uint32_t tb = p.tensor(FLAXDRM_TENSOR_VARIABLE, {C}, F16, kModule, "params", "bias");
			const uint32_t ty = p.tensor(FLAXDRM_TENSOR_OUTPUT, {rows, C}, F16);
			p.op(FLAXDRM_OP_LAYER_NORM, kModule, {tx, ts, tb}, {ty}, {f32_bits(eps), 1, 3});
			Bindings bind(p);
			bind.host(tx, x);
			bind.host(ts, sh);
			bind.host(tb, bh);
			bind.host(ty, y);
			ex->run(p.tensors, p.ops, bind.mem);

			// Against the double reference unrounded: a row's f16
			// rounding is an NMSE near 1e-7, a row of the wrong
			// elements near 1.
			const uint32_t block = 8192;
			std::size_t bad_rows = 0;
			std::vector<float> xb;
			for (uint32_t r0 = 0; r0 < rows; r0 += block) {
				const uint32_t n = std::min(block, rows - r0);
				xb.resize(std::size_t(n) * C);
				for (std::size_t i = 0; i < xb.size(); i++)
					xb[i] = f16_to_f32[x[std::size_t(r0) * C + i]];
				const std::vector<float> want = ref::layer_norm(xb, C, C, eps, &scale, &bias);
				for (uint32_t r = 0; r < n; r++) {
					double err2 = 0, ref2 = 0;
					for (uint32_t c = 0; c < C; c++) {
						const double w = want[std::size_t(r) * C + c];
						const double g = f16_to_f32[y[(std::size_t(r0) + r) * C + c]];
						err2 += (g - w) * (g - w);
						ref2 += w * w;
					}
					if (!(err2 <= 1e-5 * ref2) && bad_rows++ < 3)
						ADD_FAILURE() << "row " << r0 + r << " of " << rows << ": nmse " << err2 / ref2;
				}
			}
			EXPECT_EQ(bad_rows, 0u);
		}
	}
}

TEST(NormF16, LayerNormNaNAndInfinityStayInTheirRow)
{
	REQUIRE_F16();
	for (bool fallback : {false, true}) {
		for (uint32_t cols : {16u, 37u, 5000u}) {
			SCOPED_TRACE(device_name(fallback) + ", " + std::to_string(cols) + " columns");
			const uint32_t rows = cols == 5000 ? 4 : 64;
			NormOp o{FLAXDRM_OP_LAYER_NORM, {rows, cols}, 1, 0};
			NormData d = random_data(o, 6);
			d.x[1 * cols + 3] = NAN;
			d.x[2 * cols + 5] = INFINITY;
			const NormOut y = run_norm(executor(fallback), o, d, F16);
			o.opcode = FLAXDRM_OP_RMS_NORM;
			const NormOut r = run_norm(executor(fallback), o, d, F16);
			for (uint32_t c = 0; c < cols; c++) {
				ASSERT_TRUE(std::isnan(y.y[1 * cols + c])) << c;
				ASSERT_TRUE(std::isnan(y.y[2 * cols + c])) << c;
				ASSERT_TRUE(std::isfinite(y.y[0 * cols + c])) << c;
				ASSERT_TRUE(std::isfinite(y.y[3 * cols + c])) << c;
				ASSERT_TRUE(std::isnan(r.y[1 * cols + c])) << c;
				ASSERT_TRUE(std::isfinite(r.y[0 * cols + c])) << c;
				ASSERT_TRUE(std::isfinite(r.y[3 * cols + c])) << c;
			}
		}
	}
}

// ------------------------------------------------------------ GroupNorm

struct GnCase {
	std::vector<uint32_t> dims;
	uint32_t groups;
};

class GroupNormF16 : public ::testing::TestWithParam<std::tuple<bool, GnCase>> {};

TEST_P(GroupNormF16, MatchesReference)
{
	REQUIRE_F16();
	const auto& [fallback, c] = GetParam();
	for (uint32_t flags : {0u, 1u, 2u, 3u}) {
		const NormOp o{FLAXDRM_OP_GROUP_NORM, c.dims, c.groups, flags};
		expect_matches_reference(fallback, o, random_data(o, 7 + uint32_t(product(c.dims)) + flags, -1.0f, 3.0f));
	}
}

INSTANTIATE_TEST_SUITE_P(
	Shapes, GroupNormF16,
	::testing::Combine(::testing::Bool(),
			   ::testing::Values(GnCase{{1, 1, 1}, 1}, GnCase{{2, 4, 4, 32}, 32}, GnCase{{1, 5, 7, 12}, 3},
					     GnCase{{3, 9}, 3}, GnCase{{2, 3, 3, 3, 8}, 2}, GnCase{{1, 17, 19, 37}, 37},
					     GnCase{{2, 6, 6, 40}, 5}, GnCase{{2, 5, 5, 15}, 3}, GnCase{{1, 300, 6}, 1},
					     GnCase{{40, 2, 2, 64}, 32}, GnCase{{2, 16, 16, 64}, 32})),
	[](const auto& info) { return device_name(std::get<0>(info.param)) + "_" + std::to_string(info.index); });

TEST(NormF16, GroupNormNaNStaysInItsGroup)
{
	REQUIRE_F16();
	for (bool fallback : {false, true}) {
		SCOPED_TRACE(device_name(fallback));
		// x[2, 3, 12], 3 groups of 4 channels: NaN at n = 1, s = 2, c = 5 (group 1)
		const NormOp o{FLAXDRM_OP_GROUP_NORM, {2, 3, 12}, 3, 3};
		NormData d = random_data(o, 8);
		d.x[(1 * 3 + 2) * 12 + 5] = NAN;
		const NormOut r = run_norm(executor(fallback), o, d, F16);
		for (uint32_t n = 0; n < 2; n++)
			for (uint32_t s = 0; s < 3; s++)
				for (uint32_t c = 0; c < 12; c++) {
					const float v = r.y[(n * 3 + s) * 12 + c];
					if (n == 1 && c / 4 == 1)
						ASSERT_TRUE(std::isnan(v)) << n << " " << s << " " << c;
					else
						ASSERT_TRUE(std::isfinite(v)) << n << " " << s << " " << c;
				}
	}
}

// ------------------------------------------------------------ BatchNorm

struct BnCase {
	std::vector<uint32_t> dims;
};

class BatchNormF16 : public ::testing::TestWithParam<std::tuple<bool, BnCase>> {};

TEST_P(BatchNormF16, InferenceMatchesReference)
{
	REQUIRE_F16();
	const auto& [fallback, c] = GetParam();
	for (uint32_t flags : {0u, 1u, 2u, 3u}) {
		NormOp o{FLAXDRM_OP_BATCH_NORM, c.dims, 0, flags};
		o.eps = 1e-5f;
		expect_matches_reference(fallback, o, random_data(o, 10 + uint32_t(product(c.dims)) + flags, -2.0f, 2.0f));
	}
}

TEST_P(BatchNormF16, TrainingMatchesReference)
{
	REQUIRE_F16();
	const auto& [fallback, c] = GetParam();
	for (uint32_t flags : {0u, 3u, 1u, 2u}) {
		for (bool in_place : {false, true}) {
			for (float momentum : {0.99f, 0.9f}) {
				NormOp o{FLAXDRM_OP_BATCH_NORM, c.dims, f32_bits(momentum), flags | FLAXDRM_NORM_TRAINING};
				o.eps = 1e-5f;
				o.in_place = in_place;
				expect_matches_reference(
					fallback, o, random_data(o, 15 + uint32_t(product(c.dims)) + flags, 1.0f, 4.0f));
			}
		}
	}
}

INSTANTIATE_TEST_SUITE_P(
	Shapes, BatchNormF16,
	::testing::Combine(::testing::Bool(),
			   ::testing::Values(BnCase{{1, 1}}, BnCase{{7}}, BnCase{{5, 3}}, BnCase{{1, 9}},
					     BnCase{{9, 4}}, BnCase{{2, 5, 37}}, BnCase{{3, 5, 132}},
					     BnCase{{4, 13, 11, 40}}, BnCase{{37, 5, 35}}, BnCase{{10000, 3}},
					     BnCase{{8, 14, 14, 64}})),
	[](const auto& info) { return device_name(std::get<0>(info.param)) + "_" + std::to_string(info.index); });

TEST(NormF16, BatchNormMomentumOneKeepsTheStatistics)
{
	REQUIRE_F16();
	for (bool fallback : {false, true}) {
		SCOPED_TRACE(device_name(fallback));
		const NormOp o{FLAXDRM_OP_BATCH_NORM, {50, 6}, f32_bits(1.0f), FLAXDRM_NORM_TRAINING};
		const NormData d = random_data(o, 20);
		const NormOut r = run_norm(executor(fallback), o, d, F16);
		EXPECT_EQ(r.new_mean, d.mean);
		EXPECT_EQ(r.new_var, d.var);
	}
}

TEST(NormF16, BatchNormNaNStaysInItsChannel)
{
	REQUIRE_F16();
	for (bool fallback : {false, true}) {
		for (uint32_t C : {5u, 8u}) {
			SCOPED_TRACE(device_name(fallback) + ", C = " + std::to_string(C));
			const NormOp o{FLAXDRM_OP_BATCH_NORM, {40, C}, f32_bits(0.9f), FLAXDRM_NORM_TRAINING | 3};
			NormData d = random_data(o, 21);
			d.x[17 * C + 2] = NAN; // channel 2
			const NormOut r = run_norm(executor(fallback), o, d, F16);
			for (uint32_t i = 0; i < r.y.size(); i++)
				ASSERT_EQ(std::isnan(r.y[i]), i % C == 2) << i;
			for (uint32_t c = 0; c < C; c++) {
				ASSERT_EQ(std::isnan(r.new_mean[c]), c == 2) << c;
				ASSERT_EQ(std::isnan(r.new_var[c]), c == 2) << c;
			}
		}
	}
}

// ------------------------------------------------------------ the same arithmetic as f32

// On the same (f16-valued) inputs the f16 ops give exactly the f32 ops'
// results rounded to f16: loads widen exactly, the arithmetic is the f32
// path's, and the store rounds once (to nearest even, as _Float16 does).
// f16 subnormal results may come back as zero of the same sign (Vulkan lets
// a device flush f16 denormals).
TEST(NormF16, F16MatchesF32PathRoundedOnce)
{
	REQUIRE_F16();
	const float m = 0.9f;
	const std::vector<NormOp> ops = {
		{FLAXDRM_OP_LAYER_NORM, {64, 768}, 1, 3},
		{FLAXDRM_OP_LAYER_NORM, {7, 37}, 1, 3},
		{FLAXDRM_OP_LAYER_NORM, {3, 5001}, 1, 1},
		{FLAXDRM_OP_RMS_NORM, {33, 40}, 1, 1},
		{FLAXDRM_OP_RMS_NORM, {5, 6, 7}, 2, 0},
		{FLAXDRM_OP_GROUP_NORM, {2, 6, 6, 40}, 5, 3},
		{FLAXDRM_OP_GROUP_NORM, {1, 17, 19, 37}, 37, 2},
		{FLAXDRM_OP_BATCH_NORM, {8, 14, 14, 64}, 0, 3},
		{FLAXDRM_OP_BATCH_NORM, {8, 14, 14, 64}, f32_bits(m), 3 | FLAXDRM_NORM_TRAINING},
		{FLAXDRM_OP_BATCH_NORM, {37, 5, 35}, f32_bits(m), 1 | FLAXDRM_NORM_TRAINING},
	};
	auto same = [](const std::vector<float>& f16_result, const std::vector<float>& f32_result) {
		std::size_t bad = 0;
		for (std::size_t i = 0; i < f32_result.size(); i++) {
			const uint16_t want = f16_bits(f32_result[i]), got = f16_bits(f16_result[i]);
			const bool ok = f16_is_nan(want) ? f16_is_nan(got)
				      : f16_is_subnormal(want) ? (got == want || got == (want & 0x8000))
								 : got == want;
			if (!ok && bad++ < 3)
				ADD_FAILURE() << "element " << i << ": f16 op 0x" << std::hex << got
					      << ", f32 op rounded 0x" << want;
		}
		return bad;
	};
	for (bool fallback : {false, true})
		for (const NormOp& o : ops) {
			SCOPED_TRACE(describe(o) + " " + device_name(fallback));
			const NormData d = random_data(o, 30, -2.0f, 3.0f);
			const NormOut h = run_norm(executor(fallback), o, d, F16);
			const NormOut f = run_norm(executor(fallback), o, d, F32);
			EXPECT_EQ(same(h.y, f.y), 0u);
			EXPECT_EQ(same(h.new_mean, f.new_mean), 0u);
			EXPECT_EQ(same(h.new_var, f.new_var), 0u);
		}
}

// ------------------------------------------------------------ devices without f16

TEST(NormF16Device, RefusedByNameWithoutF16)
{
	ASSERT_FALSE(NoF16Device::get().device->info().f16);
	rt::Executor* ex = &no_f16_executor();
	const NormOp ln{FLAXDRM_OP_LAYER_NORM, {4, 8}, 1, 3};
	const NormOp bn{FLAXDRM_OP_BATCH_NORM, {4, 8}, f32_bits(0.9f), 3 | FLAXDRM_NORM_TRAINING};
	const NormOp gn{FLAXDRM_OP_GROUP_NORM, {2, 2, 8}, 2, 0};
	const NormOp rms{FLAXDRM_OP_RMS_NORM, {4, 8}, 1, 0};
	for (const NormOp* o : {&ln, &bn, &gn, &rms}) {
		const std::string name = flaxdrm_op_name(o->opcode);
		const NormData d = random_data(*o, 40);
		try {
			run_norm(*ex, *o, d, F16);
			ADD_FAILURE() << name << ": expected rt::Error";
		} catch (const rt::Error& e) {
			EXPECT_EQ(e.status(), -EINVAL);
			const std::string msg = e.what();
			EXPECT_NE(msg.find("op 0 (" + name + "): tensor 0 is f16, which this device"), std::string::npos)
				<< msg;
			EXPECT_NE(msg.find("shaderFloat16"), std::string::npos) << msg;
		}
		// f32 still runs there, and right (ops_norm_test's tolerances)
		const NormOut r = run_norm(*ex, *o, d, F32);
		const NormOut want = reference(*o, d, F32);
		EXPECT_TRUE(nmse_within(r.y, want.y, 1e-11)) << name;
		if (!want.new_mean.empty()) {
			EXPECT_TRUE(nmse_within(r.new_mean, want.new_mean, 1e-12)) << name;
			EXPECT_TRUE(nmse_within(r.new_var, want.new_var, 1e-12)) << name;
		}
	}
}

} // namespace
