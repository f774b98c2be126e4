// Scaled dot-product attention (FLAXDRM_OP_ATTENTION) on the runtime, on
// both kernel paths (CPU texel path, portable storage-buffer path), against
// ref::attention (tests/host/reference_norm.hpp) and torch goldens from
// tests/tools/golden_norm.py.
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>

#include "flaxdrm/npy.hpp"
#include "flaxdrm/runtime.hpp"
#include "op_test_util.hpp"
#include "reference_norm.hpp"

namespace rt = flaxdrm::rt;
namespace ref = flaxdrm::ref;

namespace {

std::vector<float> random_vector(std::size_t n, uint32_t seed, float spread = 1.0f)
{
	std::mt19937 gen(seed);
	std::normal_distribution<float> dist(0.0f, spread);
	std::vector<float> v(n);
	for (auto& x : v)
		x = dist(gen);
	return v;
}

using flaxdrm::optest::executor;
using flaxdrm::optest::nmse_within;

struct Shape {
	uint32_t B, Lq, Lk, H, D, Dv;
};

struct Mask {
	std::vector<int32_t> data;
	std::size_t dims[4] = {1, 1, 1, 1};
};

drm_flaxdrm_tensor tensor(uint32_t kind, uint32_t dtype, std::initializer_list<uint32_t> dims)
{
	drm_flaxdrm_tensor t;
	std::memset(&t, 0, sizeof t);
	t.kind = kind;
	t.dtype = dtype;
	t.rank = uint32_t(dims.size());
	uint32_t i = 0;
	for (uint32_t d : dims)
		t.dims[i++] = d;
	return t;
}

std::vector<float> run_attention(bool storage, const Shape& s, std::vector<float>& q, std::vector<float>& k,
				 std::vector<float>& v, Mask* mask, bool causal, float scale = 0.0f)
{
	std::vector<float> o(std::size_t(s.B) * s.Lq * s.H * s.Dv, -7.0f);
	std::vector<drm_flaxdrm_tensor> t = {
		tensor(FLAXDRM_TENSOR_INPUT, FLAXDRM_DTYPE_F32, {s.B, s.Lq, s.H, s.D}),
		tensor(FLAXDRM_TENSOR_INPUT, FLAXDRM_DTYPE_F32, {s.B, s.Lk, s.H, s.D}),
		tensor(FLAXDRM_TENSOR_INPUT, FLAXDRM_DTYPE_F32, {s.B, s.Lk, s.H, s.Dv}),
		tensor(FLAXDRM_TENSOR_OUTPUT, FLAXDRM_DTYPE_F32, {s.B, s.Lq, s.H, s.Dv}),
	};
	std::vector<rt::TensorMemory> mem(4);
	mem[0] = {q.data(), q.size() * 4};
	mem[1] = {k.data(), k.size() * 4};
	mem[2] = {v.data(), v.size() * 4};
	mem[3] = {o.data(), o.size() * 4};
	drm_flaxdrm_op op;
	std::memset(&op, 0, sizeof op);
	op.opcode = FLAXDRM_OP_ATTENTION;
	op.num_inputs = 3;
	op.num_outputs = 1;
	op.inputs[0] = 0;
	op.inputs[1] = 1;
	op.inputs[2] = 2;
	op.outputs[0] = 3;
	op.attrs[0] = causal ? FLAXDRM_ATTN_CAUSAL : 0;
	op.attrs[1] = std::bit_cast<uint32_t>(scale);
	if (mask) {
		t.push_back(tensor(FLAXDRM_TENSOR_INPUT, FLAXDRM_DTYPE_I32,
				   {uint32_t(mask->dims[0]), uint32_t(mask->dims[1]), uint32_t(mask->dims[2]),
				    uint32_t(mask->dims[3])}));
		mem.push_back({mask->data.data(), mask->data.size() * 4});
		op.inputs[3] = 4;
		op.num_inputs = 4;
		op.attrs[0] |= FLAXDRM_ATTN_MASK;
	}
	executor(storage).run(t, std::span(&op, 1), mem);
	return o;
}

struct Inputs {
	std::vector<float> q, k, v;
	Inputs(const Shape& s, uint32_t seed, float spread = 1.0f)
		: q(random_vector(std::size_t(s.B) * s.Lq * s.H * s.D, seed, spread)),
		  k(random_vector(std::size_t(s.B) * s.Lk * s.H * s.D, seed + 1, spread)),
		  v(random_vector(std::size_t(s.B) * s.Lk * s.H * s.Dv, seed + 2))
	{
	}
};

std::vector<float> reference(const Shape& s, const Inputs& in, const Mask* mask, bool causal, float scale = 0.0f)
{
	const double sc = scale != 0.0f ? double(scale) : 1.0 / std::sqrt(double(s.D));
	return ref::attention(in.q, in.k, in.v, s.B, s.Lq, s.Lk, s.H, s.D, s.Dv, sc, mask ? &mask->data : nullptr,
			      mask ? mask->dims : nullptr, causal);
}

Mask random_mask(std::initializer_list<std::size_t> dims, uint32_t seed, double keep = 0.7)
{
	Mask m;
	std::size_t n = 1, i = 0;
	for (std::size_t d : dims)
		m.dims[i++] = d, n *= d;
	std::mt19937 gen(seed);
	std::bernoulli_distribution b(keep);
	m.data.resize(n);
	for (auto& x : m.data)
		x = b(gen) ? (int32_t(gen() % 5) + 1) * (gen() % 2 ? 1 : -1) : 0; // any non-zero keeps
	return m;
}

// ------------------------------------------------------------ shapes

class AttentionShapes : public ::testing::TestWithParam<std::tuple<bool, Shape>> {};

TEST_P(AttentionShapes, MatchesReference)
{
	const auto& [storage, s] = GetParam();
	Inputs in(s, s.Lq * 131 + s.D);
	for (bool causal : {false, true}) {
		auto o = run_attention(storage, s, in.q, in.k, in.v, nullptr, causal);
		EXPECT_TRUE(nmse_within(o, reference(s, in, nullptr, causal), 1e-10)) << (causal ? "causal" : "");
	}
}

INSTANTIATE_TEST_SUITE_P(
	Shapes, AttentionShapes,
	::testing::Combine(::testing::Bool(),
			   ::testing::Values(Shape{1, 1, 1, 1, 1, 1}, Shape{1, 3, 5, 2, 4, 4}, Shape{2, 7, 13, 3, 6, 5},
					     Shape{1, 17, 17, 1, 64, 64}, Shape{2, 37, 53, 3, 16, 24},
					     Shape{1, 64, 200, 4, 32, 32}, Shape{1, 129, 65, 2, 128, 128},
					     Shape{1, 5, 3, 1, 256, 8}, Shape{3, 1, 100, 2, 8, 8},
					     Shape{1, 40, 9, 2, 3, 7}, Shape{1, 128, 128, 8, 64, 64})));

TEST(Attention, ExplicitScaleAndLargeLogits)
{
	const Shape s{2, 33, 47, 2, 16, 16};
	for (bool storage : {false, true}) {
		Inputs in(s, 5, 4.0f); // logits in the hundreds: the streaming softmax must not overflow
		auto o = run_attention(storage, s, in.q, in.k, in.v, nullptr, false, 0.7f);
		EXPECT_TRUE(nmse_within(o, reference(s, in, nullptr, false, 0.7f), 1e-9));
		for (float x : o)
			ASSERT_TRUE(std::isfinite(x));
	}
}

// ------------------------------------------------------------ masks

struct MaskCase {
	Shape s;
	std::vector<std::size_t> mdims;
	bool causal;
	double keep;
};

class AttentionMasks : public ::testing::TestWithParam<std::tuple<bool, MaskCase>> {};

TEST_P(AttentionMasks, MatchesReference)
{
	const auto& [storage, c] = GetParam();
	Inputs in(c.s, 77);
	Mask m = random_mask({c.mdims[0], c.mdims[1], c.mdims[2], c.mdims[3]}, 78, c.keep);
	auto o = run_attention(storage, c.s, in.q, in.k, in.v, &m, c.causal);
	EXPECT_TRUE(nmse_within(o, reference(c.s, in, &m, c.causal), 1e-10));
}

INSTANTIATE_TEST_SUITE_P(
	Broadcasts, AttentionMasks,
	::testing::Combine(
		::testing::Bool(),
		::testing::Values(MaskCase{{2, 9, 21, 2, 8, 8}, {1, 1, 1, 21}, false, 0.6}, // padding mask
				  MaskCase{{2, 9, 21, 2, 8, 8}, {2, 1, 9, 21}, false, 0.5},
				  MaskCase{{2, 9, 21, 3, 8, 8}, {1, 3, 1, 1}, false, 0.5},   // whole heads
				  MaskCase{{2, 9, 21, 3, 8, 8}, {2, 3, 9, 21}, false, 0.1},  // many empty rows
				  MaskCase{{1, 30, 30, 2, 12, 4}, {1, 2, 30, 30}, true, 0.3},
				  MaskCase{{1, 30, 30, 2, 12, 4}, {1, 1, 30, 1}, true, 0.5},  // whole query rows
				  MaskCase{{1, 50, 50, 1, 64, 64}, {1, 1, 50, 50}, false, 0.0}, // everything masked
				  MaskCase{{1, 50, 50, 1, 64, 64}, {1, 1, 50, 50}, true, 0.0},
				  MaskCase{{1, 70, 33, 1, 5, 6}, {1, 1, 70, 33}, true, 0.2})));

TEST(Attention, FullyMaskedRowIsTheUniformAverageOfAllValues)
{
	// Causal with a row whose allowed keys are all masked: every logit of
	// that row is the lowest value, so (as in JAX) it averages all Lk values,
	// not only the keys up to the diagonal.
	const Shape s{1, 16, 16, 1, 8, 8};
	for (bool storage : {false, true}) {
		Inputs in(s, 9);
		Mask m;
		m.dims[2] = 16;
		m.dims[3] = 16;
		m.data.assign(256, 1);
		for (int j = 0; j < 16; j++)
			m.data[5 * 16 + j] = 0;
		auto o = run_attention(storage, s, in.q, in.k, in.v, &m, true);
		for (uint32_t e = 0; e < 8; e++) {
			double avg = 0;
			for (uint32_t j = 0; j < 16; j++)
				avg += in.v[j * 8 + e];
			EXPECT_NEAR(o[5 * 8 + e], avg / 16, 1e-6) << e;
		}
		EXPECT_TRUE(nmse_within(o, reference(s, in, &m, true), 1e-10));
	}
}

TEST(Attention, NaNInAQueryStaysInItsRow)
{
	const Shape s{1, 20, 30, 2, 16, 16};
	for (bool storage : {false, true}) {
		Inputs in(s, 10);
		in.q[(3 * 2 + 1) * 16 + 4] = std::nanf(""); // query 3, head 1
		auto o = run_attention(storage, s, in.q, in.k, in.v, nullptr, false);
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
}

// ------------------------------------------------------------ torch goldens

std::string python()
{
	return std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

const std::filesystem::path& goldens()
{
	static const std::filesystem::path dir = [] {
		std::filesystem::path d = std::filesystem::temp_directory_path() /
					  ("flaxdrm_golden_attention_" + std::to_string(::getpid()));
		const std::string cmd = python() + " " FLAXDRM_SOURCE_DIR "/tests/tools/golden_norm.py " + d.string();
		const int rc = std::system(cmd.c_str());
		if (rc != 0)
			throw std::runtime_error("golden_norm.py failed (" + std::to_string(rc) +
						 "): python3 with numpy and torch (python3-torch) is required");
		std::atexit([] { std::filesystem::remove_all(goldens()); });
		return d;
	}();
	return dir;
}

flaxdrm::Tensor golden(const std::string& c, const std::string& name)
{
	return flaxdrm::read_npy((goldens() / (c + "." + name + ".npy")).string());
}

class AttentionGolden : public ::testing::TestWithParam<bool> {};

TEST_P(AttentionGolden, MatchesTorch)
{
	const bool storage = GetParam();
	struct G {
		const char* name;
		bool causal, mask;
		float scale;
	};
	for (const G g : {G{"attn_a", false, false, 0.0f}, G{"attn_causal", true, false, 0.0f},
			  G{"attn_mask", false, true, 0.3f}, G{"attn_mask_causal", true, true, 0.0f}}) {
		auto q = golden(g.name, "q"), k = golden(g.name, "k"), v = golden(g.name, "v");
		const Shape s{uint32_t(q.shape[0]), uint32_t(q.shape[1]), uint32_t(k.shape[1]),
			      uint32_t(q.shape[2]), uint32_t(q.shape[3]), uint32_t(v.shape[3])};
		Mask m;
		if (g.mask) {
			auto mt = golden(g.name, "mask");
			for (int i = 0; i < 4; i++)
				m.dims[i] = std::size_t(mt.shape[i]);
			for (float x : mt.data)
				m.data.push_back(x != 0.0f ? 1 : 0);
		}
		auto o = run_attention(storage, s, q.data, k.data, v.data, g.mask ? &m : nullptr, g.causal, g.scale);
		EXPECT_TRUE(nmse_within(o, golden(g.name, "y").data, 1e-10)) << g.name;
	}
}

INSTANTIATE_TEST_SUITE_P(Paths, AttentionGolden, ::testing::Bool(),
			 [](const auto& info) { return info.param ? "StoragePath" : "CpuPath"; });

// ------------------------------------------------------------ refusals

TEST(AttentionRefusals, HeadDimTooLargeIsEINVAL)
{
	const Shape s{1, 2, 2, 1, 300, 4};
	Inputs in(s, 1);
	try {
		run_attention(false, s, in.q, in.k, in.v, nullptr, false);
		ADD_FAILURE() << "expected rt::Error";
	} catch (const rt::Error& e) {
		EXPECT_EQ(e.status(), -EINVAL);
		EXPECT_NE(std::string(e.what()).find("head dimension"), std::string::npos) << e.what();
	}
}

TEST(AttentionRefusals, MaskNotBroadcastableIsEINVAL)
{
	const Shape s{1, 4, 6, 2, 4, 4};
	Inputs in(s, 1);
	Mask m = random_mask({1, 1, 3, 6}, 2);
	try {
		run_attention(false, s, in.q, in.k, in.v, &m, false);
		ADD_FAILURE() << "expected rt::Error";
	} catch (const rt::Error& e) {
		EXPECT_EQ(e.status(), -EINVAL);
	}
}

} // namespace
