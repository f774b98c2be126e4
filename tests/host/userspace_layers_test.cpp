// Every layer of the model JSON on the local device against torch/numpy
// float64 references (tests/tools/layers_reference.py, run with Debian's
// /usr/bin/python3), with the variables read from a Flax msgpack
// checkpoint and from safetensors; plus Flax naming, variable shapes and
// lowering details of the new layers, and the errors they give.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>

#include "flaxdrm/device.hpp"
#include "flaxdrm/error.hpp"
#include "flaxdrm/lowering.hpp"
#include "flaxdrm/model.hpp"
#include "flaxdrm/npy.hpp"
#include "flaxdrm/variables.hpp"
#include "userspace_test_util.hpp"

using namespace flaxdrm;
using namespace flaxdrm::testing;
using ::testing::AllOf;
using ::testing::HasSubstr;

namespace {

constexpr double kTolerance = 2e-5;
const char* const kTorchPython = "/usr/bin/python3";

bool have_torch()
{
	static const bool ok = run_command(std::string(kTorchPython) + " -c 'import numpy, torch, msgpack'").status == 0;
	return ok;
}

class Layers : public ::testing::TestWithParam<std::string> {
protected:
	static void SetUpTestSuite() { device_ = Device::open("local").release(); }
	static void TearDownTestSuite()
	{
		delete device_;
		device_ = nullptr;
	}
	static Device* device_;
};
Device* Layers::device_ = nullptr;

TEST_P(Layers, MatchesTheReference)
{
	if (!have_torch())
		GTEST_SKIP() << kTorchPython << " lacks numpy, torch or msgpack (make deps)";
	TempDir dir;
	auto r = run_command(std::string(kTorchPython) + " " + quote(tools_dir() + "/layers_reference.py") + " " +
			     GetParam() + " " + quote(dir.path()));
	ASSERT_EQ(r.status, 0) << r.output;
	Model model = read_model_json(dir.file("model.json"));
	Tensor x = read_npy(dir.file("input.npy"));
	Tensor want = read_npy(dir.file("expected.npy")); // the float64 reference rounded to float32
	for (const char* params : {"params.msgpack", "params.safetensors"}) {
		SCOPED_TRACE(params);
		Variables vars = read_variables(dir.file(params));
		ASSERT_NO_THROW(check_variables(model, vars, x.shape, params));
		auto bound = device_->bind(model, vars, x.shape);
		Tensor y = bound->apply(x);
		bound->close();
		ASSERT_EQ(y.shape, want.shape);
		double d = 0;
		for (std::size_t i = 0; i < y.data.size(); i++)
			d = std::max(d, std::fabs(static_cast<double>(y.data[i]) - want.data[i]));
		EXPECT_LE(d, kTolerance) << GetParam() << ": max abs diff " << d;
	}
}

INSTANTIATE_TEST_SUITE_P(
	AllLayers, Layers,
	::testing::Values("dense_general", "conv_same", "conv_same_strided", "conv_valid_nobias", "conv_explicit_pairs",
			  "conv_dilations_groups", "conv_circular", "conv1d_causal", "conv_transpose_same",
			  "conv_transpose_valid", "layer_norm", "rms_norm", "group_norm", "group_norm_default_32",
			  "batch_norm", "embed", "attention", "activations", "pools", "pool1d",
			  "flatten_reshape_dropout", "residual"),
	[](const auto& info) { return info.param; });

TEST(LayersList, EveryReferenceCaseIsTested)
{
	if (!have_torch())
		GTEST_SKIP();
	auto r = run_command(std::string(kTorchPython) + " " + quote(tools_dir() + "/layers_reference.py") + " --list");
	ASSERT_EQ(r.status, 0) << r.output;
	EXPECT_EQ(r.output, "dense_general\nconv_same\nconv_same_strided\nconv_valid_nobias\nconv_explicit_pairs\n"
			    "conv_dilations_groups\nconv_circular\nconv1d_causal\nconv_transpose_same\n"
			    "conv_transpose_valid\nlayer_norm\nrms_norm\ngroup_norm\ngroup_norm_default_32\nbatch_norm\n"
			    "embed\nattention\nactivations\npools\npool1d\nflatten_reshape_dropout\nresidual\n");
}

std::map<std::string, Shape> vars_of(const std::string& json, const Shape& in)
{
	return expected_variables(parse_model_json(json, "m.json"), in);
}

TEST(LayerVariables, FlaxNamesAndShapes)
{
	auto v = vars_of(R"({"module": "Compact", "layers": [
		{"module": "Conv", "features": 8, "kernel_size": [3, 3], "feature_group_count": 2},
		{"module": "BatchNorm", "use_running_average": true}, {"module": "relu"},
		{"module": "GroupNorm", "num_groups": 4}, {"module": "LayerNorm", "use_bias": false},
		{"module": "Residual", "layers": [{"module": "Conv", "features": 8, "kernel_size": [1, 1], "use_bias": false}]},
		{"module": "avg_pool", "window_shape": [2, 2], "strides": [2, 2]}, {"module": "flatten"},
		{"module": "Dropout", "rate": 0.5}, {"module": "Dense", "features": 4}]})",
			 {2, 6, 6, 4});
	std::map<std::string, Shape> want = {
		{"params/Conv_0/kernel", {3, 3, 2, 8}},         {"params/Conv_0/bias", {8}},
		{"params/BatchNorm_0/scale", {8}},              {"params/BatchNorm_0/bias", {8}},
		{"batch_stats/BatchNorm_0/mean", {8}},          {"batch_stats/BatchNorm_0/var", {8}},
		{"params/GroupNorm_0/scale", {8}},              {"params/GroupNorm_0/bias", {8}},
		{"params/LayerNorm_0/scale", {8}},              {"params/Residual_0/Conv_0/kernel", {1, 1, 8, 8}},
		{"params/Dense_0/kernel", {72, 4}},             {"params/Dense_0/bias", {4}}};
	EXPECT_EQ(v, want);

	auto a = vars_of(R"({"module": "MultiHeadDotProductAttention", "num_heads": 2, "qkv_features": 8})", {1, 3, 6});
	EXPECT_EQ(a.at("params/query/kernel"), (Shape{6, 2, 4}));
	EXPECT_EQ(a.at("params/value/bias"), (Shape{2, 4}));
	EXPECT_EQ(a.at("params/out/kernel"), (Shape{2, 4, 6}));
	EXPECT_EQ(a.at("params/out/bias"), (Shape{6}));
	EXPECT_EQ(a.size(), 8u);

	auto e = vars_of(R"({"module": "Sequential", "layers": [{"module": "Embed", "num_embeddings": 5, "features": 3},
		{"module": "gelu"}, {"module": "ConvTranspose", "features": 2, "kernel_size": [3]}]})", {2, 7});
	EXPECT_EQ(e.at("params/layers_0/embedding"), (Shape{5, 3}));
	EXPECT_EQ(e.at("params/layers_2/kernel"), (Shape{3, 3, 2}));
	EXPECT_EQ(input_dtype(parse_model_json(R"({"module": "Embed", "num_embeddings": 5, "features": 3})", "m")),
		  DType::I32);
}

