// LayerNorm, RMSNorm, GroupNorm and BatchNorm on the runtime (lavapipe on a
// CPU-only machine), on both kernel paths (CPU texel path and the portable
// storage-buffer path), against tests/host/reference_norm.hpp and against
// torch goldens from tests/tools/golden_norm.py.
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
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

constexpr uint32_t kModule = 1;

uint32_t fbits(float f)
{
	return std::bit_cast<uint32_t>(f);
}

using flaxdrm::optest::executor;
using flaxdrm::optest::nmse_within;
using flaxdrm::optest::random_vector;

std::size_t product(const std::vector<uint32_t>& dims)
{
	std::size_t n = 1;
	for (uint32_t d : dims)
		n *= d;
	return n;
}

// One op over host vectors: inputs are INPUT tensors except the ones marked
// as (unkeyed) variables; outputs are OUTPUT tensors or writable variables.
struct OneOp {
	std::vector<drm_flaxdrm_tensor> tensors;
	std::vector<rt::TensorMemory> mem;
	drm_flaxdrm_op op{};

	uint32_t add(uint32_t kind, const std::vector<uint32_t>& dims, std::vector<float>* data, const char* name = "")
	{
		drm_flaxdrm_tensor t;
		std::memset(&t, 0, sizeof t);
		t.kind = kind;
		t.dtype = FLAXDRM_DTYPE_F32;
		t.rank = uint32_t(dims.size());
		for (std::size_t i = 0; i < dims.size(); i++)
			t.dims[i] = dims[i];
		if (kind == FLAXDRM_TENSOR_VARIABLE) {
			t.module = kModule;
			std::strncpy(t.collection, "params", sizeof t.collection - 1);
			std::strncpy(t.name, name, sizeof t.name - 1);
		}
		tensors.push_back(t);
		rt::TensorMemory m;
		m.host = data ? data->data() : nullptr;
		m.size = data ? data->size() * 4 : 0;
		m.writable = kind == FLAXDRM_TENSOR_VARIABLE;
		mem.push_back(m);
		return uint32_t(tensors.size() - 1);
	}
	void in(uint32_t t) { op.inputs[op.num_inputs++] = t; }
	void out(uint32_t t) { op.outputs[op.num_outputs++] = t; }
	void run(rt::Executor& ex) { ex.run(tensors, std::span(&op, 1), mem); }
};

#define EXPECT_CLOSE(got, want, tol) EXPECT_TRUE(nmse_within(got, want, tol))

// ------------------------------------------------------------ LayerNorm, RMSNorm

struct LnCase {
	std::vector<uint32_t> dims;
	uint32_t axes; // 0 means 1
	uint32_t flags;
	float offset = 0.0f;
};

std::vector<float> run_layer_norm(bool storage, uint32_t opcode, const std::vector<uint32_t>& dims, uint32_t axes,
				  uint32_t flags, float eps, std::vector<float>& x, std::vector<float>& scale,
				  std::vector<float>& bias)
{
	const uint32_t C = dims.back();
	std::vector<float> y(x.size(), -7.0f);
	OneOp p;
	p.op.opcode = opcode;
	p.op.module = kModule;
	p.op.attrs[0] = fbits(eps);
	p.op.attrs[1] = axes;
	p.op.attrs[2] = flags;
	p.in(p.add(FLAXDRM_TENSOR_INPUT, dims, &x));
	if (flags & FLAXDRM_NORM_SCALE)
		p.in(p.add(FLAXDRM_TENSOR_VARIABLE, {C}, &scale, "scale"));
	if (flags & FLAXDRM_NORM_BIAS)
		p.in(p.add(FLAXDRM_TENSOR_VARIABLE, {C}, &bias, "bias"));
	p.mem.back().writable = false;
	for (auto& m : p.mem)
		m.writable = false;
	p.out(p.add(FLAXDRM_TENSOR_OUTPUT, dims, &y));
	p.run(executor(storage));
	return y;
}

