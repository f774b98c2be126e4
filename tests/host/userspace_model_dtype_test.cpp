// Model JSON's "dtype" (Flax's dtype=, as the Module API's): the lowered
// program's ops and tensor dtypes for float16 layers, refusals of other
// values naming the layer and the key, and float32/absent dtypes leaving
// programs as they were (no ASTYPE, every float tensor F32).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "flaxdrm/error.hpp"
#include "flaxdrm/lowering.hpp"
#include "flaxdrm/model.hpp"
#include "flaxdrm_rules.h"

using namespace flaxdrm;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

namespace {

using P = std::pair<uint32_t, uint32_t>; // (opcode, output dtype)
constexpr uint32_t F16 = FLAXDRM_DTYPE_F16, F32 = FLAXDRM_DTYPE_F32, I32 = FLAXDRM_DTYPE_I32;
constexpr uint32_t ASTYPE = FLAXDRM_OP_ASTYPE;

Model parse(const std::string& json)
{
	return parse_model_json(json, "m.json");
}

Program lowered(const Model& m, const Shape& x)
{
	std::vector<uint32_t> handles(m.num_modules);
	for (int i = 0; i < m.num_modules; i++)
		handles[i] = static_cast<uint32_t>(i + 1);
	Program p = lower(m, x, handles);
	// every program must pass the kernel's rules (f16 is ABI 1.2)
	std::vector<uint8_t> scratch(p.tensors.size() + 1);
	uint32_t bad_op = 0, bad_tensor = 0;
	EXPECT_EQ(flaxdrm_check_program(p.tensors.data(), static_cast<uint32_t>(p.tensors.size()), p.ops.data(),
					static_cast<uint32_t>(p.ops.size()), scratch.data(), &bad_op, &bad_tensor),
		  0)
		<< p.describe_op(bad_op) << " " << p.describe_tensor(bad_tensor);
	return p;
}

std::vector<P> ops_of(const Program& p)
{
	std::vector<P> r;
	for (const auto& op : p.ops)
		r.push_back({op.opcode, p.tensors[op.outputs[0]].dtype});
	return r;
}

std::string err(const std::string& json)
{
	try {
		Model m = parse(json);
		lower_shapes(m, {2, 8});
	} catch (const Error& e) {
		return e.what();
	}
	return "no error";
}

uint32_t dtype_of(const Program& p, uint32_t t)
{
	return p.tensors[t].dtype;
}

} // namespace

TEST(ModelDtype, DenseFloat16CastsInputKernelBiasComputesInF16OutputsF32)
{
	Program p = lowered(parse(R"({"module": "Dense", "features": 4, "dtype": "float16"})"), {2, 3});
	EXPECT_THAT(ops_of(p), ElementsAre(P{ASTYPE, F16}, P{ASTYPE, F16}, P{ASTYPE, F16}, P{FLAXDRM_OP_DENSE, F16},
					   P{ASTYPE, F32}));
	// the casts read x, kernel, bias in that order; DENSE reads the casts
	EXPECT_EQ(p.ops[0].inputs[0], p.input);
	ASSERT_EQ(p.variables.size(), 2u);
	EXPECT_EQ(p.ops[1].inputs[0], p.variables[0].tensor);
	EXPECT_EQ(p.ops[2].inputs[0], p.variables[1].tensor);
	for (uint32_t i = 0; i < 3; i++)
		EXPECT_EQ(p.ops[3].inputs[i], p.ops[i].outputs[0]);
	// parameters and input stay float32; the program's output is float32
	EXPECT_EQ(dtype_of(p, p.input), F32);
	for (const auto& v : p.variables)
		EXPECT_EQ(dtype_of(p, v.tensor), F32);
	EXPECT_EQ(p.output, p.ops.back().outputs[0]);
	EXPECT_EQ(p.tensors[p.output].kind, uint32_t(FLAXDRM_TENSOR_OUTPUT));
	EXPECT_EQ(dtype_of(p, p.output), F32);
	EXPECT_EQ(p.output_shape, (Shape{2, 4}));
}