TEST(LayerLowering, OpsAndAttributes)
{
	Model m = parse_model_json(R"({"module": "Compact", "layers": [
		{"module": "Conv", "features": 4, "kernel_size": [3, 3], "strides": 2},
		{"module": "BatchNorm", "use_running_average": true, "epsilon": 0.001},
		{"module": "max_pool", "window_shape": [2, 2], "padding": "SAME"}]})",
				   "m.json");
	Program p = lower_shapes(m, {1, 7, 8, 3});
	ASSERT_GE(p.ops.size(), 3u);
	const auto& conv = p.ops[0];
	EXPECT_EQ(conv.opcode, FLAXDRM_OP_CONV);
	EXPECT_EQ(conv.attrs[0], 2u);
	EXPECT_EQ(conv.attrs[1], 2u);
	// SAME for 7 with k 3, stride 2: out 4, total pad 2 -> (1, 1); 8: total 1 -> (0, 1)
	EXPECT_EQ(conv.attrs[8], 1u);
	EXPECT_EQ(conv.attrs[9], 1u);
	EXPECT_EQ(conv.attrs[10], 0u);
	EXPECT_EQ(conv.attrs[11], 1u);
	const auto& bn = p.ops[1];
	EXPECT_EQ(bn.opcode, FLAXDRM_OP_BATCH_NORM);
	EXPECT_EQ(bn.num_inputs, 5u);
	EXPECT_EQ(bn.attrs[2], FLAXDRM_NORM_SCALE | FLAXDRM_NORM_BIAS);
	float eps;
	std::memcpy(&eps, &bn.attrs[0], 4);
	EXPECT_FLOAT_EQ(eps, 0.001f);
	EXPECT_STREQ(p.tensors[bn.inputs[1]].collection, "batch_stats");
	EXPECT_STREQ(p.tensors[bn.inputs[1]].name, "mean");
	EXPECT_EQ(p.ops[2].opcode, FLAXDRM_OP_MAX_POOL);
	EXPECT_EQ(p.output_shape, (Shape{1, 4, 4, 4}));
}