class LayerNormTest : public ::testing::TestWithParam<std::tuple<bool, LnCase>> {};

TEST_P(LayerNormTest, MatchesReference)
{
	const auto& [storage, c] = GetParam();
	const std::size_t total = product(c.dims);
	const uint32_t C = c.dims.back();
	const uint32_t axes = c.axes ? c.axes : 1;
	std::size_t n = 1;
	for (uint32_t i = 0; i < axes; i++)
		n *= c.dims[c.dims.size() - 1 - i];
	std::vector<float> x = random_vector(total, 1 + uint32_t(total));
	for (float& v : x)
		v += c.offset;
	std::vector<float> scale = random_vector(C, 2, 0.5f, 1.5f), bias = random_vector(C, 3);
	const float eps = 1e-6f;
	const auto* sp = (c.flags & FLAXDRM_NORM_SCALE) ? &scale : nullptr;
	const auto* bp = (c.flags & FLAXDRM_NORM_BIAS) ? &bias : nullptr;

	auto y = run_layer_norm(storage, FLAXDRM_OP_LAYER_NORM, c.dims, c.axes, c.flags, eps, x, scale, bias);
	EXPECT_CLOSE(y, ref::layer_norm(x, n, C, eps, sp, bp), 1e-11);

	auto r = run_layer_norm(storage, FLAXDRM_OP_RMS_NORM, c.dims, c.axes, c.flags & FLAXDRM_NORM_SCALE, eps, x,
				scale, bias);
	EXPECT_CLOSE(r, ref::rms_norm(x, n, C, eps, sp), 1e-11);
}

INSTANTIATE_TEST_SUITE_P(
	Shapes, LayerNormTest,
	::testing::Combine(::testing::Bool(),
			   ::testing::Values(LnCase{{1}, 0, 3}, LnCase{{1, 5}, 1, 3}, LnCase{{3, 7}, 0, 0},
					     LnCase{{2, 3, 64}, 1, 1}, LnCase{{1000, 17}, 1, 3},
					     LnCase{{31, 4096}, 0, 2}, LnCase{{2, 70001}, 1, 3},
					     LnCase{{5, 6, 7}, 2, 3}, LnCase{{2, 3, 4, 5}, 3, 1},
					     LnCase{{100}, 1, 3}, LnCase{{40, 96}, 1, 3, 1000.0f},
					     LnCase{{3, 100000}, 1, 3, 50.0f},
					     // one lane a segment over 2 axes: vec4, scalar
					     LnCase{{40, 3, 20}, 2, 3}, LnCase{{33, 2, 7}, 2, 3, 10.0f})));

TEST(LayerNorm, ConstantRowsGiveBias)
{
	for (bool storage : {false, true}) {
		std::vector<float> x(8 * 33, 3.25f), scale = random_vector(33, 4), bias = random_vector(33, 5);
		for (std::size_t i = 0; i < 33; i++)
			x[33 + i] = -1e6f; // another constant row
		auto y = run_layer_norm(storage, FLAXDRM_OP_LAYER_NORM, {8, 33}, 1, 3, 1e-6f, x, scale, bias);
		for (std::size_t i = 0; i < y.size(); i++)
			ASSERT_EQ(y[i], bias[i % 33]) << i << (storage ? " storage path" : " texel path");
	}
}

