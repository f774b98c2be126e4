// f16 reductions (sum, mean, max), layout ops (reshape, transpose, slice,
// concatenate) and Embed lookup on the runtime, on the default and the
// fallback device; their refusal on a device without f16.
//
// References and tolerances:
// - reductions: computed in double (ref::reduce) from the same f16 inputs
//   and rounded to f16; NMSE <= 1e-6. The runtime accumulates in f32 and
//   rounds once to f16: one f16 ulp is 2^-11 relative, so rounding alone
//   gives an NMSE near 1e-7, and f32 accumulation error (about 2^-24 *
//   sqrt(R) relative) is far below that; a wrong element stride or
//   offset gives NMSE near 1. NaN and infinities exactly where the
//   reference has them (max and sum propagate NaN, sums overflow to inf
//   on the f16 store).
// - layout ops and Embed: bit-exact against plain index-walking copies of
//   the uint16_t bits (ref::transpose/slice/concat, embed_bits below), on
//   random bit patterns that include NaN payloads, infinities and -0;
//   outputs start as a sentinel so unwritten elements show.
#include <cmath>
#include <iterator>
#include <string>
#include <tuple>

#include <gtest/gtest.h>

#include "f16_test_util.hpp"
#include "flaxdrm_rules.h"
#include "ops_conv_util.hpp"
#include "reference_elementwise.hpp"

