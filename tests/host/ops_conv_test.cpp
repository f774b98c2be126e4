// Convolution family on the runtime: Conv/ConvTranspose (FLAXDRM_OP_CONV),
// avg_pool, max_pool. Checked against torch goldens (tests/tools/
// golden_conv.py, run at test time: python3 with torch is required), the
// plain CPU reference (reference_conv.hpp) over many shapes, on the default
// device (texel fast paths on a CPU device) and the fallback device
// (portable storage-buffer kernels); plus the client-side padding helpers
// (userspace/include/flaxdrm/conv_padding.hpp).
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>

#include <gtest/gtest.h>

#include "flaxdrm/conv_padding.hpp"
#include "ops_conv_util.hpp"

namespace {

using namespace flaxdrm::optest;
namespace ref = flaxdrm::ref;
namespace fs = std::filesystem;

constexpr double kTol = 1e-9; // f32 accumulation against double: ~1e-13 typical

// ------------------------------------------------------------ programs

std::vector<float> run_conv(const ref::ConvParams& c, std::vector<float>& x, std::vector<float>& w,
			    std::vector<float>* bias, bool fallback, double* ms = nullptr, int reps = 1)
{
	Program p = conv_program(c, bias != nullptr, FLAXDRM_DTYPE_F32);
	std::vector<float> y(c.y_size(), -12345.0f);
	Bindings b(p);
	b.host(0, x);
	b.host(1, w);
	if (bias)
		b.host(2, *bias);
	b.host(uint32_t(p.tensors.size() - 1), y);
	executor(fallback).run(p.tensors, p.ops, b.mem);
	if (ms) {
		const auto t0 = std::chrono::steady_clock::now();
		for (int i = 0; i < reps; i++)
			executor(fallback).run(p.tensors, p.ops, b.mem);
		*ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
	}
	return y;
}

std::vector<float> run_pool(const ref::PoolParams& q, bool max, std::vector<float>& x, bool fallback)
{
	Program p = pool_program(q, max, FLAXDRM_DTYPE_F32);
	std::vector<float> y(q.y_size(), -12345.0f);
	Bindings b(p);
	b.host(0, x);
	b.host(1, y);
	executor(fallback).run(p.tensors, p.ops, b.mem);
	return y;
}

// ------------------------------------------------------------ padding helpers

TEST(ConvPadding, SameMatchesXla)
{
	using flaxdrm::Padding;
	using flaxdrm::same_padding;
	EXPECT_EQ(same_padding(56, 3, 1), (Padding{1, 1}));
	EXPECT_EQ(same_padding(56, 3, 2), (Padding{0, 1}));    // smaller half before
	EXPECT_EQ(same_padding(224, 7, 2), (Padding{2, 3}));
	EXPECT_EQ(same_padding(5, 4, 1), (Padding{1, 2}));
	EXPECT_EQ(same_padding(8, 1, 2), (Padding{0, 0}));
	EXPECT_EQ(same_padding(3, 5, 3), (Padding{1, 1}));     // out 1: (0) + 5 - 3 = 2
	EXPECT_EQ(same_padding(10, 3, 1, 2), (Padding{2, 2})); // dilated k = 5
	EXPECT_EQ(same_padding(7, 2, 4), (Padding{0, 0}));     // out 2: 4 + 2 - 7 < 0
	EXPECT_EQ(flaxdrm::causal_padding(3, 2), (Padding{4, 0}));
	EXPECT_EQ(flaxdrm::causal_padding(1), (Padding{0, 0}));
}

TEST(ConvPadding, ConvTransposeMatchesJax)
{
	using flaxdrm::conv_transpose_padding;
	using flaxdrm::Padding;
	// jax _conv_transpose_padding(k, s, 'SAME'/'VALID') by hand
	EXPECT_EQ(conv_transpose_padding(3, 2, 1, true), (Padding{2, 1}));  // k=3 s=2: pad_len 3, s <= k-1: ceil 1.5 = 2
	EXPECT_EQ(conv_transpose_padding(3, 2, 1, false), (Padding{2, 2})); // pad_len 3 + 1, pad_a 2
	EXPECT_EQ(conv_transpose_padding(2, 3, 1, true), (Padding{1, 2}));  // s > k-1: pad_a = k-1
	EXPECT_EQ(conv_transpose_padding(4, 2, 1, true), (Padding{2, 2}));
	EXPECT_EQ(conv_transpose_padding(1, 1, 1, true), (Padding{0, 0}));
	EXPECT_EQ(conv_transpose_padding(3, 1, 2, false), (Padding{4, 4})); // dilated k = 5
	// output sizes: SAME gives in * s, VALID gives in * s + max(k - s, 0)
	for (uint32_t k = 1; k <= 5; k++)
		for (uint32_t s = 1; s <= 4; s++)
			for (uint32_t in = 1; in <= 6; in++) {
				const auto ps = conv_transpose_padding(k, s, 1, true);
				const auto pv = conv_transpose_padding(k, s, 1, false);
				EXPECT_EQ(flaxdrm::conv_output_size(in, s, ps, k, 1, 1), uint64_t(in) * s)
					<< k << " " << s << " " << in;
				EXPECT_EQ(flaxdrm::conv_output_size(in, s, pv, k, 1, 1),
					  uint64_t(in) * s + (k > s ? k - s : 0))
					<< k << " " << s << " " << in;
			}
}

// ------------------------------------------------------------ torch goldens

struct GoldenCase {
	std::string op, name;
	std::map<std::string, std::string> kv;
	uint32_t u(const std::string& k) const { return uint32_t(std::stoul(kv.at(k))); }
};

// Runs tests/tools/golden_conv.py once per process; fails (never skips)
// when python3 or torch is missing.
const std::vector<GoldenCase>& goldens(std::string* dir_out)
{
	static std::string dir;
	static std::vector<GoldenCase> cases;
	static bool done = false;
	if (!done) {
		done = true;
		dir = (fs::temp_directory_path() / ("flaxdrm_golden_conv_" + std::to_string(::getpid()))).string();
		const char* py = std::getenv("FLAXDRM_PYTHON");
		const std::string python = py ? py : fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
		const std::string cmd =
			python + " " FLAXDRM_SOURCE_DIR "/tests/tools/golden_conv.py '" + dir + "'";
		const int rc = std::system(cmd.c_str());
		if (rc != 0) {
			ADD_FAILURE() << "golden generator failed (" << rc << "): " << cmd
				      << " (needs python3 with numpy and torch: Debian python3-torch)";
			return cases;
		}
		std::ifstream f(dir + "/manifest.txt");
		std::string line;
		while (std::getline(f, line)) {
			std::istringstream ss(line);
			GoldenCase c;
			ss >> c.op >> c.name;
			std::string item;
			while (ss >> item) {
				const auto eq = item.find('=');
				c.kv[item.substr(0, eq)] = item.substr(eq + 1);
			}
			if (!c.name.empty())
				cases.push_back(c);
		}
		EXPECT_GT(cases.size(), 20u);
	}
	*dir_out = dir;
	return cases;
}

class ConvGolden : public ::testing::TestWithParam<bool> {
public:
	static void TearDownTestSuite()
	{
		std::string dir;
		goldens(&dir);
		std::error_code ec;
		fs::remove_all(dir, ec);
	}
};

TEST_P(ConvGolden, MatchesTorch)
{
	const bool fallback = GetParam();
	std::string dir;
	const auto& cases = goldens(&dir);
	ASSERT_FALSE(cases.empty());
	for (const GoldenCase& g : cases) {
		SCOPED_TRACE(g.op + " " + g.name);
		const std::string base = dir + "/" + g.name + "_";
		std::vector<float> x = read_npy(base + "x.npy");
		const std::vector<float> want = read_npy(base + "y.npy");
		if (g.op == "conv") {
			ref::ConvParams c;
			c.N = g.u("N"), c.H = g.u("H"), c.W = g.u("W"), c.C = g.u("C");
			c.KH = g.u("KH"), c.KW = g.u("KW"), c.F = g.u("F");
			c.sh = g.u("sh"), c.sw = g.u("sw"), c.lh = g.u("lh"), c.lw = g.u("lw");
			c.dh = g.u("dh"), c.dw = g.u("dw"), c.groups = g.u("G"), c.circular = g.u("circular");
			c.pt = g.u("pt"), c.pb = g.u("pb"), c.pl = g.u("pl"), c.pr = g.u("pr");
			// The client-side helpers give the pads the generator used.
			const std::string pad = g.kv.at("pad");
			const flaxdrm::Padding ph{c.pt, c.pb}, pw{c.pl, c.pr};
			if (pad == "same" || pad == "circular") {
				EXPECT_EQ(flaxdrm::same_padding(c.H, c.KH, c.sh, c.dh), ph);
				EXPECT_EQ(flaxdrm::same_padding(c.W, c.KW, c.sw, c.dw), pw);
			} else if (pad == "ct_same" || pad == "ct_valid") {
				EXPECT_EQ(flaxdrm::conv_transpose_padding(c.KH, c.lh, c.dh, pad == "ct_same"), ph);
				EXPECT_EQ(flaxdrm::conv_transpose_padding(c.KW, c.lw, c.dw, pad == "ct_same"), pw);
			}
			std::vector<float> w = read_npy(base + "w.npy");
			std::vector<float> bias;
			if (g.u("bias"))
				bias = read_npy(base + "b.npy");
			double ms = 0;
			const bool timed = g.name == "resnet3x3";
			const std::vector<float> got =
				run_conv(c, x, w, g.u("bias") ? &bias : nullptr, fallback, timed ? &ms : nullptr, 3);
			ASSERT_EQ(got.size(), want.size());
			EXPECT_MATCHES(got, want, kTol);
			if (timed)
				std::printf("resnet3x3 (1x56x56x64 -> 64, 3x3 SAME)%s: %.2f ms per run\n",
					    fallback ? " [fallback]" : "", ms);
		} else {
			ref::PoolParams q;
			q.N = g.u("N"), q.H = g.u("H"), q.W = g.u("W"), q.C = g.u("C");
			q.wh = g.u("wh"), q.ww = g.u("ww"), q.sh = g.u("sh"), q.sw = g.u("sw");
			q.pt = g.u("pt"), q.pb = g.u("pb"), q.pl = g.u("pl"), q.pr = g.u("pr");
			q.count_include_pad = g.u("include_pad");
			if (g.kv.at("pad") == "same") {
				EXPECT_EQ(flaxdrm::same_padding(q.H, q.wh, q.sh), (flaxdrm::Padding{q.pt, q.pb}));
				EXPECT_EQ(flaxdrm::same_padding(q.W, q.ww, q.sw), (flaxdrm::Padding{q.pl, q.pr}));
			}
			const std::vector<float> got = run_pool(q, g.op == "max_pool", x, fallback);
			ASSERT_EQ(got.size(), want.size());
			EXPECT_MATCHES(got, want, kTol);
			// the CPU reference agrees with torch too
			EXPECT_MATCHES(ref::pool(q, x, g.op == "max_pool"), want, kTol);
		}
	}
}

INSTANTIATE_TEST_SUITE_P(Devices, ConvGolden, ::testing::Values(false, true),
			 [](const auto& info) { return info.param ? "Fallback" : "Default"; });

// ------------------------------------------------------------ CPU reference

struct ConvCase {
	ref::ConvParams c;
	bool bias;
	bool fallback;
};

class ConvRef : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvRef, MatchesReference)
{
	const ConvCase& cc = GetParam();
	const ref::ConvParams& c = cc.c;
	std::vector<float> x = random_vector(c.x_size(), 1 + c.H);
	std::vector<float> w = random_vector(c.w_size(), 2 + c.KW);
	std::vector<float> bias = random_vector(c.F, 3);
	const std::vector<float> want = ref::conv(c, x, w, cc.bias ? &bias : nullptr);
	const std::vector<float> got = run_conv(c, x, w, cc.bias ? &bias : nullptr, cc.fallback);
	EXPECT_MATCHES(got, want, kTol);
}