TEST(ModelDtype, ExplicitFloat32AfterFloat16CastsTheInputUp)
{
	// Dense(dtype=float16) -> relu keeps f16 -> Dense(dtype=None): promote(f16, f32) = f32
	Program p = lowered(parse(R"({"module": "Sequential", "layers": [
		{"module": "Dense", "features": 4, "dtype": "float16", "use_bias": false}, {"module": "relu"},
		{"module": "Dense", "features": 3}]})"),
			    {2, 3});
	EXPECT_THAT(ops_of(p), ElementsAre(P{ASTYPE, F16}, P{ASTYPE, F16}, P{FLAXDRM_OP_DENSE, F16},
					   P{FLAXDRM_OP_RELU, F16}, P{ASTYPE, F32}, P{FLAXDRM_OP_DENSE, F32}));
}

TEST(ModelDtype, ConvFloat16)
{
	Program p = lowered(parse(R"({"module": "Conv", "features": 4, "kernel_size": [3, 3], "dtype": "float16"})"),
			    {1, 5, 5, 2});
	EXPECT_THAT(ops_of(p), ElementsAre(P{ASTYPE, F16}, P{ASTYPE, F16}, P{ASTYPE, F16}, P{FLAXDRM_OP_CONV, F16},
					   P{ASTYPE, F32}));
	// a 1-D conv's views keep the dtype: RESHAPE in f32, casts, CONV f16, RESHAPE f16
	Program q = lowered(parse(R"({"module": "Conv", "features": 4, "kernel_size": 3, "dtype": "float16"})"),
			    {2, 7, 3});
	EXPECT_THAT(ops_of(q), ElementsAre(P{FLAXDRM_OP_RESHAPE, F32}, P{ASTYPE, F16}, P{ASTYPE, F16}, P{ASTYPE, F16},
					   P{FLAXDRM_OP_CONV, F16}, P{FLAXDRM_OP_RESHAPE, F16}, P{ASTYPE, F32}));
	Program t = lowered(parse(R"({"module": "ConvTranspose", "features": 4, "kernel_size": [2, 2], "strides": 2,
		"use_bias": false, "dtype": "float16"})"),
			    {1, 3, 3, 2});
	EXPECT_THAT(ops_of(t),
		    ElementsAre(P{ASTYPE, F16}, P{ASTYPE, F16}, P{FLAXDRM_OP_CONV, F16}, P{ASTYPE, F32}));
}

TEST(ModelDtype, NormsComputeInFloat32AndCastTheResult)
{
	// f32 input: LAYER_NORM in f32, result cast to f16, output back to f32
	Program p = lowered(parse(R"({"module": "LayerNorm", "dtype": "float16"})"), {2, 8});
	EXPECT_THAT(ops_of(p), ElementsAre(P{FLAXDRM_OP_LAYER_NORM, F32}, P{ASTYPE, F16}, P{ASTYPE, F32}));
	// f16 input, dtype None: cast up, normalise, promote(f16, f32 params) = f32: no cast after
	Program q = lowered(parse(R"({"module": "Sequential", "layers": [
		{"module": "Dense", "features": 8, "use_bias": false, "dtype": "float16"},
		{"module": "LayerNorm"}, {"module": "RMSNorm", "dtype": "float16"},
		{"module": "GroupNorm", "num_groups": 2, "dtype": "float16"}]})"),
			    {2, 8});
	EXPECT_THAT(ops_of(q), ElementsAre(P{ASTYPE, F16}, P{ASTYPE, F16}, P{FLAXDRM_OP_DENSE, F16},
					   P{ASTYPE, F32}, P{FLAXDRM_OP_LAYER_NORM, F32}, P{FLAXDRM_OP_RMS_NORM, F32},
					   P{ASTYPE, F16}, P{ASTYPE, F32}, P{FLAXDRM_OP_GROUP_NORM, F32}, P{ASTYPE, F16},
					   P{ASTYPE, F32}));
	// without scale and bias, None keeps x's dtype (f16 in, f16 out)
	Program r = lowered(parse(R"({"module": "Sequential", "layers": [
		{"module": "Dense", "features": 8, "use_bias": false, "dtype": "float16"},
		{"module": "LayerNorm", "use_scale": false, "use_bias": false}]})"),
			    {2, 8});
	EXPECT_THAT(ops_of(r), ElementsAre(P{ASTYPE, F16}, P{ASTYPE, F16}, P{FLAXDRM_OP_DENSE, F16}, P{ASTYPE, F32},
					   P{FLAXDRM_OP_LAYER_NORM, F32}, P{ASTYPE, F16}, P{ASTYPE, F32}));
}

