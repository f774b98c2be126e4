// Flax variables checkpoints: files written in flax.serialization.to_bytes
// format by Python (tests/tools/flax_format.py), conversions, refusals, and
// our writer read back by Python.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "flaxdrm/error.hpp"
#include "flaxdrm/variables.hpp"
#include "userspace_test_util.hpp"

using namespace flaxdrm;
using namespace flaxdrm::testing;
using ::testing::HasSubstr;

namespace {

const char* const kPrelude = "import sys, numpy as np, msgpack\n"
			     "sys.path.insert(0, sys.argv[1])\n"
			     "import flax_format as ff\n"
			     "out = sys.argv[2]\n"
			     "def save(tree):\n"
			     "    open(out, 'wb').write(ff.to_bytes(tree))\n";

// Runs a fixture snippet that writes `file` with save(tree).
void make_fixture(const std::string& file, const std::string& body)
{
	run_python(std::string(kPrelude) + body, quote(tools_dir()) + " " + quote(file));
}

} // namespace

TEST(FlaxMsgpack, ReadsACheckpointWrittenByPython)
{
	REQUIRE_PYTHON();
	TempDir dir;
	std::string f = dir.file("p.msgpack");
	make_fixture(f, "k = (np.arange(12, dtype=np.float32) * 0.5).reshape(3, 4)\n"
			"save({'params': {'Dense_0': {'kernel': k, 'bias': np.array([1, 2, 3, 4], np.float32)},\n"
			"                 'Sequential_0': {'layers_2': {'kernel': np.ones((4, 2), np.float32)}}},\n"
			"      'batch_stats': {'BatchNorm_0': {'mean': np.zeros((4,), np.float32)}}})\n");
	Variables v = read_flax_msgpack(f);
	std::vector<std::string> keys;
	for (const auto& [k, _] : v)
		keys.push_back(k);
	EXPECT_THAT(keys, ::testing::ElementsAre("batch_stats/BatchNorm_0/mean", "params/Dense_0/bias",
						 "params/Dense_0/kernel", "params/Sequential_0/layers_2/kernel"));
	const auto& k = v.at("params/Dense_0/kernel");
	EXPECT_EQ(k.dtype, "float32");
	EXPECT_EQ(k.value.shape, (Shape{3, 4}));
	ASSERT_EQ(k.value.data.size(), 12u);
	for (int i = 0; i < 12; i++)
		EXPECT_EQ(k.value.data[i], i * 0.5f);
	EXPECT_EQ(v.at("params/Dense_0/bias").value.data, (std::vector<float>{1, 2, 3, 4}));
	EXPECT_EQ(v.at("params/Sequential_0/layers_2/kernel").value.shape, (Shape{4, 2}));
}