std::vector<ConvCase> conv_cases()
{
	const std::vector<ref::ConvParams> shapes = {
		P(1, 1, 1, 1, 1, 1, 1),
		P(1, 1, 1, 4, 1, 1, 4),
		P(1, 4, 4, 4, 3, 3, 4, {1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1}),
		P(3, 5, 7, 3, 3, 3, 5, {1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1}),
		P(2, 13, 11, 12, 3, 3, 20, {2, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1}),
		P(1, 9, 9, 8, 5, 5, 4, {1, 1, 0, 0, 2, 2, 0, 0, 4, 4, 4, 4}),
		P(1, 4, 6, 8, 3, 3, 8, {1, 1, 2, 2, 0, 0, 0, 0, 2, 2, 2, 2}),         // ConvTranspose s2 VALID
		P(2, 5, 5, 4, 4, 4, 12, {1, 1, 3, 2, 1, 1, 0, 0, 2, 3, 1, 2}),        // lhs dilation, odd
		P(1, 7, 7, 16, 3, 3, 16, {1, 1, 0, 0, 0, 0, 16, 0, 1, 1, 1, 1}),      // depthwise
		P(1, 7, 7, 12, 3, 3, 24, {2, 1, 0, 0, 0, 0, 12, 0, 1, 1, 1, 1}),      // depthwise x2
		P(2, 9, 8, 8, 3, 3, 8, {2, 1, 0, 0, 2, 1, 8, 0, 1, 2, 2, 1}),         // depthwise, strided, dilated
		P(1, 5, 6, 4, 3, 3, 4, {1, 1, 0, 0, 0, 0, 4, 1, 1, 1, 1, 1}),         // depthwise, circular
		P(1, 4, 5, 12, 3, 3, 12, {1, 1, 2, 2, 0, 0, 12, 0, 1, 1, 2, 2}),      // depthwise, input dilation
		P(1, 5, 5, 3, 3, 3, 3, {1, 1, 0, 0, 0, 0, 3, 0, 1, 1, 1, 1}),         // depthwise, C % 4 != 0
		P(1, 8, 8, 6, 3, 3, 9, {1, 1, 0, 0, 0, 0, 3, 0, 1, 1, 1, 1}),         // groups, odd
		P(1, 8, 8, 16, 3, 3, 32, {1, 1, 0, 0, 0, 0, 2, 0, 1, 1, 1, 1}),       // groups, texel
		P(2, 6, 5, 8, 3, 3, 8, {1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1}),         // circular
		P(1, 5, 5, 4, 5, 5, 4, {1, 1, 0, 0, 0, 0, 0, 1, 5, 5, 5, 5}),         // circular, pad = H
		P(1, 6, 6, 4, 3, 3, 4, {2, 2, 0, 0, 2, 1, 0, 1, 2, 1, 1, 1}),         // circular, strided, dilated
		P(1, 3, 3, 4, 3, 3, 4, {1, 1, 0, 0, 0, 0, 0, 0, 5, 5, 5, 5}),         // mostly padding
		P(2, 17, 19, 36, 3, 3, 68, {1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1}),     // not multiples of tiles
		P(1, 30, 31, 64, 3, 3, 64, {1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1}),
		P(4, 28, 28, 32, 1, 1, 128),
		P(1, 1, 40, 8, 1, 5, 12, {1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0}),       // 1-D causal
	};
	std::vector<ConvCase> v;
	for (bool fallback : {false, true})
		for (std::size_t i = 0; i < shapes.size(); i++)
			v.push_back({shapes[i], i % 2 == 0, fallback});
	return v;
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConvRef, ::testing::ValuesIn(conv_cases()), [](const auto& info) {
	return conv_name(info.param.c) + (info.param.bias ? "_bias" : "") + (info.param.fallback ? "_fallback" : "");
});