TEST(ModelDtype, BatchNormRunningAverageStaysFloat32)
{
	Program p = lowered(parse(R"({"module": "Sequential", "layers": [
		{"module": "Dense", "features": 6, "dtype": "float16"},
		{"module": "BatchNorm", "use_running_average": true, "dtype": "float16"}]})"),
			    {3, 4});
	EXPECT_THAT(ops_of(p), ElementsAre(P{ASTYPE, F16}, P{ASTYPE, F16}, P{ASTYPE, F16}, P{FLAXDRM_OP_DENSE, F16},
					   P{ASTYPE, F32}, P{FLAXDRM_OP_BATCH_NORM, F32}, P{ASTYPE, F16},
					   P{ASTYPE, F32}));
	const auto& bn = p.ops[5];
	// x cast up after mean and var (the Module API's order); stats, scale, bias float32
	EXPECT_EQ(bn.inputs[0], p.ops[4].outputs[0]);
	EXPECT_LT(bn.inputs[1], bn.inputs[0]);
	EXPECT_LT(bn.inputs[2], bn.inputs[0]);
	for (uint32_t i = 1; i < bn.num_inputs; i++)
		EXPECT_EQ(dtype_of(p, bn.inputs[i]), F32) << i;
	EXPECT_EQ(bn.attrs[2], uint32_t(FLAXDRM_NORM_SCALE | FLAXDRM_NORM_BIAS));
}

TEST(ModelDtype, EmbedFloat16CastsTheTableNotTheIndices)
{
	Program p = lowered(parse(R"({"module": "Sequential", "layers": [
		{"module": "Embed", "num_embeddings": 10, "features": 8, "dtype": "float16"},
		{"module": "gelu"}, {"module": "Dense", "features": 2, "dtype": "float16"}]})"),
			    {2, 5});
	EXPECT_THAT(ops_of(p), ElementsAre(P{ASTYPE, F16}, P{FLAXDRM_OP_EMBED, F16}, P{FLAXDRM_OP_GELU, F16},
					   P{ASTYPE, F16}, P{ASTYPE, F16}, P{FLAXDRM_OP_DENSE, F16}, P{ASTYPE, F32}));
	EXPECT_EQ(dtype_of(p, p.input), I32);
	EXPECT_EQ(p.ops[1].inputs[0], p.input);
	EXPECT_EQ(p.ops[1].inputs[1], p.ops[0].outputs[0]);
	EXPECT_EQ(p.ops[0].inputs[0], p.variables[0].tensor);
}