TEST(LayerNorm, NaNAndInfinityStayInTheirRow)
{
	for (bool storage : {false, true}) {
		for (uint32_t cols : {16u, 5000u}) {
			const uint32_t rows = cols == 16 ? 64 : 4;
			std::vector<float> x = random_vector(rows * cols, 6), scale(cols, 1.0f), bias(cols, 0.0f);
			x[1 * cols + 3] = std::nanf("");
			x[2 * cols + 5] = INFINITY;
			auto y = run_layer_norm(storage, FLAXDRM_OP_LAYER_NORM, {rows, cols}, 1, 0, 1e-6f, x, scale,
						bias);
			for (uint32_t c = 0; c < cols; c++) {
				ASSERT_TRUE(std::isnan(y[1 * cols + c])) << c;
				ASSERT_TRUE(std::isnan(y[2 * cols + c])) << c;
				ASSERT_TRUE(std::isfinite(y[0 * cols + c])) << c;
				ASSERT_TRUE(std::isfinite(y[3 * cols + c])) << c;
			}
			auto r = run_layer_norm(storage, FLAXDRM_OP_RMS_NORM, {rows, cols}, 1, 0, 1e-6f, x, scale, bias);
			for (uint32_t c = 0; c < cols; c++) {
				ASSERT_TRUE(std::isnan(r[1 * cols + c])) << c;
				ASSERT_TRUE(std::isfinite(r[0 * cols + c])) << c;
			}
		}
	}
}

// ------------------------------------------------------------ GroupNorm

struct GnCase {
	std::vector<uint32_t> dims;
	uint32_t groups;
	uint32_t flags;
};

std::vector<float> run_group_norm(bool storage, const GnCase& c, float eps, std::vector<float>& x,
				  std::vector<float>& scale, std::vector<float>& bias)
{
	const uint32_t C = c.dims.back();
	std::vector<float> y(x.size(), -7.0f);
	OneOp p;
	p.op.opcode = FLAXDRM_OP_GROUP_NORM;
	p.op.module = kModule;
	p.op.attrs[0] = fbits(eps);
	p.op.attrs[1] = c.groups;
	p.op.attrs[2] = c.flags;
	p.in(p.add(FLAXDRM_TENSOR_INPUT, c.dims, &x));
	if (c.flags & FLAXDRM_NORM_SCALE)
		p.in(p.add(FLAXDRM_TENSOR_VARIABLE, {C}, &scale, "scale"));
	if (c.flags & FLAXDRM_NORM_BIAS)
		p.in(p.add(FLAXDRM_TENSOR_VARIABLE, {C}, &bias, "bias"));
	for (auto& m : p.mem)
		m.writable = false;
	p.out(p.add(FLAXDRM_TENSOR_OUTPUT, c.dims, &y));
	p.run(executor(storage));
	return y;
}

class GroupNormTest : public ::testing::TestWithParam<std::tuple<bool, GnCase>> {};

TEST_P(GroupNormTest, MatchesReference)
{
	const auto& [storage, c] = GetParam();
	const std::size_t total = product(c.dims);
	const uint32_t C = c.dims.back();
	std::vector<float> x = random_vector(total, 7 + uint32_t(total), -1.0f, 3.0f);
	std::vector<float> scale = random_vector(C, 8, 0.5f, 1.5f), bias = random_vector(C, 9);
	auto y = run_group_norm(storage, c, 1e-6f, x, scale, bias);
	EXPECT_CLOSE(y,
		     ref::group_norm(x, c.dims[0], C, c.groups, 1e-6, (c.flags & 1) ? &scale : nullptr,
				     (c.flags & 2) ? &bias : nullptr),
		     1e-11);
}

INSTANTIATE_TEST_SUITE_P(
	Shapes, GroupNormTest,
	::testing::Combine(::testing::Bool(),
			   ::testing::Values(GnCase{{2, 4, 4, 32}, 32, 3}, GnCase{{1, 5, 7, 12}, 3, 3},
					     GnCase{{3, 9}, 3, 1}, GnCase{{2, 3, 3, 3, 8}, 2, 2},
					     GnCase{{40, 2, 2, 64}, 32, 3}, GnCase{{1, 300, 6}, 1, 0},
					     GnCase{{1, 1, 1}, 1, 3}, GnCase{{2, 64, 64, 64}, 32, 3},
					     GnCase{{1, 17, 19, 33}, 11, 3})));

// ------------------------------------------------------------ BatchNorm

struct BnCase {
	std::vector<uint32_t> dims;
	uint32_t flags; // scale/bias
};

struct BnRun {
	std::vector<float> y, new_mean, new_var;
};