TEST(ConvSpecial, NanAndInfPropagate)
{
	for (bool fallback : {false, true}) {
		const ref::ConvParams c = P(1, 6, 6, 4, 3, 3, 4, {1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1});
		std::vector<float> x = random_vector(c.x_size(), 5);
		std::vector<float> w = random_vector(c.w_size(), 6);
		x[(1 * 6 + 1) * 4 + 2] = NAN;      // pixel (1, 1)
		x[(4 * 6 + 4) * 4 + 1] = INFINITY; // pixel (4, 4)
		const std::vector<float> want = ref::conv(c, x, w, nullptr);
		const std::vector<float> got = run_conv(c, x, w, nullptr, fallback);
		EXPECT_MATCHES(got, want, kTol);
		// the NaN poisons the 3x3 neighbourhood only; padding never reads it
		EXPECT_TRUE(std::isnan(got[0]));
		EXPECT_FALSE(std::isnan(got[(5 * 6 + 0) * 4]));
	}
}

struct PoolCase {
	ref::PoolParams q;
	bool max;
	bool fallback;
};

class PoolRef : public ::testing::TestWithParam<PoolCase> {};

TEST_P(PoolRef, MatchesReference)
{
	const PoolCase& pc = GetParam();
	std::vector<float> x = random_vector(pc.q.x_size(), 7 + pc.q.W);
	const std::vector<float> want = ref::pool(pc.q, x, pc.max);
	const std::vector<float> got = run_pool(pc.q, pc.max, x, pc.fallback);
	EXPECT_MATCHES(got, want, 1e-12);
}

