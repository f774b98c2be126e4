// Checkpoints: Flax msgpack (all dtypes, chunked arrays with a lowered
// threshold) to and from Python's msgpack + numpy, safetensors round trip,
// and the all-mismatches-at-once check.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <unistd.h>
#include <fstream>
#include <nlohmann/json.hpp>

#include "flax_test_util.hpp"
#include "flaxdrm/flax/checkpoint.hpp"

using namespace flaxtest;
using ::testing::HasSubstr;

namespace {

std::string tool()
{
	return std::string(FLAXDRM_SOURCE_DIR) + "/tests/tools/flax_checkpoint.py";
}

std::string run(const std::string& cmd)
{
	std::string out;
	FILE* p = popen(cmd.c_str(), "r");
	if (!p)
		return out;
	char buf[4096];
	std::size_t n;
	while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
		out.append(buf, n);
	EXPECT_EQ(pclose(p), 0) << cmd;
	return out;
}

Variables sample()
{
	Variables v;
	v["params/Dense_0/kernel"] = {Tensor({3, 4}, {-2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5}), "float32"};
	v["params/Dense_0/bias"] = {Tensor({4}, {1, 2, 3, 4.5}), "float16"};
	v["params/scale"] = {Tensor({3}, {0.5f, -1.25f, 3.0f}), "bfloat16"};
	v["counts/i32"] = {Tensor({2, 2}, {1, -2, 3, 4}), "int32"};
	v["counts/i64"] = {Tensor({2}, {7, 1 << 20}), "int64"};
	return v;
}

std::string tmp(const std::string& name)
{
	return ::testing::TempDir() + "flax_ckpt_" + std::to_string(getpid()) + "_" + name;
}

} // namespace

TEST(FlaxCheckpoint, WrittenHereLoadsInPython)
{
	const std::string path = tmp("out.msgpack");
	CheckpointOptions o;
	o.max_chunk_size = 16; // the kernel (48 bytes) is chunked in 3
	save_checkpoint(path, sample(), o);
	auto j = nlohmann::json::parse(run("/usr/bin/python3 " + tool() + " dump " + path));
	const Variables v = sample();
	ASSERT_EQ(j.size(), v.size());
	for (const auto& [p, var] : v) {
		ASSERT_TRUE(j.contains(p)) << p;
		EXPECT_EQ(j[p]["shape"].get<std::vector<int64_t>>(), var.value.shape) << p;
		std::string dt = j[p]["dtype"];
		EXPECT_EQ(dt.substr(0, dt.find('+')), var.dtype) << p;
		EXPECT_EQ(j[p]["values"].get<std::vector<double>>(),
			  std::vector<double>(var.value.data.begin(), var.value.data.end()))
			<< p;
	}
	EXPECT_EQ(j["params/Dense_0/kernel"]["dtype"], "float32+chunked:3");
	std::remove(path.c_str());
}

TEST(FlaxCheckpoint, WrittenByPythonLoadsHere)
{
	const std::string path = tmp("py.msgpack");
	run("/usr/bin/python3 " + tool() + " write " + path + " 16");
	Variables v = load_checkpoint(path);
	const Variables ref = sample();
	ASSERT_EQ(v.size(), ref.size());
	for (const auto& [p, var] : ref) {
		ASSERT_TRUE(v.count(p)) << p;
		EXPECT_EQ(v.at(p).value.shape, var.value.shape) << p;
		EXPECT_EQ(v.at(p).dtype, var.dtype) << p;
	}
	EXPECT_EQ(v.at("params/Dense_0/kernel").value.data, ref.at("params/Dense_0/kernel").value.data);
	EXPECT_EQ(v.at("params/scale").value.data, ref.at("params/scale").value.data);
	EXPECT_EQ(v.at("counts/i64").value.data, ref.at("counts/i64").value.data);
	std::remove(path.c_str());
}

TEST(FlaxCheckpoint, ChunkedRoundTripAndUnchunked)
{
	Variables v;
	v["params/big"] = {iota({5, 7}), "float32"};
	CheckpointOptions o;
	o.max_chunk_size = 24;
	Variables back = from_bytes(to_bytes(v, o));
	EXPECT_EQ(back.at("params/big").value.data, v.at("params/big").value.data);
	EXPECT_EQ(back.at("params/big").value.shape, v.at("params/big").value.shape);
	// default threshold: a plain ext leaf, and the existing client reader agrees
	auto bytes = to_bytes(v);
	EXPECT_EQ(flaxdrm::parse_flax_msgpack(bytes, "x").at("params/big").value.data, v.at("params/big").value.data);
}