// training: new statistics into separate outputs, or (in_place) written
// back into the mean/var variables as Flax's mutable batch_stats.
BnRun run_batch_norm(bool storage, const std::vector<uint32_t>& dims, uint32_t flags, bool training, bool in_place,
		     float eps, float momentum, std::vector<float>& x, std::vector<float>& mean,
		     std::vector<float>& var, std::vector<float>& scale, std::vector<float>& bias)
{
	const uint32_t C = dims.back();
	BnRun r;
	r.y.assign(x.size(), -7.0f);
	r.new_mean.assign(C, -7.0f);
	r.new_var.assign(C, -7.0f);
	OneOp p;
	p.op.opcode = FLAXDRM_OP_BATCH_NORM;
	p.op.module = kModule;
	p.op.attrs[0] = fbits(eps);
	p.op.attrs[1] = training ? fbits(momentum) : 0;
	p.op.attrs[2] = flags | (training ? FLAXDRM_NORM_TRAINING : 0);
	p.in(p.add(FLAXDRM_TENSOR_INPUT, dims, &x));
	const uint32_t tm = p.add(FLAXDRM_TENSOR_VARIABLE, {C}, &mean, "mean");
	const uint32_t tv = p.add(FLAXDRM_TENSOR_VARIABLE, {C}, &var, "var");
	p.in(tm);
	p.in(tv);
	if (flags & FLAXDRM_NORM_SCALE)
		p.in(p.add(FLAXDRM_TENSOR_VARIABLE, {C}, &scale, "scale"));
	if (flags & FLAXDRM_NORM_BIAS)
		p.in(p.add(FLAXDRM_TENSOR_VARIABLE, {C}, &bias, "bias"));
	for (auto& m : p.mem)
		m.writable = false;
	p.out(p.add(FLAXDRM_TENSOR_OUTPUT, dims, &r.y));
	if (training) {
		if (in_place) {
			p.mem[tm].writable = p.mem[tv].writable = true;
			p.out(tm);
			p.out(tv);
		} else {
			p.out(p.add(FLAXDRM_TENSOR_OUTPUT, {C}, &r.new_mean));
			p.out(p.add(FLAXDRM_TENSOR_OUTPUT, {C}, &r.new_var));
		}
	}
	p.run(executor(storage));
	if (training && in_place) {
		r.new_mean = mean;
		r.new_var = var;
	}
	return r;
}

class BatchNormTest : public ::testing::TestWithParam<std::tuple<bool, BnCase>> {};

TEST_P(BatchNormTest, InferenceMatchesReference)
{
	const auto& [storage, c] = GetParam();
	const std::size_t total = product(c.dims);
	const uint32_t C = c.dims.back();
	std::vector<float> x = random_vector(total, 10 + uint32_t(total), -2.0f, 2.0f);
	std::vector<float> mean = random_vector(C, 11), var = random_vector(C, 12, 0.2f, 3.0f);
	std::vector<float> scale = random_vector(C, 13, 0.5f, 1.5f), bias = random_vector(C, 14);
	const auto r = run_batch_norm(storage, c.dims, c.flags, false, false, 1e-5f, 0.0f, x, mean, var, scale, bias);
	EXPECT_CLOSE(r.y,
		     ref::batch_norm_infer(x, C, mean, var, 1e-5, (c.flags & 1) ? &scale : nullptr,
					   (c.flags & 2) ? &bias : nullptr),
		     1e-12);
}