std::vector<PoolCase> pool_cases()
{
	auto Q = [](uint32_t N, uint32_t H, uint32_t W, uint32_t C, uint32_t wh, uint32_t ww, uint32_t sh,
		    uint32_t sw, uint32_t pt, uint32_t pb, uint32_t pl, uint32_t pr, bool incl) {
		ref::PoolParams q;
		q.N = N, q.H = H, q.W = W, q.C = C, q.wh = wh, q.ww = ww, q.sh = sh, q.sw = sw;
		q.pt = pt, q.pb = pb, q.pl = pl, q.pr = pr, q.count_include_pad = incl;
		return q;
	};
	const std::vector<ref::PoolParams> shapes = {
		Q(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, true),
		Q(2, 4, 4, 3, 2, 2, 2, 2, 0, 0, 0, 0, true),
		Q(1, 7, 5, 5, 3, 3, 2, 2, 1, 1, 1, 1, false),
		Q(1, 7, 5, 5, 3, 3, 2, 2, 1, 1, 1, 1, true),
		Q(3, 9, 10, 17, 3, 2, 1, 3, 2, 0, 1, 1, false),
		Q(1, 3, 3, 2, 2, 2, 1, 1, 3, 3, 3, 3, false), // windows entirely in the padding
		Q(1, 3, 3, 2, 2, 2, 1, 1, 3, 3, 3, 3, true),
		Q(2, 32, 33, 64, 3, 3, 2, 2, 0, 1, 1, 1, true),
	};
	std::vector<PoolCase> v;
	for (bool fallback : {false, true})
		for (bool max : {false, true})
			for (const auto& q : shapes)
				v.push_back({q, max, fallback});
	return v;
}