TEST(FlaxMsgpack, ConvertsFloatDtypesAndReadsScalars)
{
	REQUIRE_PYTHON();
	TempDir dir;
	std::string f = dir.file("p.msgpack");
	make_fixture(f, "save({'params': {'a': np.array([1.5, -2.25, 1e-3], np.float64),\n"
			"                 'h': np.array([0.5, -65504, 1e-7, 3], np.float16),\n"
			"                 'b': np.array([1.0, -3.0], np.float32).view(np.uint32).__rshift__(16)"
			".astype(np.uint16).view(np.uint16),\n"
			"                 's': np.float32(4.5), 'step': 3}})\n");
	// 'b' was written as uint16: refused; rewrite it as bfloat16 by hand below
	EXPECT_THAT(error_of([&] { read_flax_msgpack(f); }),
		    ::testing::AllOf(HasSubstr("params/b"), HasSubstr("dtype uint16 is not supported")));

	make_fixture(f, "bf = np.array([1.0, -3.0], np.float32).view(np.uint32) >> 16\n"
			"payload = msgpack.packb([[2], 'bfloat16', bf.astype(np.uint16).tobytes()])\n"
			"tree = {'params': {'a': np.array([1.5, -2.25, 1e-3], np.float64),\n"
			"                   'h': np.array([0.5, -65504, 1e-7, 3], np.float16),\n"
			"                   'i': np.array([[-7, 1 << 20]], np.int32),\n"
			"                   'l': np.array([123456789, -2], np.int64),\n"
			"                   's': np.float32(4.5), 'step': 3, 'lr': 0.25}}\n"
			"raw = msgpack.unpackb(ff.to_bytes(tree), raw=False)\n"
			"raw['params']['b'] = msgpack.ExtType(1, payload)\n"
			"# a numpy scalar as Flax writes it: ext 3 of [shape (), dtype, data]\n"
			"raw['params']['t'] = msgpack.ExtType(3, msgpack.packb([[], 'float16', np.float16(-1.5).tobytes()]))\n"
			"open(out, 'wb').write(msgpack.packb(raw))\n");
	Variables v = read_flax_msgpack(f);
	EXPECT_EQ(v.at("params/a").dtype, "float64");
	EXPECT_EQ(v.at("params/a").value.data, (std::vector<float>{1.5f, -2.25f, 1e-3f}));
	EXPECT_EQ(v.at("params/h").value.data[0], 0.5f);
	EXPECT_EQ(v.at("params/h").value.data[1], -65504.0f);
	EXPECT_EQ(v.at("params/h").value.data[2], std::ldexp(1.0f, -23)); // float16(1e-7): a subnormal
	EXPECT_EQ(v.at("params/h").value.data[3], 3.0f);
	EXPECT_EQ(v.at("params/b").value.data, (std::vector<float>{1.0f, -3.0f}));
	EXPECT_TRUE(v.at("params/s").value.shape.empty());
	EXPECT_EQ(v.at("params/s").value.data, std::vector<float>{4.5f});
	EXPECT_EQ(v.at("params/step").value.data, std::vector<float>{3.0f});
	EXPECT_EQ(v.at("params/step").dtype, "int64");
	EXPECT_EQ(v.at("params/lr").value.data, std::vector<float>{0.25f});
	EXPECT_EQ(v.at("params/lr").dtype, "float64"); // a Python float
	EXPECT_TRUE(v.at("params/t").value.shape.empty());
	EXPECT_EQ(v.at("params/t").value.data, std::vector<float>{-1.5f});
	EXPECT_EQ(v.at("params/t").dtype, "float16");
	// integer arrays (step counters, ...) are read as their values
	EXPECT_EQ(v.at("params/i").dtype, "int32");
	EXPECT_EQ(v.at("params/i").value.shape, (Shape{1, 2}));
	EXPECT_EQ(v.at("params/i").value.data, (std::vector<float>{-7.0f, 1048576.0f}));
	EXPECT_EQ(v.at("params/l").dtype, "int64");
	EXPECT_EQ(v.at("params/l").value.data, (std::vector<float>{static_cast<float>(123456789LL), -2.0f}));
}

TEST(FlaxMsgpack, ReadsChunkedArrays)
{
	REQUIRE_PYTHON();
	TempDir dir;
	std::string f = dir.file("p.msgpack");
	// Flax splits arrays above 1 GiB into flat chunks; same layout, small sizes
	make_fixture(f, "a = np.arange(10, dtype=np.float32)\n"
			"save({'params': {'big': {'__msgpack_chunked_array__': True,\n"
			"                         'shape': {'0': 2, '1': 5},\n"
			"                         'chunks': {'0': a[:6], '1': a[6:]}}}})\n");
	Variables v = read_flax_msgpack(f);
	EXPECT_EQ(v.at("params/big").value.shape, (Shape{2, 5}));
	EXPECT_EQ(v.at("params/big").value.data[9], 9.0f);
}