TEST(ModelDtype, AttentionFloat16ProjectsAttendsAndOutputsInF16)
{
	Model m = parse(R"({"module": "MultiHeadDotProductAttention", "num_heads": 2, "dtype": "float16"})");
	for (const Module& c : m.root.layers) {
		EXPECT_EQ(c.dtype, LayerDtype::F16) << c.name;
		EXPECT_THAT(c.config, HasSubstr("\"dtype\":\"float16\"")) << c.name;
	}
	Program p = lowered(m, {2, 5, 8});
	const P proj[] = {{ASTYPE, F16}, {ASTYPE, F16}, {ASTYPE, F16}, {FLAXDRM_OP_DENSE, F16}};
	std::vector<P> want;
	for (int i = 0; i < 3; i++)
		want.insert(want.end(), std::begin(proj), std::end(proj));
	// the out projection's input is already f16: kernel and bias casts only
	want.insert(want.end(), {{FLAXDRM_OP_ATTENTION, F16}, {ASTYPE, F16}, {ASTYPE, F16}, {FLAXDRM_OP_DENSE, F16},
				 {ASTYPE, F32}});
	EXPECT_EQ(ops_of(p), want);
	// None after a float16 layer: the projections promote to f32
	Program q = lowered(parse(R"({"module": "Sequential", "layers": [
		{"module": "Dense", "features": 8, "use_bias": false, "dtype": "float16"},
		{"module": "MultiHeadDotProductAttention", "num_heads": 2, "use_bias": false}]})"),
			    {2, 5, 8});
	EXPECT_THAT(ops_of(q), ElementsAre(P{ASTYPE, F16}, P{ASTYPE, F16}, P{FLAXDRM_OP_DENSE, F16}, P{ASTYPE, F32},
					   P{FLAXDRM_OP_DENSE, F32}, P{ASTYPE, F32}, P{FLAXDRM_OP_DENSE, F32},
					   P{ASTYPE, F32}, P{FLAXDRM_OP_DENSE, F32}, P{FLAXDRM_OP_ATTENTION, F32},
					   P{FLAXDRM_OP_DENSE, F32}));
}

TEST(ModelDtype, ResidualAddPromotesToFloat32)
{
	Program p = lowered(parse(R"({"module": "Residual", "layers": [
		{"module": "Dense", "features": 4, "use_bias": false, "dtype": "float16"}]})"),
			    {2, 4});
	EXPECT_THAT(ops_of(p), ElementsAre(P{ASTYPE, F16}, P{ASTYPE, F16}, P{FLAXDRM_OP_DENSE, F16}, P{ASTYPE, F32},
					   P{FLAXDRM_OP_ADD, F32}));
	EXPECT_EQ(p.ops[4].inputs[0], p.input);
}

TEST(ModelDtype, FunctionsAndPoolsKeepTheirInputDtype)
{
	Program p = lowered(parse(R"({"module": "Compact", "layers": [
		{"module": "Conv", "features": 4, "kernel_size": [3, 3], "use_bias": false, "dtype": "float16"},
		{"module": "silu"}, {"module": "max_pool", "window_shape": [2, 2], "strides": [2, 2]},
		{"module": "flatten"}, {"module": "log_softmax"}]})"),
			    {1, 4, 4, 2});
	EXPECT_THAT(ops_of(p), ElementsAre(P{ASTYPE, F16}, P{ASTYPE, F16}, P{FLAXDRM_OP_CONV, F16},
					   P{FLAXDRM_OP_SILU, F16}, P{FLAXDRM_OP_MAX_POOL, F16},
					   P{FLAXDRM_OP_RESHAPE, F16}, P{FLAXDRM_OP_LOG_SOFTMAX, F16}, P{ASTYPE, F32}));
}

TEST(ModelDtype, ConfigNamesTheDtypeOnlyWhenGiven)
{
	Model m = parse(R"({"module": "Compact", "layers": [{"module": "Dense", "features": 2, "dtype": "float16"},
		{"module": "Dense", "features": 2, "dtype": "float32"}, {"module": "Dense", "features": 2, "dtype": null},
		{"module": "Dense", "features": 2}]})");
	EXPECT_EQ(m.root.layers[0].dtype, LayerDtype::F16);
	EXPECT_EQ(m.root.layers[1].dtype, LayerDtype::F32);
	EXPECT_EQ(m.root.layers[2].dtype, LayerDtype::None);
	EXPECT_EQ(m.root.layers[3].dtype, LayerDtype::None);
	EXPECT_THAT(m.root.layers[0].config, HasSubstr("\"dtype\":\"float16\""));
	EXPECT_THAT(m.root.layers[1].config, HasSubstr("\"dtype\":\"float32\""));
	EXPECT_EQ(m.root.layers[2].config, m.root.layers[3].config);
	EXPECT_THAT(m.root.layers[3].config, ::testing::Not(HasSubstr("dtype")));
}