INSTANTIATE_TEST_SUITE_P(Shapes, PoolRef, ::testing::ValuesIn(pool_cases()), [](const auto& info) {
	const auto& q = info.param.q;
	std::ostringstream s;
	s << (info.param.max ? "max_" : "avg_") << q.N << "x" << q.H << "x" << q.W << "x" << q.C << "_w" << q.wh
	  << "x" << q.ww << "_s" << q.sh << "x" << q.sw << "_p" << q.pt << q.pb << q.pl << q.pr
	  << (q.count_include_pad ? "_incl" : "_excl") << (info.param.fallback ? "_fallback" : "");
	return s.str();
});

// ------------------------------------------------------------ refusals

TEST(ConvRefuse, BadAttributesAndShapes)
{
	const ref::ConvParams c = P(1, 4, 4, 4, 3, 3, 4);
	std::vector<float> x(c.x_size()), w(c.w_size()), y(4 * 4 * 4);
	auto attempt = [&](std::vector<uint32_t> attrs, std::vector<uint32_t> wdims, std::vector<uint32_t> ydims) {
		Program p;
		const uint32_t tx = p.input({1, 4, 4, 4});
		const uint32_t tw = p.variable(1, "kernel", wdims);
		const uint32_t ty = p.output(ydims);
		p.op(FLAXDRM_OP_CONV, 1, {tx, tw}, {ty}, attrs);
		Bindings b(p);
		b.host(tx, x);
		b.host(tw, w);
		b.host(ty, y);
		try {
			executor(false).run(p.tensors, p.ops, b.mem);
		} catch (const rt::Error& e) {
			return e.status();
		}
		return 0;
	};
	// valid: 3x3 pad 1 keeps 4x4
	EXPECT_EQ(attempt({1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1}, {3, 3, 4, 4}, {1, 4, 4, 4}), 0);
	EXPECT_EQ(attempt({0, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1}, {3, 3, 4, 4}, {1, 4, 4, 4}), -EINVAL); // stride 0
	EXPECT_EQ(attempt({1, 1, 1, 1, 1, 1, 3, 0, 1, 1, 1, 1}, {3, 3, 4, 4}, {1, 4, 4, 4}), -EINVAL); // 3 !| 4
	EXPECT_EQ(attempt({1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1}, {3, 3, 4, 4}, {1, 4, 4, 4}), -EINVAL); // mode
	EXPECT_EQ(attempt({1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1}, {3, 3, 2, 4}, {1, 4, 4, 4}), -EINVAL); // C/G
	EXPECT_EQ(attempt({1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0}, {3, 3, 4, 4}, {1, 4, 4, 4}), -EINVAL); // y dims
	EXPECT_EQ(attempt({1, 1, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1}, {3, 3, 4, 4}, {1, 9, 9, 4}), -EINVAL); // circ+dil
	EXPECT_EQ(attempt({1, 1, 1, 1, 1, 1, 1, 1, 5, 1, 1, 1}, {3, 3, 4, 4}, {1, 7, 4, 4}), -EINVAL); // wraps twice
}

} // namespace