TEST(FlaxCheckpoint, SafetensorsRoundTrip)
{
	const std::string path = tmp("v.safetensors");
	save_checkpoint(path, sample());
	Variables v = load_checkpoint(path);
	for (const auto& [p, var] : sample()) {
		EXPECT_EQ(v.at(p).value.data, var.value.data) << p;
		EXPECT_EQ(v.at(p).dtype, var.dtype) << p;
	}
	std::remove(path.c_str());
}

// An independent safetensors reader (json + numpy) reads what save_checkpoint writes.
TEST(FlaxCheckpoint, SafetensorsWrittenHereLoadsInPython)
{
	const std::string path = tmp("py.safetensors");
	save_checkpoint(path, sample());
	const std::string script = "import json, struct, sys, numpy as np\n"
				   "b = open(sys.argv[1], 'rb').read()\n"
				   "(n,) = struct.unpack('<Q', b[:8])\n"
				   "assert (8 + n) % 8 == 0, 'data not 8-byte aligned'\n"
				   "h = json.loads(b[8:8 + n])\n"
				   "np_dt = {'F32': '<f4', 'F16': '<f2', 'I32': '<i4', 'I64': '<i8', 'BF16': '<u2'}\n"
				   "out, end = {}, 0\n"
				   "for name, e in sorted(h.items(), key=lambda kv: kv[1]['data_offsets'][0]):\n"
				   "    lo, hi = e['data_offsets']\n"
				   "    assert lo == end, 'data not back to back'\n"
				   "    end = hi\n"
				   "    a = np.frombuffer(b[8 + n + lo:8 + n + hi], np_dt[e['dtype']])\n"
				   "    if e['dtype'] == 'BF16':\n"
				   "        a = (a.astype('<u4') << 16).view('<f4')\n"
				   "    out[name] = {'dtype': e['dtype'], 'shape': e['shape'],\n"
				   "                 'values': a.astype(np.float64).tolist()}\n"
				   "assert 8 + n + end == len(b), 'trailing bytes'\n"
				   "json.dump(out, sys.stdout)\n";
	const std::string script_path = tmp("read_safetensors.py");
	std::ofstream(script_path) << script;
	auto j = nlohmann::json::parse(run("/usr/bin/python3 " + script_path + " " + path));
	const std::map<std::string, std::string> st_name = {
		{"float32", "F32"}, {"float16", "F16"}, {"bfloat16", "BF16"}, {"int32", "I32"}, {"int64", "I64"}};
	const Variables v = sample();
	ASSERT_EQ(j.size(), v.size());
	for (const auto& [p, var] : v) {
		ASSERT_TRUE(j.contains(p)) << p;
		EXPECT_EQ(j[p]["dtype"], st_name.at(var.dtype)) << p;
		EXPECT_EQ(j[p]["shape"].get<std::vector<int64_t>>(), var.value.shape) << p;
		EXPECT_EQ(j[p]["values"].get<std::vector<double>>(),
			  std::vector<double>(var.value.data.begin(), var.value.data.end()))
			<< p;
	}
	std::remove(path.c_str());
	std::remove(script_path.c_str());
}

// Values that float16/bfloat16/int storage cannot hold exactly are rounded
// to nearest, ties to even: as numpy's float16 cast, torch's bfloat16 cast
// and np.rint (integer variables hold integers; a fraction is rounded, not
// truncated).
TEST(FlaxCheckpoint, StoringRoundsLikeNumpy)
{
	Variables v;
	v["h"] = {Tensor({5}, {1.0f + 1.0f / 4096, 65519.0f, 65520.0f, 1e-8f, 3.0e-5f}), "float16"};
	v["b"] = {Tensor({3}, {1.0f + 1.0f / 256, 1.0f + 3.0f / 256, -300.7f}), "bfloat16"};
	v["i"] = {Tensor({4}, {2.5f, 3.5f, -1.5f, 7.49f}), "int32"};
	Variables back = from_bytes(to_bytes(v));
	// numpy: np.float16([1+2**-12, 65519, 65520, 1e-8, 3e-5]) -> 1.0, 65504, inf, 0, 2.998e-05
	EXPECT_EQ(back.at("h").value.data[0], 1.0f);
	EXPECT_EQ(back.at("h").value.data[1], 65504.0f);
	EXPECT_EQ(back.at("h").value.data[2], INFINITY);
	EXPECT_EQ(back.at("h").value.data[3], 0.0f);
	EXPECT_EQ(back.at("h").value.data[4], std::ldexp(503.0f, -24)); // a float16 subnormal
	EXPECT_EQ(back.at("b").value.data, (std::vector<float>{1.0f, 1.015625f, -300.0f}));
	EXPECT_EQ(back.at("i").value.data, (std::vector<float>{2, 4, -2, 7}));
}