TEST(ModelDtype, BadValuesAreRefusedNamingLayerAndKey)
{
	EXPECT_THAT(err(R"({"module": "Sequential", "layers": [{"module": "Dense", "features": 2,
		"dtype": "bfloat16"}]})"),
		    AllOf(HasSubstr("m.json"), HasSubstr("$.layers[0]"), HasSubstr("layers_0 (Dense)"),
			  HasSubstr("\"dtype\" is not supported yet for \"bfloat16\"")));
	EXPECT_THAT(err(R"({"module": "Sequential", "layers": [{"module": "relu"}, {"module": "Dense", "features": 2,
		"dtype": 3}]})"),
		    AllOf(HasSubstr("layers_1 (Dense)"), HasSubstr("\"dtype\" must be \"float16\", \"float32\" or null"),
			  HasSubstr("got 3")));
	EXPECT_THAT(err(R"({"module": "Compact", "layers": [{"module": "Dense", "features": 2},
		{"module": "Compact", "class": "Block", "layers": [{"module": "LayerNorm", "dtype": "int32"}]}]})"),
		    AllOf(HasSubstr("Block_0/LayerNorm_0 (LayerNorm)"), HasSubstr("\"dtype\""),
			  HasSubstr("got \"int32\"")));
	EXPECT_THAT(err(R"({"module": "Compact", "layers": [{"module": "MultiHeadDotProductAttention", "num_heads": 2,
		"name": "attn", "dtype": "float64"}]})"),
		    AllOf(HasSubstr("attn (MultiHeadDotProductAttention)"), HasSubstr("\"dtype\"")));
	EXPECT_THAT(err(R"({"module": "Conv", "features": 2, "kernel_size": 3, "dtype": ["float16"]})"),
		    AllOf(HasSubstr("the root (Conv)"), HasSubstr("\"dtype\" must be")));
	for (const char* layer : {R"("BatchNorm", "use_running_average": true)", R"("Embed", "num_embeddings": 3,
				  "features": 2)", R"("GroupNorm")", R"("RMSNorm")", R"("ConvTranspose", "features": 2,
				  "kernel_size": 2)", R"("DenseGeneral", "features": 2)"})
		EXPECT_THAT(err(std::string(R"({"module": "Sequential", "layers": [{"module": )") + layer +
				R"(, "dtype": "float8"}]})"),
			    AllOf(HasSubstr("layers_0 ("), HasSubstr("\"dtype\" must be")))
			<< layer;
	// layers without a dtype: Dropout, functions, containers
	EXPECT_THAT(err(R"({"module": "Sequential", "layers": [{"module": "Dropout", "rate": 0.1,
		"dtype": "float16"}]})"),
		    HasSubstr("Dropout argument \"dtype\" is not supported yet"));
	EXPECT_THAT(err(R"({"module": "Sequential", "layers": [{"module": "relu", "dtype": "float16"}]})"),
		    HasSubstr("relu argument \"dtype\" is not supported yet"));
	// param_dtype stays float32
	EXPECT_THAT(err(R"({"module": "Dense", "features": 2, "param_dtype": "float16"})"),
		    HasSubstr("\"param_dtype\" is not supported yet"));
}