TEST_P(BatchNormTest, TrainingMatchesReference)
{
	const auto& [storage, c] = GetParam();
	const std::size_t total = product(c.dims);
	const uint32_t C = c.dims.back();
	for (bool in_place : {false, true}) {
		std::vector<float> x = random_vector(total, 15 + uint32_t(total), 1.0f, 4.0f);
		std::vector<float> mean = random_vector(C, 16), var = random_vector(C, 17, 0.2f, 3.0f);
		std::vector<float> scale = random_vector(C, 18, 0.5f, 1.5f), bias = random_vector(C, 19);
		const auto want = ref::batch_norm_train(x, C, mean, var, 1e-5, 0.99, (c.flags & 1) ? &scale : nullptr,
							(c.flags & 2) ? &bias : nullptr);
		const auto r =
			run_batch_norm(storage, c.dims, c.flags, true, in_place, 1e-5f, 0.99f, x, mean, var, scale, bias);
		EXPECT_CLOSE(r.y, want.y, 1e-11) << (in_place ? "in place" : "separate outputs");
		EXPECT_CLOSE(r.new_mean, want.new_mean, 1e-12) << (in_place ? "in place" : "separate outputs");
		EXPECT_CLOSE(r.new_var, want.new_var, 1e-12) << (in_place ? "in place" : "separate outputs");
	}
}

INSTANTIATE_TEST_SUITE_P(Shapes, BatchNormTest,
			 ::testing::Combine(::testing::Bool(),
					    ::testing::Values(BnCase{{5, 3}, 3}, BnCase{{2, 7, 7, 64}, 3},
							      BnCase{{10000, 3}, 1}, BnCase{{1, 1}, 0},
							      BnCase{{1, 9}, 2}, BnCase{{4, 13, 11, 40}, 3},
							      BnCase{{7}, 3}, BnCase{{20, 20, 700}, 3},
							      // 4 channels a unit: one unit; a
							      // partial group of 8 lanes
							      BnCase{{9, 4}, 3}, BnCase{{3, 5, 132}, 2},
							      // one channel a lane (C % 4 != 0)
							      BnCase{{37, 5, 35}, 3})));

TEST(BatchNorm, MomentumOneAndZero)
{
	for (float momentum : {0.0f, 1.0f}) {
		std::vector<float> x = random_vector(50 * 6, 20), mean = random_vector(6, 21),
				   var = random_vector(6, 22, 0.5f, 1.0f), none;
		const auto want = ref::batch_norm_train(x, 6, mean, var, 1e-5, momentum, nullptr, nullptr);
		const auto r = run_batch_norm(false, {50, 6}, 0, true, false, 1e-5f, momentum, x, mean, var, none, none);
		EXPECT_CLOSE(r.new_mean, want.new_mean, 1e-12);
		EXPECT_CLOSE(r.new_var, want.new_var, 1e-12);
		if (momentum == 1.0f) {
			EXPECT_EQ(r.new_mean, mean);
			EXPECT_EQ(r.new_var, var);
		}
	}
}

// ------------------------------------------------------------ torch goldens