namespace {

using namespace flaxdrm::optest;
namespace ref = flaxdrm::ref;
using Dims = std::vector<uint32_t>;

constexpr uint32_t F16 = FLAXDRM_DTYPE_F16;
constexpr uint16_t kSentinel = 0xdead;
constexpr double kReduceTol = 1e-6;

uint64_t numel(const Dims& d)
{
	uint64_t n = 1;
	for (uint32_t v : d)
		n *= v;
	return n;
}

std::string name_of(const Dims& d)
{
	std::string s;
	for (uint32_t v : d)
		s += (s.empty() ? "" : "x") + std::to_string(v);
	return s.empty() ? "scalar" : s;
}

// Random f16 bit patterns over all 65536 (about 3% NaNs with assorted
// payloads, signalling ones included), led by -0, +-inf and two NaNs.
std::vector<uint16_t> random_bits(std::size_t n, uint32_t seed)
{
	std::mt19937 gen(seed);
	std::uniform_int_distribution<uint32_t> dist(0, 0xffff);
	std::vector<uint16_t> v(n);
	for (auto& b : v)
		b = uint16_t(dist(gen));
	const uint16_t specials[] = {0x8000, 0x7c00, 0xfc00, 0x7c01, 0xfe5a};
	for (std::size_t i = 0; i < n && i < std::size(specials); i++)
		v[i] = specials[i];
	return v;
}

// The first mismatching element, or "" if got == want bit for bit.
::testing::AssertionResult same_bits(const std::vector<uint16_t>& got, const std::vector<uint16_t>& want)
{
	if (got.size() != want.size())
		return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
	std::size_t bad = 0, first = 0;
	for (std::size_t i = 0; i < got.size(); i++)
		if (got[i] != want[i] && bad++ == 0)
			first = i;
	if (bad == 0)
		return ::testing::AssertionSuccess();
	return ::testing::AssertionFailure() << bad << " of " << got.size() << " differ, first at " << first
					     << ": got 0x" << std::hex << got[first] << " want 0x" << want[first];
}

// Runs a program whose tensors are all f16 except `i32` ones: inputs from
// `data` by tensor index, outputs into it (pre-filled with the sentinel).
void run(bool fallback, const Program& p, std::vector<std::vector<uint16_t>>& data,
	 std::vector<std::vector<int32_t>>* i32 = nullptr)
{
	Bindings b(p);
	data.resize(p.tensors.size());
	for (uint32_t t = 0; t < p.tensors.size(); t++) {
		if (p.tensors[t].dtype == FLAXDRM_DTYPE_I32) {
			b.host(t, (*i32)[t]);
			continue;
		}
		if (p.tensors[t].kind == FLAXDRM_TENSOR_OUTPUT)
			data[t].assign(flaxdrm_tensor_bytes(&p.tensors[t]) / 2, kSentinel);
		b.host(t, data[t]);
	}
	executor(fallback).run(p.tensors, p.ops, b.mem);
}

// ------------------------------------------------------------- reductions

struct ReduceCase {
	Dims dims;
	uint32_t axes;
};

class F16Reduce : public ::testing::TestWithParam<std::tuple<bool, ReduceCase>> {};

Dims reduced_dims(const Dims& d, uint32_t axes, bool keep)
{
	Dims out;
	for (std::size_t k = 0; k < d.size(); k++) {
		if (!((axes >> k) & 1))
			out.push_back(d[k]);
		else if (keep)
			out.push_back(1);
	}
	return out;
}

// Sum, mean and max of x (f16 bits) over c.axes, with and without
// keepdims, against the double reference rounded to f16.
void expect_reductions(bool fallback, const ReduceCase& c, const std::vector<uint16_t>& xh)
{
	const std::vector<float> x = from_f16(xh);
	const struct {
		uint32_t opcode;
		ref::Reduce op;
		const char* name;
	} ops[] = {{FLAXDRM_OP_REDUCE_SUM, ref::Reduce::Sum, "sum"},
		   {FLAXDRM_OP_REDUCE_MEAN, ref::Reduce::Mean, "mean"},
		   {FLAXDRM_OP_REDUCE_MAX, ref::Reduce::Max, "max"}};
	for (const auto& o : ops) {
		const std::vector<float> want = round_f16(ref::reduce(o.op, x, c.dims, c.axes));
		for (uint32_t keep = 0; keep < 2; keep++) {
			SCOPED_TRACE(std::string(o.name) + " keepdims " + std::to_string(keep));
			Program p;
			const uint32_t tx = p.input(c.dims, F16);
			const uint32_t ty = p.tensor(FLAXDRM_TENSOR_OUTPUT, reduced_dims(c.dims, c.axes, keep), F16);
			p.op(o.opcode, 0, {tx}, {ty}, {c.axes, keep});
			std::vector<std::vector<uint16_t>> data(2);
			data[tx] = xh;
			run(fallback, p, data);
			EXPECT_MATCHES(from_f16(data[ty]), want, kReduceTol);
		}
	}
}

TEST_P(F16Reduce, MatchesDoubleReference)
{
	REQUIRE_F16();
	const auto& [fallback, c] = GetParam();
	expect_reductions(fallback, c, to_f16(random_vector(numel(c.dims), 71, -2.0f, 2.0f)));
}

class F16ReduceSpecials : public ::testing::TestWithParam<bool> {};

// Rows of NaN, inf, inf - inf and an f16 overflow, reduced along the row
// (scalar and vec4 reads) and along the column.
TEST_P(F16ReduceSpecials, NaNInfinityAndOverflow)
{
	REQUIRE_F16();
	const bool fallback = GetParam();
	for (uint32_t len : {9u, 16u}) {
		SCOPED_TRACE("row length " + std::to_string(len));
		std::vector<float> x = random_vector(5 * len, 72);
		x[1 * len + 3] = NAN;
		x[2 * len + 1] = INFINITY;
		x[3 * len + 0] = INFINITY;
		x[3 * len + len - 1] = -INFINITY;
		for (uint32_t j = 0; j < len; j++)
			x[4 * len + j] = 65504.0f; // sums past the f16 range: inf
		const std::vector<uint16_t> xh = to_f16(x);
		expect_reductions(fallback, {{5, len}, 2}, xh);
		expect_reductions(fallback, {{5, len}, 1}, xh);
	}
}

INSTANTIATE_TEST_SUITE_P(
	Shapes, F16Reduce,
	::testing::Combine(::testing::Values(false, true),
			   ::testing::Values(ReduceCase{{1}, 1}, ReduceCase{{7}, 1}, ReduceCase{{1031}, 1},
					     ReduceCase{{7, 5}, 1},	     // first
					     ReduceCase{{7, 5}, 2},	     // last
					     ReduceCase{{3, 7, 5}, 2},	     // middle
					     ReduceCase{{3, 7, 5}, 5},	     // first and last
					     ReduceCase{{2, 3, 5, 7}, 0xa}, // two apart
					     ReduceCase{{2, 3, 5, 7}, 0xf}, // all
					     ReduceCase{{2, 1, 4, 1, 6, 1}, 0x2a}, // reduced size-1 dims
					     ReduceCase{{8, 64}, 2},	     // vec4 along the run
					     ReduceCase{{1031, 8}, 1},	     // vec4 across outputs
					     ReduceCase{{3, 2048}, 2},	     // a workgroup per output
					     ReduceCase{{2, 9000}, 2},	     // large workgroups
					     ReduceCase{{4, 1031}, 2}, ReduceCase{{512, 768}, 1},
					     ReduceCase{{512, 768}, 2}, ReduceCase{{512, 768}, 3})),
	[](const auto& info) {
		const ReduceCase& c = std::get<1>(info.param);
		return std::string(std::get<0>(info.param) ? "Fallback_" : "Default_") + name_of(c.dims) + "_axes" +
		       std::to_string(c.axes);
	});

INSTANTIATE_TEST_SUITE_P(Devices, F16ReduceSpecials, ::testing::Values(false, true),
			 [](const auto& info) { return info.param ? "Fallback" : "Default"; });

// ------------------------------------------------------------- layout ops

class F16Layout : public ::testing::TestWithParam<bool> {};

TEST_P(F16Layout, ReshapeCopiesBits)
{
	REQUIRE_F16();
	for (const auto& [xd, yd] : std::vector<std::pair<Dims, Dims>>{
		     {{1}, {1, 1}}, {{7}, {7, 1}}, {{1031}, {1031}}, {{3, 5, 7}, {15, 7}}, {{512, 768}, {768, 512}}}) {
		SCOPED_TRACE(name_of(xd) + " -> " + name_of(yd));
		Program p;
		const uint32_t tx = p.input(xd, F16);
		const uint32_t ty = p.tensor(FLAXDRM_TENSOR_OUTPUT, yd, F16);
		p.op(FLAXDRM_OP_RESHAPE, 0, {tx}, {ty});
		std::vector<std::vector<uint16_t>> data(2);
		data[tx] = random_bits(numel(xd), 81);
		run(GetParam(), p, data);
		EXPECT_TRUE(same_bits(data[ty], data[tx]));
	}
}

TEST_P(F16Layout, TransposeCopiesBits)
{
	REQUIRE_F16();
	const struct {
		Dims x;
		std::vector<uint32_t> perm;
	} cases[] = {
		{{1, 1}, {1, 0}},
		{{7, 5}, {1, 0}},
		{{1, 7}, {1, 0}},
		{{3, 5, 7}, {2, 0, 1}},
		{{3, 5, 7}, {1, 0, 2}}, // odd contiguous runs: 2-byte words
		{{3, 5, 6}, {1, 0, 2}}, // even runs: 4-byte words
		{{3, 5, 8}, {1, 0, 2}}, // runs of 8: 16-byte words
		{{3, 5, 7}, {0, 1, 2}}, // identity
		{{2, 3, 5, 7}, {3, 1, 0, 2}},
		{{3, 1, 5, 7}, {2, 3, 1, 0}},
		{{2, 3, 4, 6}, {0, 2, 1, 3}},
		{{512, 768}, {1, 0}},
	};
	for (const auto& c : cases) {
		Dims yd(c.x.size());
		std::string s = name_of(c.x) + " perm";
		for (std::size_t d = 0; d < c.x.size(); d++) {
			yd[d] = c.x[c.perm[d]];
			s += " " + std::to_string(c.perm[d]);
		}
		SCOPED_TRACE(s);
		Program p;
		const uint32_t tx = p.input(c.x, F16);
		const uint32_t ty = p.tensor(FLAXDRM_TENSOR_OUTPUT, yd, F16);
		p.op(FLAXDRM_OP_TRANSPOSE, 0, {tx}, {ty}, c.perm);
		std::vector<std::vector<uint16_t>> data(2);
		data[tx] = random_bits(numel(c.x), 82);
		run(GetParam(), p, data);
		EXPECT_TRUE(same_bits(data[ty], ref::transpose(data[tx], c.x, c.perm)));
	}
}

TEST_P(F16Layout, SliceCopiesBitsAtOddStarts)
{
	REQUIRE_F16();
	const struct {
		Dims x;
		std::vector<uint32_t> start;
		Dims y;
	} cases[] = {
		{{1}, {0}, {1}},
		{{7}, {3}, {1}},
		{{1031}, {3}, {1001}}, // odd start: 2-byte aligned only
		{{1031}, {2}, {1000}}, // 4-byte words
		{{1031}, {8}, {1016}}, // 16-byte words
		{{1031}, {1}, {1030}},
		{{7, 9}, {1, 3}, {5, 5}},
		{{7, 9}, {3, 0}, {3, 9}},
		{{4, 6, 10}, {1, 1, 3}, {2, 5, 7}},
		{{4, 6, 10}, {1, 1, 2}, {2, 5, 8}},
		{{3, 5, 7, 9}, {0, 1, 2, 3}, {3, 3, 5, 5}},
		{{512, 768}, {1, 1}, {511, 767}},
		{{512, 768}, {255, 0}, {256, 768}},
	};
	for (const auto& c : cases) {
		std::string s = name_of(c.x) + " start";
		for (uint32_t v : c.start)
			s += " " + std::to_string(v);
		SCOPED_TRACE(s + " size " + name_of(c.y));
		Program p;
		const uint32_t tx = p.input(c.x, F16);
		const uint32_t ty = p.tensor(FLAXDRM_TENSOR_OUTPUT, c.y, F16);
		p.op(FLAXDRM_OP_SLICE, 0, {tx}, {ty}, c.start);
		std::vector<std::vector<uint16_t>> data(2);
		data[tx] = random_bits(numel(c.x), 83);
		run(GetParam(), p, data);
		EXPECT_TRUE(same_bits(data[ty], ref::slice(data[tx], c.x, c.start, c.y)));
	}
}

// Inputs whose size along the axis is odd, even or a multiple of 8, so
// blocks land at every alignment in y.
void expect_concat(bool fallback, const Dims& base, uint32_t axis, uint32_t n)
{
	std::vector<Dims> xds;
	for (uint32_t k = 0; k < n; k++) {
		Dims d = base;
		const uint32_t sizes[] = {1, 3, 8, 2, 7, 16, 5, 4};
		d[axis] = sizes[(k + axis) % 8];
		xds.push_back(d);
	}
	Dims yd = base;
	yd[axis] = 0;
	for (const Dims& d : xds)
		yd[axis] += d[axis];
	SCOPED_TRACE(name_of(base) + " axis " + std::to_string(axis) + " inputs " + std::to_string(n) + " -> " +
		     name_of(yd));
	Program p;
	std::vector<uint32_t> in;
	for (const Dims& d : xds)
		in.push_back(p.input(d, F16));
	const uint32_t ty = p.tensor(FLAXDRM_TENSOR_OUTPUT, yd, F16);
	p.op(FLAXDRM_OP_CONCAT, 0, in, {ty}, {axis});
	std::vector<std::vector<uint16_t>> data(p.tensors.size()), xs;
	for (uint32_t k = 0; k < n; k++) {
		data[in[k]] = random_bits(numel(xds[k]), 84 + k);
		xs.push_back(data[in[k]]);
	}
	run(fallback, p, data);
	EXPECT_TRUE(same_bits(data[ty], ref::concat(xs, xds, axis)));
}

TEST_P(F16Layout, ConcatCopiesBitsAlongEachAxis)
{
	REQUIRE_F16();
	for (uint32_t n = 1; n <= 8; n++) {
		expect_concat(GetParam(), {7}, 0, n);
		for (uint32_t axis = 0; axis < 3; axis++)
			expect_concat(GetParam(), {3, 5, 7}, axis, n);
	}
	expect_concat(GetParam(), {2, 3, 5, 8}, 3, 4);
	expect_concat(GetParam(), {4, 16}, 1, 3);
	expect_concat(GetParam(), {1031, 1}, 1, 3);
	expect_concat(GetParam(), {512, 768}, 0, 2);
	expect_concat(GetParam(), {512, 768}, 1, 2);
}

// Several layout ops through f16 temps in one program: slice at an odd
// start, transpose, concatenate with the input, reshape.
TEST_P(F16Layout, ChainThroughTemps)
{
	REQUIRE_F16();
	Program p;
	const uint32_t tx = p.input({5, 9}, F16);
	const uint32_t ts = p.tensor(FLAXDRM_TENSOR_TEMP, {5, 7}, F16);
	const uint32_t tt = p.tensor(FLAXDRM_TENSOR_TEMP, {7, 5}, F16);
	const uint32_t tc = p.tensor(FLAXDRM_TENSOR_TEMP, {16, 5}, F16);
	const uint32_t ty = p.tensor(FLAXDRM_TENSOR_OUTPUT, {80}, F16);
	const uint32_t tx2 = p.input({9, 5}, F16);
	p.op(FLAXDRM_OP_SLICE, 0, {tx}, {ts}, {0, 1});
	p.op(FLAXDRM_OP_TRANSPOSE, 0, {ts}, {tt}, {1, 0});
	p.op(FLAXDRM_OP_CONCAT, 0, {tt, tx2}, {tc}, {0});
	p.op(FLAXDRM_OP_RESHAPE, 0, {tc}, {ty});
	std::vector<std::vector<uint16_t>> data(p.tensors.size());
	data[tx] = random_bits(45, 85);
	data[tx2] = random_bits(45, 86);
	run(GetParam(), p, data);
	const auto s = ref::slice(data[tx], {5, 9}, {0, 1}, {5, 7});
	const auto t = ref::transpose(s, {5, 7}, {1, 0});
	EXPECT_TRUE(same_bits(data[ty], ref::concat<uint16_t>({t, data[tx2]}, {{7, 5}, {9, 5}}, 0)));
}

INSTANTIATE_TEST_SUITE_P(Devices, F16Layout, ::testing::Values(false, true),
			 [](const auto& info) { return info.param ? "Fallback" : "Default"; });

// ------------------------------------------------------------------ Embed

// table rows gathered by index as jnp.take: [-N, 0) from the end, 0x7e00
// (f16's NaN) outside [-N, N).
std::vector<uint16_t> embed_bits(const std::vector<int32_t>& idx, const std::vector<uint16_t>& table, uint32_t N,
				 uint32_t F)
{
	std::vector<uint16_t> y(idx.size() * F);
	for (std::size_t i = 0; i < idx.size(); i++) {
		int64_t row = idx[i];
		if (row < 0)
			row += N;
		for (uint32_t f = 0; f < F; f++)
			y[i * F + f] = row >= 0 && row < int64_t(N) ? table[std::size_t(row) * F + f] : 0x7e00;
	}
	return y;
}

class F16Embed : public ::testing::TestWithParam<bool> {};

TEST_P(F16Embed, LookupCopiesBitsNegativeFromTheEndOutOfRangeNaN)
{
	REQUIRE_F16();
	struct Case {
		Dims idx_dims;
		uint32_t rows, F;
	};
	for (const Case& c : std::vector<Case>{{{}, 5, 3},
					       {{7}, 10, 4},
					       {{2, 3}, 1, 5},
					       {{9}, 33, 7},
					       {{3, 50}, 1000, 17},
					       {{1, 2, 1, 2, 1}, 4, 1},
					       {{512}, 1000, 768}}) {
		SCOPED_TRACE(name_of(c.idx_dims) + " rows " + std::to_string(c.rows) + " F " + std::to_string(c.F));
		std::vector<int32_t> idx(numel(c.idx_dims));
		for (std::size_t i = 0; i < idx.size(); i++)
			// -rows - 1 (NaN), [-rows, 0) (from the end), [0, rows), rows, rows + 1 (NaN)
			idx[i] = int32_t((i * 7919) % (2 * c.rows + 3)) - int32_t(c.rows) - 1;
		if (idx.size() > 2) {
			idx[0] = INT32_MIN;
			idx[1] = INT32_MAX;
		}
		Dims y_dims = c.idx_dims;
		y_dims.push_back(c.F);
		Program p;
		const uint32_t ti = p.input(c.idx_dims, FLAXDRM_DTYPE_I32);
		const uint32_t tt =
			p.tensor(FLAXDRM_TENSOR_VARIABLE, {c.rows, c.F}, F16, 1, "params", "embedding");
		const uint32_t ty = p.tensor(FLAXDRM_TENSOR_OUTPUT, y_dims, F16);
		p.op(FLAXDRM_OP_EMBED, 1, {ti, tt}, {ty});
		std::vector<std::vector<uint16_t>> data(3);
		std::vector<std::vector<int32_t>> i32(3);
		i32[ti] = idx;
		data[tt] = random_bits(size_t(c.rows) * c.F, 87);
		run(GetParam(), p, data, &i32);
		EXPECT_TRUE(same_bits(data[ty], embed_bits(idx, data[tt], c.rows, c.F)));
	}
}

INSTANTIATE_TEST_SUITE_P(Devices, F16Embed, ::testing::Values(false, true),
			 [](const auto& info) { return info.param ? "Fallback" : "Default"; });

// ------------------------------------------------------ devices without f16

// Each op with f16 tensors is refused by name; f32 still runs.
TEST(F16LayoutDevice, RefusedWithoutF16)
{
	ASSERT_FALSE(NoF16Device::get().device->info().f16);
	rt::Executor* ex = &no_f16_executor();
	const auto expect_refused = [&](const Program& p, const std::string& what) {
		const std::string e = run_error(*ex, p);
		EXPECT_NE(e.find("op 0 (" + what + "): tensor 0 is f16, which this device"), std::string::npos) << e;
	};
	{
		Program p;
		const uint32_t x = p.input({4, 6}, F16);
		p.op(FLAXDRM_OP_REDUCE_SUM, 0, {x}, {p.tensor(FLAXDRM_TENSOR_OUTPUT, {4}, F16)}, {2, 0});
		expect_refused(p, "sum");
	}
	{
		Program p;
		const uint32_t x = p.input({4, 6}, F16);
		p.op(FLAXDRM_OP_REDUCE_MEAN, 0, {x}, {p.tensor(FLAXDRM_TENSOR_OUTPUT, {4, 1}, F16)}, {2, 1});
		expect_refused(p, "mean");
	}
	{
		Program p;
		const uint32_t x = p.input({4, 6}, F16);
		p.op(FLAXDRM_OP_REDUCE_MAX, 0, {x}, {p.tensor(FLAXDRM_TENSOR_OUTPUT, {6}, F16)}, {1, 0});
		expect_refused(p, "max");
	}
	{
		Program p;
		const uint32_t x = p.input({4, 6}, F16);
		p.op(FLAXDRM_OP_RESHAPE, 0, {x}, {p.tensor(FLAXDRM_TENSOR_OUTPUT, {24}, F16)});
		expect_refused(p, "reshape");
	}
	{
		Program p;
		const uint32_t x = p.input({4, 6}, F16);
		p.op(FLAXDRM_OP_TRANSPOSE, 0, {x}, {p.tensor(FLAXDRM_TENSOR_OUTPUT, {6, 4}, F16)}, {1, 0});
		expect_refused(p, "transpose");
	}
	{
		Program p;
		const uint32_t x = p.input({4, 6}, F16);
		p.op(FLAXDRM_OP_SLICE, 0, {x}, {p.tensor(FLAXDRM_TENSOR_OUTPUT, {3, 5}, F16)}, {1, 1});
		expect_refused(p, "slice");
	}
	{
		Program p;
		const uint32_t x = p.input({4, 6}, F16), x2 = p.input({4, 6}, F16);
		p.op(FLAXDRM_OP_CONCAT, 0, {x, x2}, {p.tensor(FLAXDRM_TENSOR_OUTPUT, {8, 6}, F16)}, {0});
		expect_refused(p, "concatenate");
	}
	{
		Program p;
		const uint32_t i = p.input({3}, FLAXDRM_DTYPE_I32);
		const uint32_t t = p.tensor(FLAXDRM_TENSOR_VARIABLE, {5, 4}, F16, 1, "params", "embedding");
		p.op(FLAXDRM_OP_EMBED, 1, {i, t}, {p.tensor(FLAXDRM_TENSOR_OUTPUT, {3, 4}, F16)});
		const std::string e = run_error(*ex, p);
		EXPECT_NE(e.find("op 0 (Embed): tensor 1 is f16, which this device"), std::string::npos) << e;
	}
	{
		// bf16 moves through the same 16-bit copy: refused here too
		Program p;
		const uint32_t x = p.input({4, 6}, FLAXDRM_DTYPE_BF16);
		p.op(FLAXDRM_OP_TRANSPOSE, 0, {x}, {p.tensor(FLAXDRM_TENSOR_OUTPUT, {6, 4}, FLAXDRM_DTYPE_BF16)},
		     {1, 0});
		const std::string e = run_error(*ex, p);
		EXPECT_NE(e.find("op 0 (transpose): tensor 0 has 2-byte elements"), std::string::npos) << e;
	}
	// f32 layout ops and reductions still run
	Program p;
	const uint32_t x = p.input({3, 5});
	const uint32_t t = p.tensor(FLAXDRM_TENSOR_TEMP, {5, 3});
	const uint32_t y = p.output({5});
	p.op(FLAXDRM_OP_TRANSPOSE, 0, {x}, {t}, {1, 0});
	p.op(FLAXDRM_OP_REDUCE_SUM, 0, {t}, {y}, {2, 0});
	std::vector<float> xv = random_vector(15, 88), yv(5);
	Bindings b(p);
	b.host(x, xv);
	b.host(y, yv);
	ex->run(p.tensors, p.ops, b.mem);
	EXPECT_MATCHES(yv, ref::reduce(ref::Reduce::Sum, xv, {3, 5}, 1), 1e-12);
}

} // namespace
