// The execution runtime (runtime/) on the host's Vulkan device (lavapipe on
// a CPU-only machine): Dense and relu against tests/host/cpu_reference.hpp,
// multi-op programs, resident and writable variables, recorded command
// buffers replayed, temporaries sharing memory, refusals.
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cpu_reference.hpp"
#include "reference_elementwise.hpp"
#include "flaxdrm/runtime.hpp"
#include "op_test_util.hpp"

namespace rt = flaxdrm::rt;
using ::testing::HasSubstr;

namespace {

// ------------------------------------------------------------ helpers

using flaxdrm::optest::device;
using flaxdrm::optest::random_vector;

// Builds a program's tensor table and op list.
struct Program {
	std::vector<drm_flaxdrm_tensor> tensors;
	std::vector<drm_flaxdrm_op> ops;

	uint32_t tensor(uint32_t kind, std::vector<uint32_t> dims, uint32_t module = 0,
			const char* collection = "", const char* name = "")
	{
		tensors.push_back(flaxdrm::optest::tensor_desc(kind, dims, FLAXDRM_DTYPE_F32, module, collection, name));
		return uint32_t(tensors.size() - 1);
	}
	uint32_t input(std::vector<uint32_t> dims) { return tensor(FLAXDRM_TENSOR_INPUT, dims); }
	uint32_t output(std::vector<uint32_t> dims) { return tensor(FLAXDRM_TENSOR_OUTPUT, dims); }
	uint32_t temp(std::vector<uint32_t> dims) { return tensor(FLAXDRM_TENSOR_TEMP, dims); }
	uint32_t variable(uint32_t module, const char* collection, const char* name, std::vector<uint32_t> dims)
	{
		return tensor(FLAXDRM_TENSOR_VARIABLE, dims, module, collection, name);
	}