namespace {

// Every layer the JSON has, in float32 (no dtype) and as spelled below.
std::vector<std::pair<std::string, Shape>> f32_models(const std::string& dtype)
{
	const std::string d = dtype.empty() ? "" : ", \"dtype\": " + dtype;
	return {
		{R"({"module": "Compact", "layers": [{"module": "Conv", "features": 4, "kernel_size": [3, 3])" + d +
			 R"(}, {"module": "BatchNorm", "use_running_average": true)" + d +
			 R"(}, {"module": "relu"}, {"module": "avg_pool", "window_shape": [2, 2], "strides": [2, 2]},
			 {"module": "GroupNorm", "num_groups": 2)" + d +
			 R"(}, {"module": "ConvTranspose", "features": 2, "kernel_size": [2, 2])" + d +
			 R"(}, {"module": "flatten"}, {"module": "Dense", "features": 8)" + d +
			 R"(}, {"module": "LayerNorm")" + d + R"(}, {"module": "RMSNorm")" + d +
			 R"(}, {"module": "DenseGeneral", "features": [2, 3])" + d + R"(}]})",
		 {2, 6, 6, 3}},
		{R"({"module": "Sequential", "layers": [{"module": "Embed", "num_embeddings": 9, "features": 8)" + d +
			 R"(}, {"module": "Residual", "layers": [{"module": "MultiHeadDotProductAttention", "num_heads": 2)" +
			 d + R"(}]}, {"module": "Conv", "features": 4, "kernel_size": 3)" + d + R"(}]})",
		 {2, 5}},
	};
}

std::vector<uint8_t> bytes_of(const Program& p)
{
	std::vector<uint8_t> b(p.tensors.size() * sizeof(drm_flaxdrm_tensor) + p.ops.size() * sizeof(drm_flaxdrm_op));
	std::memcpy(b.data(), p.tensors.data(), p.tensors.size() * sizeof(drm_flaxdrm_tensor));
	std::memcpy(b.data() + p.tensors.size() * sizeof(drm_flaxdrm_tensor), p.ops.data(),
		    p.ops.size() * sizeof(drm_flaxdrm_op));
	return b;
}

// FNV-1a of the program's tensor table and ops
uint64_t fnv(const Program& p)
{
	uint64_t h = 1469598103934665603ull;
	for (uint8_t b : bytes_of(p))
		h = (h ^ b) * 1099511628211ull;
	return h;
}

// fnv() of f32_models("") and of the digits CNN and MLP for (4, 8, 8, 1), as
// lowered by lowering.cpp and model_json.cpp before "dtype" (commit
// 0e4ed9a): float32 programs are byte for byte what they were. (A change of
// the UAPI structs changes these too.)
constexpr uint64_t kBeforeDtype[] = {0xf66b1dd7fcde9516ull, 0x906f214a393e105aull, 0xa4df587c41cde577ull,
				     0x504ae6888fc9d08aull};

} // namespace

TEST(ModelDtype, Float32OrAbsentLeavesProgramsUnchanged)
{
	const auto absent = f32_models(""), f32 = f32_models("\"float32\""), none = f32_models("null");
	for (std::size_t i = 0; i < absent.size(); i++) {
		Model m = parse(absent[i].first);
		const Program p = lowered(m, absent[i].second);
		for (const auto& [opcode, dtype] : ops_of(p)) {
			EXPECT_NE(opcode, ASTYPE);
			EXPECT_EQ(dtype, F32);
		}
		for (std::size_t t = 0; t < p.tensors.size(); t++)
			EXPECT_EQ(p.tensors[t].dtype, t == p.input && i == 1 ? I32 : F32) << p.describe_tensor(t);
		EXPECT_EQ(fnv(p), kBeforeDtype[i]) << i;
		// the same bytes (tensors and ops) whichever way float32 is spelled
		EXPECT_EQ(bytes_of(lowered(parse(f32[i].first), f32[i].second)), bytes_of(p)) << i;
		EXPECT_EQ(bytes_of(lowered(parse(none[i].first), none[i].second)), bytes_of(p)) << i;
		// and the absent key keeps the configs as they were (no "dtype")
		for (const Module* mod : m.modules())
			EXPECT_THAT(mod->config, ::testing::Not(HasSubstr("dtype"))) << mod->path;
	}
}

TEST(ModelDtype, DigitsModelsLowerWithoutCasts)
{
	std::size_t golden = 2;
	for (const char* name : {"cnn", "mlp"}) {
		const Model m = read_model_json(std::string(FLAXDRM_SOURCE_DIR) + "/examples/digits/" + name + ".json");
		const Program p = lowered(m, {4, 8, 8, 1});
		EXPECT_EQ(fnv(p), kBeforeDtype[golden++]) << name;
		for (const auto& t : p.tensors)
			EXPECT_EQ(t.dtype, F32) << name;
		for (const auto& op : p.ops)
			EXPECT_NE(op.opcode, ASTYPE) << name;
	}
}