TEST(LayerLowering, AttentionIsThreeDenseAttentionDense)
{
	Model m = parse_model_json(R"({"module": "MultiHeadDotProductAttention", "num_heads": 2, "out_features": 5})",
				   "m.json");
	Program p = lower_shapes(m, {2, 3, 6});
	ASSERT_EQ(p.ops.size(), 5u);
	for (int i = 0; i < 3; i++) {
		EXPECT_EQ(p.ops[i].opcode, FLAXDRM_OP_DENSE);
		EXPECT_EQ(p.ops[i].attrs[0], 1u);
		EXPECT_EQ(p.op_modules[i]->kind, ModuleKind::DenseGeneral);
	}
	EXPECT_EQ(p.op_modules[0]->name, "query");
	EXPECT_EQ(p.op_modules[2]->name, "value");
	EXPECT_EQ(p.ops[3].opcode, FLAXDRM_OP_ATTENTION);
	EXPECT_EQ(p.ops[3].module, 0u);
	EXPECT_EQ(p.ops[4].opcode, FLAXDRM_OP_DENSE);
	EXPECT_EQ(p.ops[4].attrs[0], 2u);
	EXPECT_EQ(p.op_modules[4]->name, "out");
	EXPECT_EQ(p.output_shape, (Shape{2, 3, 5}));
}

TEST(LayerErrors, SayWhatAndWhere)
{
	auto err = [](const std::string& json, const Shape& in = {1, 4, 4, 3}) {
		return error_of([&] { expected_variables(parse_model_json(json, "m.json"), in); });
	};
	EXPECT_THAT(err(R"({"module": "Compact", "layers": [{"module": "BatchNorm"}]})"),
		    HasSubstr("use_running_average"));
	EXPECT_THAT(err(R"({"module": "Compact", "layers": [{"module": "Conv", "features": 4, "kernel_size": [3, 3],
			    "feature_group_count": 2}]})"),
		    AllOf(HasSubstr("Conv at /Conv_0"), HasSubstr("feature_group_count 2")));
	EXPECT_THAT(err(R"({"module": "Compact", "layers": [{"module": "GroupNorm"}]})"),
		    AllOf(HasSubstr("GroupNorm at /GroupNorm_0"), HasSubstr("num_groups 32")));
	EXPECT_THAT(err(R"({"module": "Compact", "layers": [{"module": "Conv", "features": 4, "kernel_size": [3, 3],
			    "padding": "CAUSAL"}]})"),
		    HasSubstr("1-D"));
	EXPECT_THAT(err(R"({"module": "Compact", "layers": [{"module": "Conv", "features": 4, "kernel_size": [5, 5],
			    "padding": "VALID"}]})"),
		    HasSubstr("does not fit"));
	EXPECT_THAT(err(R"({"module": "Compact", "layers": [{"module": "relu"}, {"module": "Embed",
			    "num_embeddings": 3, "features": 2}]})"),
		    HasSubstr("first layer"));
	EXPECT_THAT(err(R"({"module": "Compact", "layers": [{"module": "reshape", "shape": [-1, 5]}]})"),
		    HasSubstr("cannot reshape (1, 4, 4, 3)"));
	EXPECT_THAT(err(R"({"module": "Compact", "layers": [{"module": "Residual", "layers": [
			    {"module": "Dense", "features": 2}]}]})"),
		    AllOf(HasSubstr("Residual at /Residual_0"), HasSubstr("same shape")));
	EXPECT_THAT(err(R"({"module": "Compact", "layers": [{"module": "Dropout", "rate": 0.5, "deterministic": false}]})"),
		    HasSubstr("inference"));
	EXPECT_THAT(err(R"({"module": "Compact", "layers": [{"module": "avg_pool"}]})"), HasSubstr("window_shape"));
	EXPECT_THAT(err(R"({"module": "Compact", "layers": [{"module": "Conv", "features": 4, "kernel_size": [3, 3],
			    "dtype": "bfloat16"}]})"),
		    HasSubstr("\"dtype\" is not supported yet"));
}