TEST(FlaxMsgpack, RefusesMalformedCheckpoints)
{
	REQUIRE_PYTHON();
	TempDir dir;
	std::string f = dir.file("p.msgpack");

	make_fixture(f, "save({'params': {'k': np.zeros((2, 2), np.complex64)}})\n");
	EXPECT_THAT(error_of([&] { read_flax_msgpack(f); }),
		    ::testing::AllOf(HasSubstr("p.msgpack"), HasSubstr("params/k"),
				     HasSubstr("dtype complex64 is not supported")));

	make_fixture(f, "open(out, 'wb').write(msgpack.packb({'params': {'k': msgpack.ExtType(1, "
			"msgpack.packb([[2, 3], 'float32', b'\\0' * 20])) }}))\n");
	EXPECT_THAT(error_of([&] { read_flax_msgpack(f); }),
		    ::testing::AllOf(HasSubstr("params/k"), HasSubstr("needs 24 bytes"), HasSubstr("holds 20")));

	make_fixture(f, "open(out, 'wb').write(msgpack.packb({'params': {'k': msgpack.ExtType(7, b'x')}}))\n");
	EXPECT_THAT(error_of([&] { read_flax_msgpack(f); }), HasSubstr("unknown msgpack extension type 7"));

	make_fixture(f, "open(out, 'wb').write(msgpack.packb({'params': {'k': 'text'}}))\n");
	EXPECT_THAT(error_of([&] { read_flax_msgpack(f); }),
		    ::testing::AllOf(HasSubstr("params/k"), HasSubstr("unsupported msgpack value (str)")));

	make_fixture(f, "open(out, 'wb').write(msgpack.packb([1, 2, 3]))\n");
	EXPECT_THAT(error_of([&] { read_flax_msgpack(f); }), HasSubstr("not a map of variable collections"));

	make_fixture(f, "open(out, 'wb').write(msgpack.packb({'params': {}}) + b'\\x01')\n");
	EXPECT_THAT(error_of([&] { read_flax_msgpack(f); }), HasSubstr("trailing bytes"));

	make_fixture(f, "a = np.ones((2,), np.float32)\n"
			"open(out, 'wb').write(ff.to_bytes({'params': {'a/b': a, 'a': {'b': a}}}))\n");
	EXPECT_THAT(error_of([&] { read_flax_msgpack(f); }),
		    ::testing::AllOf(HasSubstr("params/a/b"), HasSubstr("occurs twice")));

	make_fixture(f, "open(out, 'wb').write(ff.to_bytes({'params': {'big': {'__msgpack_chunked_array__': True,\n"
			"    'shape': {'0': 3}, 'chunks': {'0': np.ones(2, np.float32), '2': np.ones(1, np.float32)}}}}))\n");
	EXPECT_THAT(error_of([&] { read_flax_msgpack(f); }),
		    ::testing::AllOf(HasSubstr("params/big"), HasSubstr("chunk key '2'")));

	// hostile sizes and nesting are refused before anything is allocated or recursed
	std::vector<uint8_t> deep(1000, 0x81); // {"": {"": ...
	for (std::size_t i = 1; i < deep.size(); i += 2)
		deep[i] = 0xa0;
	deep.push_back(0x80);
	EXPECT_THAT(error_of([&] { parse_flax_msgpack(deep, "deep"); }),
		    ::testing::AllOf(HasSubstr("deep: not a msgpack"), HasSubstr("depth")));
	std::vector<uint8_t> huge_map = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa0};
	EXPECT_THAT(error_of([&] { parse_flax_msgpack(huge_map, "huge"); }),
		    ::testing::AllOf(HasSubstr("huge: not a msgpack"), HasSubstr("map size")));

	std::vector<uint8_t> junk = {0xc1, 0x00};
	EXPECT_THAT(error_of([&] { parse_flax_msgpack(junk, "junk"); }), HasSubstr("junk: not a msgpack"));
	EXPECT_THAT(error_of([&] { read_flax_msgpack(dir.file("none.msgpack")); }),
		    ::testing::AllOf(HasSubstr("none.msgpack"), HasSubstr("No such file")));
}

TEST(FlaxMsgpack, WriterRoundTripsAndPythonReadsIt)
{
	REQUIRE_PYTHON();
	TempDir dir;
	Variables v;
	v["params/Dense_0/kernel"] = {Tensor({2, 3}, {1, 2, 3, 4, 5, 6}), "float32"};
	v["params/Dense_0/bias"] = {Tensor({3}, {0.5f, -0.5f, 0}), "float32"};
	v["params/layers_2/kernel"] = {Tensor({3, 1}, {7, 8, 9}), "float32"};
	std::string f = dir.file("w.msgpack");
	write_flax_msgpack(f, v);

	Variables back = read_flax_msgpack(f);
	ASSERT_EQ(back.size(), v.size());
	for (const auto& [k, var] : v) {
		EXPECT_EQ(back.at(k).value.shape, var.value.shape) << k;
		EXPECT_EQ(back.at(k).value.data, var.value.data) << k;
	}
	std::string out = run_python("import sys\n"
				     "sys.path.insert(0, sys.argv[1])\n"
				     "import flax_format as ff\n"
				     "t = ff.flatten(ff.from_bytes(open(sys.argv[2], 'rb').read()))\n"
				     "for k in sorted(t): print(k, t[k].dtype, t[k].shape, t[k].ravel().tolist())\n",
				     quote(tools_dir()) + " " + quote(f));
	EXPECT_EQ(out, "params/Dense_0/bias float32 (3,) [0.5, -0.5, 0.0]\n"
		       "params/Dense_0/kernel float32 (2, 3) [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]\n"
		       "params/layers_2/kernel float32 (3, 1) [7.0, 8.0, 9.0]\n");

	Variables clash;
	clash["params/a"] = {Tensor({1}, {1}), "float32"};
	clash["params/a/b"] = {Tensor({1}, {1}), "float32"};
	EXPECT_THAT(error_of([&] { format_flax_msgpack(clash); }), HasSubstr("params/a"));
}