TEST(FlaxCheckpoint, RefusesWhatItCannotStore)
{
	Variables v;
	v["params/x"] = {Tensor({2}, {1, 2}), "uint8"};
	EXPECT_THAT(error_of<flaxdrm::Error>([&] { to_bytes(v); }),
		    ::testing::AllOf(HasSubstr("params/x"), HasSubstr("cannot store dtype uint8")));
	EXPECT_THAT(error_of<flaxdrm::Error>([&] { to_safetensors(v); }), HasSubstr("cannot store dtype uint8"));
	v["params/x"] = {Tensor({3}, {1, 2}), "float32"};
	EXPECT_THAT(error_of<flaxdrm::Error>([&] { to_bytes(v); }),
		    ::testing::AllOf(HasSubstr("params/x"), HasSubstr("does not match its 2 elements")));
	v["params/x"] = {Tensor({2}, {1, 2}), "float32"};
	CheckpointOptions o;
	o.max_chunk_size = 0;
	EXPECT_THAT(error_of<flaxdrm::Error>([&] { to_bytes(v, o); }), HasSubstr("max_chunk_size"));
}

TEST(FlaxCheckpoint, InitApplyFromCheckpoint)
{
	struct MLP : ModuleT<MLP> {
		MLP() : ModuleT("MLP") {}
		Value call(const Value& x) override
		{
			Value h = relu(make_child<Dense>(6)(x));
			return make_child<Dense>(2)(h);
		}
	} m;
	Tensor x = iota({3, 4});
	Variables v = m.init(PRNGKey(4), {x});
	const std::string path = tmp("mlp.msgpack");
	save_checkpoint(path, v);
	Variables r = restore_checkpoint(path, v);
	expect_near(m.apply(r, {x}), m.apply(v, {x}), 0);
	std::remove(path.c_str());
}

TEST(FlaxCheckpoint, AllMismatchesReportedByPath)
{
	Variables expected;
	expected["params/Dense_0/kernel"] = {Tensor({128, 10}), "float32"};
	expected["params/Dense_1/bias"] = {Tensor({3}), "float32"};
	Variables loaded;
	loaded["params/Dense_0/kernel"] = {Tensor({64, 10}), "float32"};
	loaded["params/extra"] = {Tensor({1}), "float32"};
	std::string e = error_of<flaxdrm::Error>([&] { check_against(expected, loaded, "ckpt.msgpack"); });
	EXPECT_THAT(e, HasSubstr("ckpt.msgpack does not match the model (3 problems)"));
	EXPECT_THAT(e, HasSubstr("params/Dense_0/kernel: shape (64, 10), expected (128, 10)"));
	EXPECT_THAT(e, HasSubstr("params/Dense_1/bias: missing, expected shape (3,)"));
	EXPECT_THAT(e, HasSubstr("params/extra: unexpected (shape (1,)): the model has no such variable"));

	// the params saved without their {"params": ...} level
	Variables bare;
	bare["Dense_0/kernel"] = {Tensor({128, 10}), "float32"};
	bare["Dense_1/bias"] = {Tensor({3}), "float32"};
	e = error_of<flaxdrm::Error>([&] { check_against(expected, bare, "bare.msgpack"); });
	EXPECT_THAT(e, HasSubstr("bare.msgpack does not match the model (4 problems):\n  the \"params\" collection is empty"));
}

TEST(FlaxCheckpoint, CorruptInputIsAnError)
{
	std::vector<uint8_t> b = to_bytes(sample());
	b.resize(b.size() / 2);
	EXPECT_THAT(error_of<flaxdrm::Error>([&] { from_bytes(b, "half.msgpack"); }), HasSubstr("half.msgpack"));
}