std::string python()
{
	// Debian's python3 with python3-torch, not whatever else is on PATH.
	return std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

const std::filesystem::path& goldens()
{
	static const std::filesystem::path dir = [] {
		std::filesystem::path d = std::filesystem::temp_directory_path() /
					  ("flaxdrm_golden_norm_" + std::to_string(::getpid()));
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

bool has_golden(const std::string& c, const std::string& name)
{
	return std::filesystem::exists(goldens() / (c + "." + name + ".npy"));
}

std::vector<uint32_t> dims_of(const flaxdrm::Tensor& t)
{
	return std::vector<uint32_t>(t.shape.begin(), t.shape.end());
}

class TorchGolden : public ::testing::TestWithParam<bool> {};

TEST_P(TorchGolden, LayerNormAndRMSNorm)
{
	const bool storage = GetParam();
	struct G {
		const char* name;
		uint32_t opcode, axes;
		float eps;
	};
	for (const G g : {G{"ln_a", FLAXDRM_OP_LAYER_NORM, 1, 1e-6f}, G{"ln_b", FLAXDRM_OP_LAYER_NORM, 2, 1e-5f},
			  G{"ln_c", FLAXDRM_OP_LAYER_NORM, 1, 1e-6f}, G{"rms_a", FLAXDRM_OP_RMS_NORM, 1, 1e-6f},
			  G{"rms_b", FLAXDRM_OP_RMS_NORM, 1, 1e-6f}}) {
		auto x = golden(g.name, "x");
		std::vector<float> scale, bias;
		uint32_t flags = 0;
		if (has_golden(g.name, "scale"))
			scale = golden(g.name, "scale").data, flags |= FLAXDRM_NORM_SCALE;
		if (has_golden(g.name, "bias"))
			bias = golden(g.name, "bias").data, flags |= FLAXDRM_NORM_BIAS;
		auto y = run_layer_norm(storage, g.opcode, dims_of(x), g.axes, flags, g.eps, x.data, scale, bias);
		EXPECT_CLOSE(y, golden(g.name, "y").data, 1e-11) << g.name;
	}
}

TEST_P(TorchGolden, GroupNorm)
{
	const bool storage = GetParam();
	struct G {
		const char* name;
		uint32_t groups;
		float eps;
	};
	for (const G g : {G{"gn_a", 32, 1e-6f}, G{"gn_b", 4, 1e-6f}, G{"gn_c", 8, 1e-5f}}) {
		auto x = golden(g.name, "x");
		std::vector<float> scale, bias;
		uint32_t flags = 0;
		if (has_golden(g.name, "scale"))
			scale = golden(g.name, "scale").data, flags |= FLAXDRM_NORM_SCALE;
		if (has_golden(g.name, "bias"))
			bias = golden(g.name, "bias").data, flags |= FLAXDRM_NORM_BIAS;
		auto y = run_group_norm(storage, GnCase{dims_of(x), g.groups, flags}, g.eps, x.data, scale, bias);
		EXPECT_CLOSE(y, golden(g.name, "y").data, 1e-11) << g.name;
	}
}

TEST_P(TorchGolden, BatchNorm)
{
	const bool storage = GetParam();
	struct G {
		const char* name;
		bool training;
		float eps, momentum;
	};
	for (const G g : {G{"bn_infer", false, 1e-5f, 0.99f}, G{"bn_train", true, 1e-5f, 0.99f},
			  G{"bn_train2", true, 1e-3f, 0.9f}}) {
		auto x = golden(g.name, "x");
		auto mean = golden(g.name, "mean").data, var = golden(g.name, "var").data;
		auto scale = golden(g.name, "scale").data, bias = golden(g.name, "bias").data;
		for (bool in_place : {false, true}) {
			if (in_place && !g.training)
				continue;
			auto m = mean, v = var;
			auto r = run_batch_norm(storage, dims_of(x), 3, g.training, in_place, g.eps, g.momentum, x.data,
						m, v, scale, bias);
			EXPECT_CLOSE(r.y, golden(g.name, "y").data, 1e-11) << g.name;
			if (g.training) {
				EXPECT_CLOSE(r.new_mean, golden(g.name, "new_mean").data, 1e-12) << g.name;
				EXPECT_CLOSE(r.new_var, golden(g.name, "new_var").data, 1e-12) << g.name;
			}
		}
	}
}

INSTANTIATE_TEST_SUITE_P(Paths, TorchGolden, ::testing::Bool(),
			 [](const auto& info) { return info.param ? "StoragePath" : "CpuPath"; });

// ------------------------------------------------------------ refusals

TEST(NormRefusals, RuleViolationsAreEINVAL)
{
	std::vector<float> x(12), s(4), y(12);
	OneOp p;
	p.op.opcode = FLAXDRM_OP_GROUP_NORM;
	p.op.module = kModule;
	p.op.attrs[1] = 3; // 3 groups do not divide C = 4
	p.in(p.add(FLAXDRM_TENSOR_INPUT, {3, 4}, &x));
	p.out(p.add(FLAXDRM_TENSOR_OUTPUT, {3, 4}, &y));
	try {
		p.run(executor(false));
		ADD_FAILURE() << "expected rt::Error";
	} catch (const rt::Error& e) {
		EXPECT_EQ(e.status(), -EINVAL);
	}
}

} // namespace