TEST(LayerDevice, EmbedNeedsInt32Input)
{
	Model m = parse_model_json(R"({"module": "Embed", "num_embeddings": 4, "features": 2})", "m.json");
	Variables v;
	v["params/embedding"].value = Tensor({4, 2}, {0, 1, 2, 3, 4, 5, 6, 7});
	auto dev = Device::open("local");
	Tensor idx({3});
	auto bound = dev->bind(m, v, idx.shape);
	EXPECT_THAT(error_of([&] { bound->apply(idx); }), HasSubstr("int32"));
	idx.dtype = DType::I32;
	idx.set_index(0, 3);
	idx.set_index(1, 0);
	idx.set_index(2, 2);
	Tensor y = bound->apply(idx);
	EXPECT_EQ(y.shape, (Shape{3, 2}));
	EXPECT_EQ(y.data, (std::vector<float>{6, 7, 0, 1, 4, 5}));
}

// safetensors written by a tiny Python writer: F32, F16, BF16, I32, I64.
TEST(Safetensors, ReadsWhatPythonWrites)
{
	REQUIRE_PYTHON();
	TempDir dir;
	run_python(R"(import json, struct, sys, numpy as np
arrs = {
  "params/Dense_0/kernel": ("F32", np.arange(6, dtype="<f4").reshape(2, 3) - 2.5),
  "params/Dense_0/bias": ("F16", np.array([0.5, -1.25, 3.0], dtype="<f2")),
  "batch_stats/BN/mean": ("BF16", (np.array([1.5, -2.0], dtype="<f4").view("<u4") >> 16).astype("<u2")),
  "other/i32": ("I32", np.array([[1, -7]], dtype="<i4")),
  "other/i64": ("I64", np.array([123456], dtype="<i8")),
}
header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
for name, (dt, a) in arrs.items():
    b = a.tobytes()
    header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b); off += len(b)
h = json.dumps(header).encode()
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
)",
		   quote(dir.file("v.safetensors")));
	Variables v = read_variables(dir.file("v.safetensors"));
	ASSERT_EQ(v.size(), 5u);
	EXPECT_EQ(v.at("params/Dense_0/kernel").value.shape, (Shape{2, 3}));
	EXPECT_EQ(v.at("params/Dense_0/kernel").value.data, (std::vector<float>{-2.5, -1.5, -0.5, 0.5, 1.5, 2.5}));
	EXPECT_EQ(v.at("params/Dense_0/bias").dtype, "float16");
	EXPECT_EQ(v.at("params/Dense_0/bias").value.data, (std::vector<float>{0.5f, -1.25f, 3.0f}));
	EXPECT_EQ(v.at("batch_stats/BN/mean").value.data, (std::vector<float>{1.5f, -2.0f}));
	EXPECT_EQ(v.at("other/i32").value.shape, (Shape{1, 2}));
	EXPECT_EQ(v.at("other/i32").value.data, (std::vector<float>{1, -7}));
	EXPECT_EQ(v.at("other/i64").value.data, (std::vector<float>{123456}));
	// the name does not matter: the content is recognised
	std::filesystem::copy_file(dir.file("v.safetensors"), dir.file("v.bin"));
	EXPECT_EQ(read_variables(dir.file("v.bin")).size(), 5u);
}

TEST(Safetensors, RefusesMalformedFiles)
{
	auto parse = [](const std::string& header, std::size_t data_bytes = 0) {
		std::vector<uint8_t> b(8 + header.size() + data_bytes);
		uint64_t n = header.size();
		std::memcpy(b.data(), &n, 8);
		std::memcpy(b.data() + 8, header.data(), header.size());
		return error_of([&] { parse_safetensors(b, "x.safetensors"); });
	};
	EXPECT_THAT(error_of([] { parse_safetensors(std::vector<uint8_t>{1, 2}, "x.safetensors"); }),
		    HasSubstr("shorter"));
	EXPECT_THAT(parse("{not json"), HasSubstr("not valid JSON"));
	EXPECT_THAT(parse(R"({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}})", 1),
		    HasSubstr("dtype U8 is not supported"));
	EXPECT_THAT(parse(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", 4),
		    HasSubstr("needs 8"));
	EXPECT_THAT(parse(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}})", 4),
		    HasSubstr("outside the data"));
	EXPECT_THAT(parse(R"({"a": {"dtype": "F32", "shape": [1]}})"), HasSubstr("data_offsets"));
	std::vector<uint8_t> big(8, 0xff);
	EXPECT_THAT(error_of([&] { parse_safetensors(big, "x.safetensors"); }), HasSubstr("exceeds the file"));
}

} // namespace