namespace {

// Timing only (run with --gtest_also_run_disabled_tests): the ResNet-style
// 3x3 layer, 56x56x64 -> 64, stride 1, SAME, bias, N = 1 and 8.
TEST(ConvBench, DISABLED_Resnet3x3)
{
	for (uint32_t n : {1u, 8u}) {
		const ref::ConvParams c = P(n, 56, 56, 64, 3, 3, 64, {1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1});
		std::vector<float> x = random_vector(c.x_size(), 1), w = random_vector(c.w_size(), 2);
		std::vector<float> bias = random_vector(c.F, 3);
		double ms = 0;
		run_conv(c, x, w, &bias, false, &ms, 5);
		std::printf("conv 3x3 %ux56x56x64 -> 64: %.2f ms (%.1f GFLOP/s)\n", n, ms,
			    2.0 * c.y_size() * 576 / ms * 1e-6);
	}
}

TEST(ConvBench, DISABLED_Depthwise3x3)
{
	for (bool fallback : {false, true}) {
		const ref::ConvParams c = P(1, 112, 112, 32, 3, 3, 32, {1, 1, 0, 0, 0, 0, 32, 0, 1, 1, 1, 1});
		std::vector<float> x = random_vector(c.x_size(), 1), w = random_vector(c.w_size(), 2);
		double ms = 0;
		run_conv(c, x, w, nullptr, fallback, &ms, 5);
		std::printf("depthwise 3x3 1x112x112x32%s: %.2f ms\n", fallback ? " [fallback]" : "", ms);
	}
}

} // namespace

namespace {

TEST(ConvBench, DISABLED_GemmSameFlops)
{
	for (uint32_t n : {64u, 96u}) {
		const uint32_t M = 3136, K = 576;
		Program p;
		const uint32_t tx = p.input({M, K});
		const uint32_t tw = p.variable(1, "kernel", {K, n});
		const uint32_t ty = p.output({M, n});
		p.op(FLAXDRM_OP_DENSE, 1, {tx, tw}, {ty});
		std::vector<float> x = random_vector(size_t(M) * K, 1), w = random_vector(size_t(K) * n, 2), y(size_t(M) * n);
		Bindings b(p);
		b.host(tx, x);
		b.host(tw, w);
		b.host(ty, y);
		executor(false).run(p.tensors, p.ops, b.mem);
		const auto t0 = std::chrono::steady_clock::now();
		for (int i = 0; i < 5; i++)
			executor(false).run(p.tensors, p.ops, b.mem);
		const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 5;
		std::printf("gemm %ux%ux%u: %.2f ms (%.1f GFLOP/s)\n", M, K, n, ms, 2.0 * M * K * n / ms * 1e-6);
	}
}

} // namespace
