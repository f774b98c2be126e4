// Dense family on the runtime: DenseGeneral (several contracted axes and
// several feature axes), batched matmul (transposes, broadcast batch dims),
// Embed lookup (I32 indices, NaN outside the table) and Embed.attend,
// against the CPU references, on the default and the fallback device.
#include <sstream>

#include <gtest/gtest.h>

#include "ops_conv_util.hpp"
#include "reference_elementwise.hpp"

namespace {

using namespace flaxdrm::optest;
namespace ref = flaxdrm::ref;

constexpr double kTol = 1e-9;

// ------------------------------------------------------------ DenseGeneral

class DenseGeneral : public ::testing::TestWithParam<DenseCase> {};

TEST_P(DenseGeneral, MatchesReference)
{
	const DenseCase& c = GetParam();
	const uint32_t n = c.n ? c.n : 1;
	const std::size_t lead = c.x_dims.size() - n;
	std::vector<uint32_t> w_dims(c.x_dims.begin() + long(lead), c.x_dims.end());
	w_dims.insert(w_dims.end(), c.f_dims.begin(), c.f_dims.end());
	std::vector<uint32_t> y_dims(c.x_dims.begin(), c.x_dims.begin() + long(lead));
	y_dims.insert(y_dims.end(), c.f_dims.begin(), c.f_dims.end());
	const uint64_t M = prod(c.x_dims, 0, lead), K = prod(c.x_dims, lead), N = prod(c.f_dims);

	Program p;
	const uint32_t tx = p.input(c.x_dims);
	const uint32_t tw = p.variable(1, "kernel", w_dims);
	std::vector<uint32_t> in{tx, tw};
	if (c.bias)
		in.push_back(p.variable(1, "bias", c.f_dims));
	const uint32_t ty = p.output(y_dims);
	p.op(FLAXDRM_OP_DENSE, 1, in, {ty}, {c.n});

	std::vector<float> x = random_vector(M * K, 11), w = random_vector(K * N, 12), bias = random_vector(N, 13);
	std::vector<float> y(M * N, -1.0f);
	Bindings b(p);
	b.host(tx, x);
	b.host(tw, w);
	if (c.bias)
		b.host(in[2], bias);
	b.host(ty, y);
	executor(c.fallback).run(p.tensors, p.ops, b.mem);
	EXPECT_MATCHES(y, ref::dense(x, w, c.bias ? &bias : nullptr, M, K, N), kTol);
}

std::vector<DenseCase> dense_cases()
{
	const std::vector<DenseCase> base = {
		{{4, 8}, 0, {16}, true, false},          // plain Dense, attrs[0] = 0
		{{4, 8}, 1, {16}, false, false},
		{{3, 5}, 1, {7}, true, false},           // odd
		{{2, 3, 4}, 2, {5}, true, false},        // contract 2 axes
		{{2, 3, 4}, 2, {4, 6}, true, false},     // and 2 feature axes (MHA's out)
		{{5, 16}, 1, {4, 8}, true, false},       // MHA's query: features (heads, head_dim)
		{{2, 3, 4, 2}, 3, {3}, false, false},    // contract 3
		{{3, 4}, 2, {5}, true, false},           // everything contracted: y[5]
		{{6}, 1, {2, 3, 4}, true, false},        // rank-1 x, rank-3 features
		{{1, 2, 2, 2, 2, 8}, 1, {12}, true, false},
		{{33, 2, 64}, 2, {2, 48}, true, false},  // not multiples of tiles
		{{130, 36}, 1, {3, 20}, false, false},
		// Past the CPU GEMM's groups of 8 subgroups x 16 rows and its
		// 128-row slabs of K (barriers): partial row group (150 = 128 +
		// 22), K = 2 slabs + 44, N = 128 + 8; fewer rows than a group
		// (40: 3 subgroups), fewer than a subgroup (7: TM 8); K % 4 != 0
		// takes the R32F variant.
		{{150, 300}, 1, {136}, true, false},
		{{40, 260}, 1, {20}, false, false},
		{{7, 132}, 1, {8}, true, false},
		{{2, 75, 301}, 1, {36}, true, false},
	};
	std::vector<DenseCase> v;
	for (bool fallback : {false, true})
		for (DenseCase c : base) {
			c.fallback = fallback;
			v.push_back(c);
		}
	return v;
}

INSTANTIATE_TEST_SUITE_P(Shapes, DenseGeneral, ::testing::ValuesIn(dense_cases()), [](const auto& info) {
	const DenseCase& c = info.param;
	return ref::dims_name(c.x_dims) + "_n" + std::to_string(c.n) + "_f" + ref::dims_name(c.f_dims) +
	       (c.bias ? "_bias" : "") + (c.fallback ? "_fallback" : "");
});

// ------------------------------------------------------------ matmul

struct MatmulCase {
	std::vector<uint32_t> a, b; // as stored (transposed ones included)
	uint32_t flags;             // bit 0 transposes a, bit 1 b
	bool fallback;
};

class Matmul : public ::testing::TestWithParam<MatmulCase> {};

TEST_P(Matmul, MatchesReference)
{
	const MatmulCase& c = GetParam();
	std::vector<float> a = random_vector(prod(c.a), 21), b = random_vector(prod(c.b), 22);
	std::vector<uint32_t> y_dims;
	const std::vector<float> want = ref::matmul(a, c.a, b, c.b, c.flags & 1, c.flags & 2, &y_dims);
	Program p;
	const uint32_t ta = p.input(c.a), tb = p.input(c.b), ty = p.output(y_dims);
	p.op(FLAXDRM_OP_MATMUL, 0, {ta, tb}, {ty}, {c.flags});
	std::vector<float> y(want.size(), -1.0f);
	Bindings bind(p);
	bind.host(ta, a);
	bind.host(tb, b);
	bind.host(ty, y);
	executor(c.fallback).run(p.tensors, p.ops, bind.mem);
	EXPECT_MATCHES(y, want, kTol);
}

std::vector<MatmulCase> matmul_cases()
{
	const std::vector<MatmulCase> base = {
		{{1, 1}, {1, 1}, 0, false},
		{{4, 8}, {8, 12}, 0, false},                 // plain GEMM path
		{{2, 3, 5, 7}, {7, 9}, 0, false},            // batched a, shared b: one GEMM
		{{5, 7}, {1, 1, 7, 9}, 0, false},            // b with unit batch dims
		{{3, 5, 7}, {3, 7, 9}, 0, false},            // equal batches
		{{3, 1, 5, 7}, {4, 7, 9}, 0, false},         // broadcast both ways
		{{5, 7}, {2, 3, 7, 9}, 0, false},            // a broadcast
		{{7, 5}, {7, 9}, 1, false},                  // a^T
		{{5, 7}, {9, 7}, 2, false},                  // b^T (attention q @ k^T)
		{{2, 7, 5}, {1, 9, 7}, 3, false},            // both
		{{2, 2, 2, 2, 3, 4}, {2, 1, 2, 1, 4, 5}, 0, false}, // rank 6, 4 batch dims
		{{4, 65, 33}, {4, 33, 70}, 0, false},        // not multiples of tiles
		{{2, 130, 64}, {1, 70, 130}, 3, false},      // transposed and larger
		{{1, 3}, {3, 200}, 0, false},                // M = 1
	};
	std::vector<MatmulCase> v;
	for (bool fallback : {false, true})
		for (MatmulCase c : base) {
			c.fallback = fallback;
			v.push_back(c);
		}
	return v;
}

INSTANTIATE_TEST_SUITE_P(Shapes, Matmul, ::testing::ValuesIn(matmul_cases()), [](const auto& info) {
	const MatmulCase& c = info.param;
	return ref::dims_name(c.a) + "_" + ref::dims_name(c.b) + "_t" + std::to_string(c.flags) +
	       (c.fallback ? "_fallback" : "");
});

// ------------------------------------------------------------ Embed

class Embed : public ::testing::TestWithParam<bool> {};

TEST_P(Embed, LookupNegativeFromTheEndOutOfRangeNaN)
{
	const bool fallback = GetParam();
	struct Case {
		std::vector<uint32_t> idx_dims;
		uint32_t rows, F;
	};
	for (const Case& c : std::vector<Case>{{{}, 5, 3}, {{7}, 10, 4}, {{2, 3}, 1, 5}, {{3, 50}, 1000, 17},
					       {{1, 2, 1, 2, 1}, 4, 1}}) {
		SCOPED_TRACE(ref::dims_name(c.idx_dims) + " rows " + std::to_string(c.rows));
		std::vector<int32_t> idx(prod(c.idx_dims));
		for (std::size_t i = 0; i < idx.size(); i++)
			// -rows - 1 (NaN), [-rows, 0) (from the end), [0, rows), rows, rows + 1 (NaN)
			idx[i] = int32_t((i * 7919) % (2 * c.rows + 3)) - int32_t(c.rows) - 1;
		if (idx.size() > 2) {
			idx[0] = INT32_MIN;
			idx[1] = INT32_MAX;
		}
		std::vector<float> table = random_vector(size_t(c.rows) * c.F, 31);
		std::vector<uint32_t> y_dims = c.idx_dims;
		y_dims.push_back(c.F);
		Program p;
		const uint32_t ti = p.input(c.idx_dims, FLAXDRM_DTYPE_I32);
		const uint32_t tt = p.variable(1, "embedding", {c.rows, c.F});
		const uint32_t ty = p.output(y_dims);
		p.op(FLAXDRM_OP_EMBED, 1, {ti, tt}, {ty});
		std::vector<float> y(idx.size() * c.F, -1.0f);
		Bindings b(p);
		b.host(ti, idx);
		b.host(tt, table);
		b.host(ty, y);
		executor(fallback).run(p.tensors, p.ops, b.mem);
		const std::vector<float> want = ref::embed(idx, table, c.rows, c.F);
		EXPECT_MATCHES(y, want, 0.0);
		// exact copies
		for (std::size_t i = 0; i < y.size(); i++) {
			if (!std::isnan(want[i])) {
				ASSERT_EQ(f32_bits(y[i]), f32_bits(want[i])) << i;
			}
		}
	}
}

TEST_P(Embed, Attend)
{
	const bool fallback = GetParam();
	struct Case {
		std::vector<uint32_t> q_dims; // [..., F]
		uint32_t rows;
	};
	for (const Case& c : std::vector<Case>{{{4}, 10}, {{3, 8}, 5}, {{2, 3, 16}, 100}, {{1, 1}, 1}, {{70, 33}, 67}}) {
		SCOPED_TRACE(ref::dims_name(c.q_dims) + " rows " + std::to_string(c.rows));
		const uint32_t F = c.q_dims.back();
		const uint64_t M = prod(c.q_dims) / F;
		std::vector<float> q = random_vector(M * F, 41), table = random_vector(size_t(c.rows) * F, 42);
		std::vector<uint32_t> y_dims = c.q_dims;
		y_dims.back() = c.rows;
		Program p;
		const uint32_t tq = p.input(c.q_dims);
		const uint32_t tt = p.variable(1, "embedding", {c.rows, F});
		const uint32_t ty = p.output(y_dims);
		p.op(FLAXDRM_OP_ATTEND, 1, {tq, tt}, {ty});
		std::vector<float> y(M * c.rows, -1.0f);
		Bindings b(p);
		b.host(tq, q);
		b.host(tt, table);
		b.host(ty, y);
		executor(fallback).run(p.tensors, p.ops, b.mem);
		const std::vector<float> want =
			ref::matmul(q, {uint32_t(M), F}, table, {c.rows, F}, false, true);
		EXPECT_MATCHES(y, want, kTol);
	}
}

INSTANTIATE_TEST_SUITE_P(Devices, Embed, ::testing::Values(false, true),
			 [](const auto& info) { return info.param ? "Fallback" : "Default"; });

// A Dense -> matmul chain in one program (a temp between the ops).
TEST(DenseChain, DenseGeneralThenMatmul)
{
	for (bool fallback : {false, true}) {
		Program p;
		const uint32_t tx = p.input({2, 5, 8});
		const uint32_t tw = p.variable(1, "kernel", {8, 2, 4}); // features (heads=2, dim=4)
		const uint32_t th = p.temp({2, 5, 2, 4});
		const uint32_t tr = p.input({2, 1, 4, 3});
		const uint32_t ty = p.output({2, 5, 2, 3});
		p.op(FLAXDRM_OP_DENSE, 1, {tx, tw}, {th}, {1});
		p.op(FLAXDRM_OP_MATMUL, 0, {th, tr}, {ty}, {0});
		std::vector<float> x = random_vector(80, 51), w = random_vector(64, 52), r = random_vector(24, 53);
		std::vector<float> y(60);
		Bindings b(p);
		b.host(tx, x);
		b.host(tw, w);
		b.host(tr, r);
		b.host(ty, y);
		executor(fallback).run(p.tensors, p.ops, b.mem);
		const std::vector<float> h = ref::dense(x, w, nullptr, 10, 8, 8);
		const std::vector<float> want = ref::matmul(h, {2, 5, 2, 4}, r, {2, 1, 4, 3}, false, false);
		EXPECT_MATCHES(y, want, kTol);
	}
}

} // namespace