	void op(uint32_t opcode, uint32_t module, std::vector<uint32_t> in, std::vector<uint32_t> out)
	{
		ops.push_back(flaxdrm::optest::op_desc(opcode, module, in, out));
	}
	void dense(uint32_t module, uint32_t x, uint32_t kernel, int64_t bias, uint32_t y)
	{
		if (bias >= 0)
			op(FLAXDRM_OP_DENSE, module, {x, kernel, uint32_t(bias)}, {y});
		else
			op(FLAXDRM_OP_DENSE, module, {x, kernel}, {y});
	}
	void relu(uint32_t x, uint32_t y) { op(FLAXDRM_OP_RELU, 0, {x}, {y}); }
};

// Memory for a run: one entry per tensor.
struct Bindings {
	std::vector<rt::TensorMemory> mem;
	explicit Bindings(const Program& p) : mem(p.tensors.size()) {}
	void host(uint32_t t, std::vector<float>& v) { mem[t].host = v.data(), mem[t].size = v.size() * 4; }
	void var(uint32_t t, std::vector<float>* v, uint64_t key, uint64_t gen, bool writable = false)
	{
		mem[t].host = v ? v->data() : nullptr;
		mem[t].size = v ? v->size() * 4 : 0;
		mem[t].var_key = key;
		mem[t].var_generation = gen;
		mem[t].writable = writable;
	}
};

rt::RunStats run(rt::Executor& ex, const Program& p, Bindings& b)
{
	return ex.run(p.tensors, p.ops, b.mem);
}

// Runs f and returns the rt::Error it throws (fails the test if none).
template <typename F>
rt::Error expect_error(F&& f)
{
	try {
		f();
	} catch (const rt::Error& e) {
		return e;
	}
	ADD_FAILURE() << "expected rt::Error";
	return rt::Error(0, "");
}

#define EXPECT_CLOSE(got, want, K)                                                                   \
	do {                                                                                         \
		const auto d_ = flaxdrm::ref::compare(got, want);                                    \
		EXPECT_LE(d_.max_abs, 1e-5 * std::sqrt(double(K)) * std::max(1.0, d_.max_ref))      \
			<< "max_abs " << d_.max_abs << " nmse " << d_.nmse;                          \
		EXPECT_LE(d_.nmse, 1e-10);                                                           \
	} while (0)

// ------------------------------------------------------------ device

TEST(RuntimeDevice, Info)
{
	const rt::DeviceInfo& info = device().info();
	EXPECT_FALSE(info.name.empty());
	EXPECT_FALSE(info.driver.empty());
	EXPECT_GE(info.api_version, (1u << 22) | (2u << 12)); // Vulkan 1.2
	EXPECT_GT(info.subgroup_size, 0u);
	std::printf("device: %s, driver %s, timestamps %d\n", info.name.c_str(), info.driver.c_str(),
		    int(info.timestamps));
}

TEST(RuntimeDevice, PreferredNameThatMatchesNothingFallsBack)
{
	rt::DeviceOptions o;
	o.preferred_name = "no such device";
	auto dev = rt::Device::create(o);
	EXPECT_FALSE(dev->info().name.empty());
}

// ------------------------------------------------------------ Dense

struct DenseCase {
	std::vector<uint32_t> x_dims; // [..., K]
	uint32_t N;
	bool bias;
	bool fallback = false;
};

std::string case_name(const ::testing::TestParamInfo<DenseCase>& info)
{
	std::string s;
	for (uint32_t d : info.param.x_dims)
		s += std::to_string(d) + "x";
	s += std::to_string(info.param.N) + (info.param.bias ? "_bias" : "_nobias");
	return s + (info.param.fallback ? "_fallback" : "");
}

class DenseTest : public ::testing::TestWithParam<DenseCase> {};

TEST_P(DenseTest, MatchesReference)
{
	const DenseCase& c = GetParam();
	const uint32_t K = c.x_dims.back();
	uint64_t M = 1;
	for (std::size_t i = 0; i + 1 < c.x_dims.size(); i++)
		M *= c.x_dims[i];
	std::vector<uint32_t> y_dims = c.x_dims;
	y_dims.back() = c.N;

	Program p;
	const uint32_t x = p.input(c.x_dims);
	const uint32_t w = p.variable(1, "params", "kernel", {K, c.N});
	const int64_t b = c.bias ? int64_t(p.variable(1, "params", "bias", {c.N})) : -1;
	const uint32_t y = p.output(y_dims);
	p.dense(1, x, w, b, y);

	auto xv = random_vector(M * K, 1);
	auto wv = random_vector(uint64_t(K) * c.N, 2);
	auto bv = random_vector(c.N, 3);
	std::vector<float> yv(M * c.N, NAN);
	Bindings mem(p);
	mem.host(x, xv);
	mem.var(w, &wv, 0, 0);
	if (c.bias)
		mem.var(uint32_t(b), &bv, 0, 0);
	mem.host(y, yv);

	auto ex = rt::Executor::create(device(c.fallback));
	run(*ex, p, mem);
	EXPECT_CLOSE(yv, flaxdrm::ref::dense(xv, wv, c.bias ? &bv : nullptr, M, K, c.N), K);
}

INSTANTIATE_TEST_SUITE_P(
	Shapes, DenseTest,
	::testing::Values(
		DenseCase{{1, 1}, 1, false}, DenseCase{{1, 1}, 1, true}, DenseCase{{7, 13}, 29, false},
		DenseCase{{7, 13}, 29, true}, DenseCase{{64, 64}, 64, true}, DenseCase{{65, 63}, 67, true},
		DenseCase{{128, 256}, 64, false},      // vec4 path, exact tiles
		DenseCase{{3, 8}, 4, true},            // vec4 path, tiny
		DenseCase{{100, 36}, 20, true},        // vec4 path, partial tiles
		DenseCase{{257, 511}, 129, true}, DenseCase{{257, 511}, 129, false},
		DenseCase{{2, 3, 5}, 11, true},        // rank-3 input: M = 6
		DenseCase{{2, 3, 4, 8}, 12, true},     // rank-4, vec4
		DenseCase{{19}, 17, true},             // rank-1 input: M = 1
		DenseCase{{1, 300}, 1000, true},       // one row, wide
		DenseCase{{130, 36}, 100, true},       // CPU texel path: partial row and column tiles
		DenseCase{{1, 64}, 8, true},           // CPU texel path: M = 1
		DenseCase{{3, 5, 4}, 1028, false},     // CPU texel path: M = 15, N past one tile
		DenseCase{{200, 1028}, 36, true},      // CPU texel path: long K
		DenseCase{{7, 13}, 29, true, true},    // fallback paths (scalar tiles)
		DenseCase{{100, 36}, 20, true, true},  // fallback paths (vec4 tiles)
		DenseCase{{128, 256}, 64, false, true},
		DenseCase{{257, 511}, 129, true, true}),
	case_name);

// ------------------------------------------------------------ relu

class ReluTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(ReluTest, MatchesReference)
{
	const uint32_t n = GetParam();
	Program p;
	const uint32_t x = p.input({n});
	const uint32_t y = p.output({n});
	p.relu(x, y);
	auto xv = random_vector(n, 4);
	std::vector<float> yv(n, NAN);
	Bindings mem(p);
	mem.host(x, xv);
	mem.host(y, yv);
	auto ex = rt::Executor::create(device());
	run(*ex, p, mem);
	EXPECT_EQ(yv, flaxdrm::ref::relu(xv));
}

INSTANTIATE_TEST_SUITE_P(Sizes, ReluTest, ::testing::Values(1u, 3u, 255u, 256u, 257u, 100003u, 1u << 21));

TEST(Relu, Rank3)
{
	Program p;
	const uint32_t x = p.input({3, 5, 7});
	const uint32_t y = p.output({3, 5, 7});
	p.relu(x, y);
	auto xv = random_vector(105, 5);
	std::vector<float> yv(105, NAN);
	Bindings mem(p);
	mem.host(x, xv);
	mem.host(y, yv);
	auto ex = rt::Executor::create(device(true));
	run(*ex, p, mem);
	EXPECT_EQ(yv, flaxdrm::ref::relu(xv));
}

// ------------------------------------------------------------ programs

// x[5, 3, 33] -> Dense_0 (33 -> 40) -> relu -> Dense_1 (40 -> 10), with
// TEMP tensors between the ops.
struct Mlp {
	Program p;
	uint32_t x, w0, b0, h, hr, w1, b1, y;
	std::vector<float> xv = random_vector(5 * 3 * 33, 10), w0v = random_vector(33 * 40, 11),
			   b0v = random_vector(40, 12), w1v = random_vector(40 * 10, 13),
			   b1v = random_vector(10, 14);
	Mlp()
	{
		x = p.input({5, 3, 33});
		w0 = p.variable(2, "params", "kernel", {33, 40});
		b0 = p.variable(2, "params", "bias", {40});
		h = p.temp({5, 3, 40});
		hr = p.temp({5, 3, 40});
		w1 = p.variable(3, "params", "kernel", {40, 10});
		b1 = p.variable(3, "params", "bias", {10});
		y = p.output({5, 3, 10});
		p.dense(2, x, w0, b0, h);
		p.relu(h, hr);
		p.dense(3, hr, w1, b1, y);
	}
	std::vector<float> reference() const
	{
		auto h1 = flaxdrm::ref::relu(flaxdrm::ref::dense(xv, w0v, &b0v, 15, 33, 40));
		return flaxdrm::ref::dense(h1, w1v, &b1v, 15, 40, 10);
	}
};

void run_mlp(bool fallback)
{
	Mlp m;
	std::vector<float> yv(150, NAN);
	Bindings mem(m.p);
	mem.host(m.x, m.xv);
	mem.var(m.w0, &m.w0v, 100, 1);
	mem.var(m.b0, &m.b0v, 101, 1);
	mem.var(m.w1, &m.w1v, 102, 1);
	mem.var(m.b1, &m.b1v, 103, 1);
	mem.host(m.y, yv);
	auto ex = rt::Executor::create(device(fallback));
	rt::RunStats stats = run(*ex, m.p, mem);
	EXPECT_CLOSE(yv, m.reference(), 40);
	EXPECT_GT(stats.total_ns, 0u);
	if (device(fallback).info().timestamps) {
		ASSERT_EQ(stats.ops.size(), 3u);
		for (uint32_t i = 0; i < 3; i++) {
			EXPECT_EQ(stats.ops[i].op_index, i);
			EXPECT_EQ(stats.ops[i].opcode, m.p.ops[i].opcode);
			EXPECT_LE(stats.ops[i].start_ns, stats.ops[i].end_ns);
			if (i) {
				EXPECT_LE(stats.ops[i - 1].end_ns, stats.ops[i].start_ns);
			}
		}
	}
	// keyed variables became resident
	EXPECT_EQ(ex->resident_variables(), 4u);

	// a second run on the same executor reuses everything
	std::fill(yv.begin(), yv.end(), NAN);
	run(*ex, m.p, mem);
	EXPECT_CLOSE(yv, m.reference(), 40);
}

TEST(Program, DenseReluDense) { run_mlp(false); }
TEST(Program, DenseReluDenseFallbackPaths) { run_mlp(true); }

TEST(Program, ManyOpsChain)
{
	// 40 relus in a chain through TEMPs: every op depends on the last.
	Program p;
	uint32_t cur = p.input({1000});
	for (int i = 0; i < 40; i++) {
		uint32_t next = i == 39 ? p.output({1000}) : p.temp({1000});
		p.relu(cur, next);
		cur = next;
	}
	auto xv = random_vector(1000, 20);
	std::vector<float> yv(1000, NAN);
	Bindings mem(p);
	mem.host(0, xv);
	mem.host(cur, yv);
	auto ex = rt::Executor::create(device(true)); // pooled descriptors: 40 sets
	run(*ex, p, mem);
	EXPECT_EQ(yv, flaxdrm::ref::relu(xv));
}

// ------------------------------------------------------------ variables

class Variables : public ::testing::TestWithParam<bool> {};

TEST_P(Variables, ResidentReusedAcrossRunsAndGenerationForcesUpload)
{
	Program p;
	const uint32_t x = p.input({4, 8});
	const uint32_t w = p.variable(1, "params", "kernel", {8, 6});
	const uint32_t y = p.output({4, 6});
	p.dense(1, x, w, -1, y);
	auto xv = random_vector(32, 30);
	auto w1 = random_vector(48, 31);
	auto w2 = random_vector(48, 32);
	std::vector<float> yv(24);

	auto ex = rt::Executor::create(device(GetParam()));
	ex->load_variable(7, 1, p.tensors[w], w1.data());
	EXPECT_EQ(ex->resident_variables(), 1u);

	// resident: no host memory needed
	Bindings mem(p);
	mem.host(x, xv);
	mem.host(y, yv);
	mem.var(w, nullptr, 7, 1);
	run(*ex, p, mem);
	EXPECT_CLOSE(yv, flaxdrm::ref::dense(xv, w1, nullptr, 4, 8, 6), 8);

	// same generation: the device copy wins over different host data
	mem.var(w, &w2, 7, 1);
	run(*ex, p, mem);
	EXPECT_CLOSE(yv, flaxdrm::ref::dense(xv, w1, nullptr, 4, 8, 6), 8);

	// new generation: uploaded from host, and resident from then on
	mem.var(w, &w2, 7, 2);
	run(*ex, p, mem);
	EXPECT_CLOSE(yv, flaxdrm::ref::dense(xv, w2, nullptr, 4, 8, 6), 8);
	EXPECT_EQ(ex->resident_variables(), 1u);
	mem.var(w, nullptr, 7, 2);
	run(*ex, p, mem);
	EXPECT_CLOSE(yv, flaxdrm::ref::dense(xv, w2, nullptr, 4, 8, 6), 8);

	// load_variable with a new generation replaces the copy
	ex->load_variable(7, 3, p.tensors[w], w1.data());
	mem.var(w, nullptr, 7, 3);
	run(*ex, p, mem);
	EXPECT_CLOSE(yv, flaxdrm::ref::dense(xv, w1, nullptr, 4, 8, 6), 8);

	// dropped: no longer resident, and a run without host data is refused
	ex->drop_variable(7);
	ex->drop_variable(12345); // unknown keys are ignored
	EXPECT_EQ(ex->resident_variables(), 0u);
	rt::Error e = expect_error([&] { run(*ex, p, mem); });
	EXPECT_EQ(e.status(), -EINVAL);
	EXPECT_THAT(e.what(), HasSubstr("params/kernel"));
}

TEST_P(Variables, WritableVariableIsCopiedBack)
{
	// Dense writes a mutable variable (think batch_stats), then relu
	// reads it: the host copy and the resident copy are both updated.
	Program p;
	const uint32_t x = p.input({3, 5});
	const uint32_t w = p.variable(1, "params", "kernel", {5, 4});
	const uint32_t s = p.variable(1, "batch_stats", "mean", {3, 4});
	const uint32_t y = p.output({3, 4});
	p.dense(1, x, w, -1, s);
	p.relu(s, y);
	auto xv = random_vector(15, 40);
	auto wv = random_vector(20, 41);
	std::vector<float> sv(12, 0.0f), yv(12);

	auto ex = rt::Executor::create(device(GetParam()));
	Bindings mem(p);
	mem.host(x, xv);
	mem.host(y, yv);
	mem.var(w, &wv, 1, 1);
	mem.var(s, &sv, 2, 1, true);
	run(*ex, p, mem);
	const auto want = flaxdrm::ref::dense(xv, wv, nullptr, 3, 5, 4);
	EXPECT_CLOSE(sv, want, 5);
	EXPECT_CLOSE(yv, flaxdrm::ref::relu(want), 5);

	// a variable written without write permission is refused
	mem.var(s, &sv, 2, 1, false);
	rt::Error e = expect_error([&] { run(*ex, p, mem); });
	EXPECT_EQ(e.status(), -EINVAL);
	EXPECT_THAT(e.what(), HasSubstr("op 0 (Dense)"));
	EXPECT_THAT(e.what(), HasSubstr("batch_stats/mean"));
}

TEST_P(Variables, UnkeyedVariableIsNotCached)
{
	Program p;
	const uint32_t x = p.input({2, 3});
	const uint32_t w = p.variable(1, "params", "kernel", {3, 2});
	const uint32_t y = p.output({2, 2});
	p.dense(1, x, w, -1, y);
	auto xv = random_vector(6, 50), w1 = random_vector(6, 51), w2 = random_vector(6, 52);
	std::vector<float> yv(4);
	auto ex = rt::Executor::create(device(GetParam()));
	Bindings mem(p);
	mem.host(x, xv);
	mem.host(y, yv);
	mem.var(w, &w1, 0, 0);
	run(*ex, p, mem);
	EXPECT_CLOSE(yv, flaxdrm::ref::dense(xv, w1, nullptr, 2, 3, 2), 3);
	EXPECT_EQ(ex->resident_variables(), 0u);
	mem.var(w, &w2, 0, 0);
	run(*ex, p, mem);
	EXPECT_CLOSE(yv, flaxdrm::ref::dense(xv, w2, nullptr, 2, 3, 2), 3);
}

INSTANTIATE_TEST_SUITE_P(Paths, Variables, ::testing::Values(false, true),
			 [](const auto& info) { return info.param ? "fallback" : "default"; });

// ------------------------------------------------------------ recording

// Runs an executor's programs again and again: the second run of a
// program with the same memory layout replays the first one's command
// buffer, and replaying gives bit for bit what a fresh recording gives.
class Recording : public ::testing::TestWithParam<bool> {};

TEST_P(Recording, ReplayEqualsFreshRecordingWithNewDataEachRun)
{
	const bool fallback = GetParam();
	Mlp m;
	auto ex = rt::Executor::create(device(fallback));
	const bool timestamps = device(fallback).info().timestamps;
	for (uint32_t run_index = 0; run_index < 5; run_index++) {
		m.xv = random_vector(m.xv.size(), 200 + run_index);
		std::vector<float> yv(150, NAN), fresh_yv(150, NAN);
		Bindings mem(m.p);
		mem.host(m.x, m.xv);
		mem.var(m.w0, &m.w0v, 100, 1);
		mem.var(m.b0, &m.b0v, 101, 1);
		mem.var(m.w1, &m.w1v, 102, 1);
		mem.var(m.b1, &m.b1v, 103, 1);
		mem.host(m.y, yv);
		const rt::RunStats stats = run(*ex, m.p, mem);

		// The same run on a new executor records it anew.
		mem.host(m.y, fresh_yv);
		auto fresh = rt::Executor::create(device(fallback));
		const rt::RunStats fresh_stats = run(*fresh, m.p, mem);
		EXPECT_FALSE(fresh_stats.replayed);

		EXPECT_EQ(std::memcmp(yv.data(), fresh_yv.data(), yv.size() * 4), 0) << "run " << run_index;
		EXPECT_CLOSE(yv, m.reference(), 40);
		// The first run uploads the variables; where that is a staging
		// copy in the command buffer, the second run (variables resident
		// now) records again.
		const uint32_t first_replay = fallback ? 2 : 1;
		EXPECT_EQ(stats.replayed, run_index >= first_replay) << "run " << run_index;
		if (timestamps) {
			ASSERT_EQ(stats.ops.size(), 3u);
			for (uint32_t i = 0; i < 3; i++) {
				EXPECT_EQ(stats.ops[i].op_index, i);
				EXPECT_LE(stats.ops[i].start_ns, stats.ops[i].end_ns);
				if (i) {
					EXPECT_LE(stats.ops[i - 1].end_ns, stats.ops[i].start_ns);
				}
			}
		}
	}
	const rt::RecordingStats rs = ex->recording_stats();
	EXPECT_EQ(rs.recordings, fallback ? 2u : 1u);
	EXPECT_EQ(rs.replays, fallback ? 3u : 4u);
	EXPECT_EQ(rs.kept, 1u);
}

// relu over n elements through a TEMP: x -> relu -> t -> relu -> y.
struct ReluPair {
	Program p;
	uint32_t x, t, y;
	explicit ReluPair(uint32_t n)
	{
		x = p.input({n});
		t = p.temp({n});
		y = p.output({n});
		p.relu(x, t);
		p.relu(t, y);
	}
	// Runs it on xv and checks the result; returns whether it replayed.
	bool run_and_check(rt::Executor& ex, uint32_t seed)
	{
		auto xv = random_vector(p.tensors[x].dims[0], seed);
		std::vector<float> yv(xv.size(), NAN);
		Bindings mem(p);
		mem.host(x, xv);
		mem.host(y, yv);
		const bool replayed = run(ex, p, mem).replayed;
		EXPECT_EQ(yv, flaxdrm::ref::relu(xv));
		return replayed;
	}
};

TEST_P(Recording, ChangedShapeRecordsAgainAndBothRecordingsAreKept)
{
	auto ex = rt::Executor::create(device(GetParam()));
	ReluPair a(1000), b(1001);
	EXPECT_FALSE(a.run_and_check(*ex, 1));
	EXPECT_TRUE(a.run_and_check(*ex, 2));
	EXPECT_FALSE(b.run_and_check(*ex, 3)); // another shape: another program
	EXPECT_TRUE(b.run_and_check(*ex, 4));
	EXPECT_TRUE(a.run_and_check(*ex, 5)); // a's recording is still there
	EXPECT_EQ(ex->recording_stats().kept, 2u);
	EXPECT_EQ(ex->recording_stats().recordings, 2u);
}

TEST_P(Recording, GrownArenaRecordsAgain)
{
	auto ex = rt::Executor::create(device(GetParam()));
	ReluPair small(256);
	EXPECT_FALSE(small.run_and_check(*ex, 1));
	EXPECT_TRUE(small.run_and_check(*ex, 2));
	// 8 MiB of inputs, outputs and temporaries: every arena the small
	// program's recording refers to is replaced by a bigger one.
	ReluPair big(1 << 21);
	EXPECT_FALSE(big.run_and_check(*ex, 3));
	EXPECT_FALSE(small.run_and_check(*ex, 4));
	EXPECT_TRUE(small.run_and_check(*ex, 5));
	EXPECT_TRUE(big.run_and_check(*ex, 6)); // fits the arenas it grew
}

TEST_P(Recording, ReloadedVariableRecordsAgain)
{
	Program p;
	const uint32_t x = p.input({4, 8});
	const uint32_t w = p.variable(1, "params", "kernel", {8, 6});
	const uint32_t y = p.output({4, 6});
	p.dense(1, x, w, -1, y);
	auto xv = random_vector(32, 70), w1 = random_vector(48, 71), w2 = random_vector(48, 72);
	std::vector<float> yv(24);
	auto ex = rt::Executor::create(device(GetParam()));
	Bindings mem(p);
	mem.host(x, xv);
	mem.host(y, yv);
	mem.var(w, nullptr, 7, 1);
	ex->load_variable(7, 1, p.tensors[w], w1.data());
	EXPECT_FALSE(run(*ex, p, mem).replayed);
	EXPECT_TRUE(run(*ex, p, mem).replayed);
	EXPECT_CLOSE(yv, flaxdrm::ref::dense(xv, w1, nullptr, 4, 8, 6), 8);

	// A new buffer for the variable: the recording that used the old
	// one is not submitted again.
	ex->load_variable(7, 2, p.tensors[w], w2.data());
	mem.var(w, nullptr, 7, 2);
	EXPECT_FALSE(run(*ex, p, mem).replayed);
	EXPECT_CLOSE(yv, flaxdrm::ref::dense(xv, w2, nullptr, 4, 8, 6), 8);
	EXPECT_TRUE(run(*ex, p, mem).replayed);
	EXPECT_CLOSE(yv, flaxdrm::ref::dense(xv, w2, nullptr, 4, 8, 6), 8);
}

TEST_P(Recording, DropoutWithANewSeedEachRunGivesANewMask)
{
	// The seed is an attribute of the op, so a new rng makes another
	// program: recorded anew, with its own mask; the same seed again
	// replays and gives the same mask.
	const uint32_t n = 4096;
	const float rate = 0.5f;
	auto make = [&](uint32_t s0, uint32_t s1) {
		Program p;
		const uint32_t x = p.input({n});
		const uint32_t y = p.output({n});
		p.op(FLAXDRM_OP_DROPOUT, 0, {x}, {y});
		p.ops.back().attrs[0] = flaxdrm::ref::f32_bits(rate);
		p.ops.back().attrs[1] = s0;
		p.ops.back().attrs[2] = s1;
		return p;
	};
	auto xv = random_vector(n, 80);
	for (float& v : xv)
		v = 1.0f + std::fabs(v); // never zero: a zero output is a dropped element
	auto ex = rt::Executor::create(device(GetParam()));
	auto run_seed = [&](uint32_t s0, uint32_t s1, bool want_replayed) {
		Program p = make(s0, s1);
		std::vector<float> yv(n, NAN);
		Bindings mem(p);
		mem.host(0, xv);
		mem.host(1, yv);
		EXPECT_EQ(run(*ex, p, mem).replayed, want_replayed) << s0 << " " << s1;
		std::size_t wrong = 0;
		for (uint32_t i = 0; i < n; i++) {
			const bool keep = flaxdrm::ref::dropout_keep(rate, s0, s1, i);
			wrong += yv[i] != (keep ? xv[i] / float(1.0 - double(rate)) : 0.0f);
		}
		EXPECT_EQ(wrong, 0u) << s0 << " " << s1;
		return yv;
	};
	const auto a = run_seed(1, 2, false);
	const auto b = run_seed(3, 4, false);
	const auto c = run_seed(5, 6, false);
	EXPECT_EQ(run_seed(1, 2, true), a);
	EXPECT_NE(a, b);
	EXPECT_NE(b, c);
}

TEST_P(Recording, LeastRecentlyRunProgramIsRecordedOver)
{
	auto ex = rt::Executor::create(device(GetParam()));
	std::vector<ReluPair> programs;
	for (uint32_t i = 0; i < 20; i++)
		programs.emplace_back(100 + i);
	for (uint32_t i = 0; i < 20; i++)
		EXPECT_FALSE(programs[i].run_and_check(*ex, i));
	const std::size_t kept = ex->recording_stats().kept;
	EXPECT_GE(kept, 1u);
	EXPECT_LT(kept, 20u);
	EXPECT_TRUE(programs[19].run_and_check(*ex, 30));
	EXPECT_FALSE(programs[0].run_and_check(*ex, 31)); // recorded over
	EXPECT_TRUE(programs[0].run_and_check(*ex, 32));
	EXPECT_EQ(ex->recording_stats().kept, kept);
}

INSTANTIATE_TEST_SUITE_P(Paths, Recording, ::testing::Values(false, true),
			 [](const auto& info) { return info.param ? "fallback" : "default"; });

// ------------------------------------------------------------ temporaries

TEST(Temporaries, ChainReusesTwoBuffers)
{
	// 40 relus through 39 TEMPs: each TEMP dies when the next op has
	// read it, so two blocks of memory serve them all.
	Program p;
	uint32_t cur = p.input({1000});
	for (int i = 0; i < 40; i++) {
		uint32_t next = i == 39 ? p.output({1000}) : p.temp({1000});
		p.relu(cur, next);
		cur = next;
	}
	for (bool fallback : {false, true}) {
		auto xv = random_vector(1000, 21);
		std::vector<float> yv(1000, NAN);
		Bindings mem(p);
		mem.host(0, xv);
		mem.host(cur, yv);
		auto ex = rt::Executor::create(device(fallback));
		const rt::RunStats stats = run(*ex, p, mem);
		EXPECT_EQ(yv, flaxdrm::ref::relu(xv));
		EXPECT_GE(stats.temp_bytes, 2 * 4000u);
		EXPECT_LE(stats.temp_bytes, 2 * 4096u);
		EXPECT_EQ(stats.op_barriers, 39u); // every op reads the one before
	}
}

TEST(Temporaries, LiveTogetherNeverShareAndReuseWaitsForReaders)
{
	// t0 = relu(x0); y0 = relu(t0); t1 = relu(x1); y1 = t1 + s, where
	// s = relu(t0) is computed first and lives until the end. t1 may
	// take t0's memory only once y0's and s's ops have read t0: op 3
	// depends on nothing in flight, so only the reuse orders it after
	// them.
	const uint32_t n = 1 << 16; // a multiple of any offset alignment
	Program p;
	const uint32_t x0 = p.input({n}), x1 = p.input({n});
	const uint32_t t0 = p.temp({n}), s = p.temp({n}), t1 = p.temp({n});
	const uint32_t y0 = p.output({n}), y1 = p.output({n});
	p.relu(x0, t0);                        // op 0
	p.relu(t0, s);                         // op 1
	p.relu(t0, y0);                        // op 2
	p.relu(x1, t1);                        // op 3: may reuse t0's bytes
	p.op(FLAXDRM_OP_ADD, 0, {t1, s}, {y1}); // op 4
	for (bool fallback : {false, true}) {
		auto x0v = random_vector(n, 90), x1v = random_vector(n, 91);
		std::vector<float> y0v(n, NAN), y1v(n, NAN);
		Bindings mem(p);
		mem.host(x0, x0v);
		mem.host(x1, x1v);
		mem.host(y0, y0v);
		mem.host(y1, y1v);
		auto ex = rt::Executor::create(device(fallback));
		for (int i = 0; i < 3; i++) {
			std::fill(y0v.begin(), y0v.end(), NAN);
			std::fill(y1v.begin(), y1v.end(), NAN);
			const rt::RunStats stats = run(*ex, p, mem);
			EXPECT_EQ(stats.temp_bytes, 2 * n * 4u) << "t0 and t1 share";
			// Before op 1 (reads t0), op 3 (overwrites t0's bytes, which
			// ops 1 and 2 read) and op 4 (reads t1).
			EXPECT_EQ(stats.op_barriers, 3u);
			const auto r0 = flaxdrm::ref::relu(x0v), r1 = flaxdrm::ref::relu(x1v);
			EXPECT_EQ(y0v, r0);
			std::vector<float> want(n);
			for (uint32_t j = 0; j < n; j++)
				want[j] = r1[j] + r0[j];
			EXPECT_EQ(y1v, want);
		}
	}
}

// ------------------------------------------------------------ refusals

TEST(Refusals, ShapeMismatchNamesOpAndTensor)
{
	Program p;
	const uint32_t x = p.input({4, 8});
	const uint32_t w0 = p.variable(1, "params", "kernel", {8, 6});
	const uint32_t h = p.temp({4, 6});
	const uint32_t w1 = p.variable(2, "params", "kernel", {7, 3}); // should be [6, 3]
	const uint32_t y = p.output({4, 3});
	p.dense(1, x, w0, -1, h);
	p.dense(2, h, w1, -1, y);
	std::vector<float> xv(32), w0v(48), w1v(21), yv(12);
	Bindings mem(p);
	mem.host(x, xv);
	mem.host(y, yv);
	mem.var(w0, &w0v, 0, 0);
	mem.var(w1, &w1v, 0, 0);
	auto ex = rt::Executor::create(device());
	rt::Error e = expect_error([&] { run(*ex, p, mem); });
	EXPECT_EQ(e.status(), -EINVAL);
	EXPECT_THAT(e.what(), HasSubstr("op 1 (Dense)"));
	EXPECT_THAT(e.what(), HasSubstr("tensor 3"));
	EXPECT_THAT(e.what(), HasSubstr("params/kernel"));
	EXPECT_THAT(e.what(), HasSubstr("[7, 3]"));
}

TEST(Refusals, ReadBeforeWriteAndUnknownOpcode)
{
	auto ex = rt::Executor::create(device());
	{
		Program p;
		const uint32_t t = p.temp({4});
		const uint32_t y = p.output({4});
		p.relu(t, y);
		std::vector<float> yv(4);
		Bindings mem(p);
		mem.host(y, yv);
		rt::Error e = expect_error([&] { run(*ex, p, mem); });
		EXPECT_EQ(e.status(), -EINVAL);
		EXPECT_THAT(e.what(), HasSubstr("op 0 (relu)"));
		EXPECT_THAT(e.what(), HasSubstr("tensor 0 (temp"));
	}
	{
		Program p;
		const uint32_t x = p.input({4});
		const uint32_t y = p.output({4});
		p.relu(x, y);
		p.ops[0].opcode = 99;
		std::vector<float> xv(4), yv(4);
		Bindings mem(p);
		mem.host(x, xv);
		mem.host(y, yv);
		rt::Error e = expect_error([&] { run(*ex, p, mem); });
		EXPECT_EQ(e.status(), -EINVAL);
		EXPECT_THAT(e.what(), HasSubstr("op 0 (unknown)"));
	}
}

TEST(Refusals, BadMemory)
{
	Program p;
	const uint32_t x = p.input({4});
	const uint32_t y = p.output({4});
	p.relu(x, y);
	std::vector<float> xv(4), yv(3);
	auto ex = rt::Executor::create(device());

	Bindings wrong_count(p);
	wrong_count.mem.pop_back();
	EXPECT_EQ(expect_error([&] { run(*ex, p, wrong_count); }).status(), -EINVAL);

	Bindings small(p);
	small.host(x, xv);
	small.host(y, yv); // 12 bytes for a 16-byte output
	rt::Error e = expect_error([&] { run(*ex, p, small); });
	EXPECT_EQ(e.status(), -EINVAL);
	EXPECT_THAT(e.what(), HasSubstr("tensor 1 (output"));

	Bindings missing(p);
	missing.host(y, xv);
	EXPECT_EQ(expect_error([&] { run(*ex, p, missing); }).status(), -EINVAL);

	// after refusals the executor still works
	std::vector<float> out(4);
	Bindings ok(p);
	xv = {-1, 2, -3, 4};
	ok.host(x, xv);
	ok.host(y, out);
	run(*ex, p, ok);
	EXPECT_EQ(out, (std::vector<float>{0, 2, 0, 4}));
}

TEST(Refusals, LoadVariableWithBadShape)
{
	auto ex = rt::Executor::create(device());
	drm_flaxdrm_tensor t;
	std::memset(&t, 0, sizeof t);
	t.kind = FLAXDRM_TENSOR_VARIABLE;
	t.dtype = FLAXDRM_DTYPE_F32;
	t.rank = 2;
	t.dims[0] = 3; // dims[1] == 0
	float data[3] = {};
	EXPECT_EQ(expect_error([&] { ex->load_variable(1, 1, t, data); }).status(), -EINVAL);
	t.dims[1] = 1;
	EXPECT_EQ(expect_error([&] { ex->load_variable(1, 1, t, nullptr); }).status(), -EINVAL);
	EXPECT_EQ(ex->resident_variables(), 0u);
}

// ------------------------------------------------------------ timeout

TEST(Timeout, RunPastTheBoundIsETIMEDOUTAndTheExecutorRecovers)
{
	// A 768^3 GEMM takes well over 1 ms on any device this runs on.
	const uint32_t n = 768;
	Program p;
	const uint32_t x = p.input({n, n});
	const uint32_t w = p.variable(1, "params", "kernel", {n, n});
	const uint32_t y = p.output({n, n});
	p.dense(1, x, w, -1, y);
	auto xv = random_vector(n * n, 60), wv = random_vector(n * n, 61);
	std::vector<float> yv(n * n);
	Bindings mem(p);
	mem.host(x, xv);
	mem.host(y, yv);
	mem.var(w, &wv, 5, 1);

	rt::ExecutorOptions o;
	o.timeout_ms = 1;
	auto ex = rt::Executor::create(device(), o);
	// warm the pipeline cache so that the timed run is all GPU work
	{
		auto warm = rt::Executor::create(device());
		run(*warm, p, mem);
	}
	rt::Error e = expect_error([&] { run(*ex, p, mem); });
	EXPECT_EQ(e.status(), -ETIMEDOUT);
	EXPECT_EQ(ex->resident_variables(), 0u); // never committed

	// It recovers once the device is done: later runs either report
	// the device still busy (-ETIMEDOUT) or succeed.
	Program small;
	const uint32_t sx = small.input({4});
	const uint32_t sy = small.output({4});
	small.relu(sx, sy);
	std::vector<float> sxv = {-1, 1, -2, 2}, syv(4);
	Bindings smem(small);
	smem.host(sx, sxv);
	smem.host(sy, syv);
	bool done = false;
	for (int i = 0; i < 600 && !done; i++) {
		try {
			run(*ex, small, smem);
			done = true;
		} catch (const rt::Error& err) {
			ASSERT_EQ(err.status(), -ETIMEDOUT);
			std::this_thread::sleep_for(std::chrono::milliseconds(50));
		}
	}
	ASSERT_TRUE(done);
	EXPECT_EQ(syv, (std::vector<float>{0, 1, 0, 2}));
}

} // namespace
