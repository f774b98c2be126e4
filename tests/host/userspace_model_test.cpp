// Model JSON: Flax auto-naming (Compact, Sequential, nesting), shapes,
// errors, the all-mismatches report, and the lowering to the program format.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include "flaxdrm/error.hpp"
#include "flaxdrm/lowering.hpp"
#include "flaxdrm/model.hpp"
#include "flaxdrm_rules.h"
#include "userspace_test_util.hpp"

using namespace flaxdrm;
using namespace flaxdrm::testing;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

namespace {

Model parse(const std::string& json)
{
	return parse_model_json(json, "m.json");
}

std::vector<std::string> paths(const Model& m)
{
	std::vector<std::string> out;
	for (const Module* mod : m.modules())
		out.push_back(mod->path);
	return out;
}

std::vector<std::string> keys(const std::map<std::string, Shape>& m)
{
	std::vector<std::string> out;
	for (const auto& [k, v] : m)
		out.push_back(k + " " + shape_str(v));
	return out;
}

const char* const kDense = R"({"module": "Dense", "features": 4})";

} // namespace

TEST(ModelNaming, CompactCountsPerClass)
{
	Model m = parse(R"({"module": "Compact", "layers": [
		{"module": "Dense", "features": 8}, {"module": "relu"},
		{"module": "Dense", "features": 8}, {"module": "Sequential", "layers": []},
		{"module": "Dense", "features": 2}]})");
	EXPECT_THAT(paths(m), ElementsAre("", "Dense_0", "Dense_1", "Sequential_0", "Dense_2"));
	EXPECT_EQ(m.num_modules, 5);
	EXPECT_EQ(m.root.layers[1].name, ""); // relu is a function: no name, no counter
}

TEST(ModelNaming, ExplicitNamesAreKeptAndDoNotCount)
{
	Model m = parse(R"({"module": "Compact", "layers": [
		{"module": "Dense", "features": 8, "name": "encoder"},
		{"module": "Dense", "features": 8},
		{"module": "Dense", "features": 8, "name": "head"}]})");
	EXPECT_THAT(paths(m), ElementsAre("", "encoder", "Dense_0", "head"));
	EXPECT_FALSE(m.root.layers[0].auto_named);
	EXPECT_TRUE(m.root.layers[1].auto_named);
}

TEST(ModelNaming, SequentialNamesByPositionCountingFunctions)
{
	Model m = parse(R"({"module": "Sequential", "layers": [
		{"module": "Dense", "features": 8}, {"module": "relu"}, {"module": "Dense", "features": 2}]})");
	EXPECT_THAT(paths(m), ElementsAre("", "layers_0", "layers_2"));
	auto vars = expected_variables(m, {5, 3});
	EXPECT_THAT(keys(vars), ElementsAre("params/layers_0/bias (8,)", "params/layers_0/kernel (3, 8)",
					    "params/layers_2/bias (2,)", "params/layers_2/kernel (8, 2)"));
}

TEST(ModelNaming, ContainersNest)
{
	Model m = parse(R"({"module": "Compact", "layers": [
		{"module": "Sequential", "layers": [
			{"module": "Dense", "features": 8}, {"module": "relu"},
			{"module": "Compact", "layers": [{"module": "Dense", "features": 6}]}]},
		{"module": "Dense", "features": 5},
		{"module": "Compact", "class": "Block", "layers": [
			{"module": "Dense", "features": 4, "use_bias": false}, {"module": "Dense", "features": 3}]},
		{"module": "Compact", "class": "Block", "layers": [{"module": "Dense", "features": 2}]}]})");
	EXPECT_THAT(paths(m), ElementsAre("", "Sequential_0", "Sequential_0/layers_0", "Sequential_0/layers_2",
					  "Sequential_0/layers_2/Dense_0", "Dense_0", "Block_0", "Block_0/Dense_0",
					  "Block_0/Dense_1", "Block_1", "Block_1/Dense_0"));
	auto vars = expected_variables(m, {7});
	EXPECT_EQ(vars.at("params/Sequential_0/layers_0/kernel"), (Shape{7, 8}));
	EXPECT_EQ(vars.at("params/Sequential_0/layers_2/Dense_0/kernel"), (Shape{8, 6}));
	EXPECT_EQ(vars.at("params/Dense_0/kernel"), (Shape{6, 5}));
	EXPECT_EQ(vars.at("params/Block_0/Dense_0/kernel"), (Shape{5, 4}));
	EXPECT_FALSE(vars.count("params/Block_0/Dense_0/bias"));
	EXPECT_EQ(vars.at("params/Block_1/Dense_0/bias"), (Shape{2}));
	EXPECT_EQ(output_shape(m, {3, 9, 7}), (Shape{3, 9, 2}));
}

TEST(ModelNaming, RootDenseHasTopLevelParams)
{
	Model m = parse(R"({"module": "Dense", "features": 3, "name": "ignored"})");
	EXPECT_THAT(keys(expected_variables(m, {2, 4})), ElementsAre("params/bias (3,)", "params/kernel (4, 3)"));
}

TEST(ModelNaming, AgreesWithThePythonTools)
{
	REQUIRE_PYTHON();
	TempDir dir;
	const std::string json = R"({"module": "Compact", "layers": [
		{"module": "Sequential", "layers": [{"module": "relu"}, {"module": "Dense", "features": 8}]},
		{"module": "Dense", "features": 5, "name": "mid"}, {"module": "Dense", "features": 5},
		{"module": "Compact", "class": "Block", "layers": [{"module": "Dense", "features": 4}]},
		{"module": "relu"}, {"module": "Dense", "features": 3, "use_bias": false}]})";
	write_text(dir.file("m.json"), json);
	std::string out = run_python("import sys\n"
				     "sys.path.insert(0, sys.argv[1])\n"
				     "import flax_format as ff\n"
				     "for k, s in sorted(ff.model_variables(ff.load_model(sys.argv[2]), 6).items()):\n"
				     "    print(k, '(' + ', '.join(map(str, s)) + (',' if len(s) == 1 else '') + ')')\n",
				     quote(tools_dir()) + " " + quote(dir.file("m.json")));
	std::string ours;
	for (const auto& k : keys(expected_variables(parse(json), {6})))
		ours += k + "\n";
	EXPECT_EQ(ours, out);
}

TEST(ModelErrors, SayWhatAndWhere)
{
	EXPECT_THAT(error_of([] { parse("{"); }), HasSubstr("m.json: invalid JSON"));
	EXPECT_THAT(error_of([] { parse(R"({"module": "Compact", "layers": [{"module": "Dens"}]})"); }),
		    HasSubstr("m.json: $.layers[0]: unknown module \"Dens\""));
	EXPECT_THAT(error_of([] { parse(R"({"module": "Compact", "layers": [{"module": "Conv"}]})"); }),
		    HasSubstr("$.layers[0]: Conv needs \"features\""));
	EXPECT_THAT(error_of([] { parse(R"({"module": "Sequential", "layers": [{"module": "Dense"}]})"); }),
		    HasSubstr("$.layers[0]: Dense needs \"features\""));
	EXPECT_THAT(error_of([] { parse(R"({"module": "Dense", "features": 0})"); }),
		    HasSubstr("positive integer"));
	EXPECT_THAT(error_of([] { parse(R"({"module": "Dense", "features": 3, "feature": 2})"); }),
		    HasSubstr("unknown key \"feature\" for Dense (known: features, use_bias, name)"));
	EXPECT_THAT(error_of([] { parse(R"({"module": "Dense", "features": 3, "kernel_init": "zeros"})"); }),
		    HasSubstr("\"kernel_init\" is not supported yet"));
	EXPECT_THAT(error_of([] { parse(R"({"module": "Compact"})"); }), HasSubstr("needs \"layers\""));
	EXPECT_THAT(error_of([] { parse(R"({"module": "relu"})"); }), HasSubstr("the root must be a module"));
	EXPECT_THAT(error_of([] { parse(R"({"module": "Compact", "layers": [{"module": "relu", "name": "r"}]})"); }),
		    HasSubstr("relu is a function"));
	EXPECT_THAT(
		error_of([] { parse(R"({"module": "Sequential", "layers": [{"module": "Dense", "features": 2, "name": "a"}]})"); }),
		HasSubstr("names its layers by position (layers_0)"));
	EXPECT_THAT(error_of([] { parse(R"({"module": "Compact", "layers": [{"module": "Dense", "features": 2, "name": "a/b"}]})"); }),
		    HasSubstr("contains '/'"));
	EXPECT_THAT(error_of([] { parse(R"({"layers": []})"); }), HasSubstr("missing \"module\""));
}

TEST(ModelErrors, NameInUse)
{
	std::string e = error_of([] {
		parse(R"({"module": "Compact", "class": "MLP", "layers": [
			{"module": "Dense", "features": 2, "name": "Dense_0"}, {"module": "Dense", "features": 2}]})");
	});
	EXPECT_THAT(e, HasSubstr("$.layers[1]: NameInUseError"));
	EXPECT_THAT(e, HasSubstr("\"Dense_0\" in MLP at /"));
}

TEST(ModelErrors, DenseNeedsAFeatureAxis)
{
	Model m = parse(kDense);
	EXPECT_THAT(error_of([&] { expected_variables(m, {}); }), HasSubstr("Dense at /: needs an input with at least 1 dimension"));
}

TEST(CheckVariables, ReportsEveryMismatchByPath)
{
	Model m = parse(R"({"module": "Compact", "layers": [
		{"module": "Dense", "features": 128}, {"module": "relu"},
		{"module": "Dense", "features": 10}, {"module": "Dense", "features": 3}]})");
	Variables v;
	v["params/Dense_0/kernel"] = {Tensor({32, 128}), "float32"};
	v["params/Dense_0/bias"] = {Tensor({128}), "float32"};
	v["params/Dense_1/kernel"] = {Tensor({64, 10}), "float32"};  // wrong
	v["params/Dense_1/bias"] = {Tensor({10}), "float32"};
	v["params/Dense_2/bias"] = {Tensor({4}), "float32"};         // wrong, kernel missing
	v["params/Dense_9/kernel"] = {Tensor({1, 1}), "float32"};    // unexpected
	std::string e = error_of([&] { check_variables(m, v, {8, 32}, "p.msgpack"); });
	EXPECT_THAT(e, HasSubstr("p.msgpack does not match the model m.json for inputs of shape (8, 32) (4 problems):"));
	EXPECT_THAT(e, HasSubstr("\n  params/Dense_1/kernel: shape (64, 10), expected (128, 10)"));
	EXPECT_THAT(e, HasSubstr("\n  params/Dense_2/bias: shape (4,), expected (3,)"));
	EXPECT_THAT(e, HasSubstr("\n  params/Dense_2/kernel: missing, expected shape (10, 3)"));
	EXPECT_THAT(e, HasSubstr("\n  params/Dense_9/kernel: unexpected (shape (1, 1)): the model has no such variable"));

	Variables good;
	for (const auto& [path, shape] : expected_variables(m, {8, 32}))
		good[path] = {Tensor(shape), "float32"};
	EXPECT_NO_THROW(check_variables(m, good, {8, 32}));
	EXPECT_THAT(error_of([&] { check_variables(m, Variables{}, {8, 32}); }),
		    HasSubstr("the \"params\" collection is empty"));
}

TEST(Lowering, BuildsAValidProgram)
{
	Model m = parse(R"({"module": "Sequential", "layers": [
		{"module": "Dense", "features": 8}, {"module": "relu"}, {"module": "Dense", "features": 2, "use_bias": false}]})");
	std::vector<uint32_t> handles = {11, 12, 13};
	Program p = lower(m, {4, 3}, handles);
	ASSERT_EQ(p.ops.size(), 3u);
	ASSERT_EQ(p.tensors.size(), 7u); // x, k0, b0, y0, r, k2, y
	EXPECT_EQ(p.tensors[p.input].kind, FLAXDRM_TENSOR_INPUT);
	EXPECT_EQ(p.tensors[p.output].kind, FLAXDRM_TENSOR_OUTPUT);
	EXPECT_EQ(p.output_shape, (Shape{4, 2}));

	EXPECT_EQ(p.ops[0].opcode, FLAXDRM_OP_DENSE);
	EXPECT_EQ(p.ops[0].module, 12u);
	EXPECT_EQ(p.ops[0].num_inputs, 3u);
	const auto& k0 = p.tensors[p.ops[0].inputs[1]];
	EXPECT_EQ(k0.kind, FLAXDRM_TENSOR_VARIABLE);
	EXPECT_EQ(k0.module, 12u);
	EXPECT_STREQ(k0.collection, "params");
	EXPECT_STREQ(k0.name, "kernel");
	EXPECT_EQ(k0.dims[0], 3u);
	EXPECT_EQ(k0.dims[1], 8u);
	EXPECT_EQ(p.ops[1].opcode, FLAXDRM_OP_RELU);
	EXPECT_EQ(p.ops[1].module, 0u);
	EXPECT_EQ(p.ops[2].module, 13u);
	EXPECT_EQ(p.ops[2].num_inputs, 2u);
	ASSERT_EQ(p.variables.size(), 3u);
	EXPECT_EQ(p.variables[2].path, "params/layers_2/kernel");
	EXPECT_EQ(p.describe_op(2), "op 2 (Dense at /layers_2)");
	EXPECT_EQ(p.describe_tensor(p.ops[2].inputs[1]), "tensor 5 (variable params/layers_2/kernel (8, 2))");

	std::vector<uint8_t> scratch(p.tensors.size());
	uint32_t bad_op, bad_tensor;
	EXPECT_EQ(flaxdrm_check_program(p.tensors.data(), p.tensors.size(), p.ops.data(), p.ops.size(),
					scratch.data(), &bad_op, &bad_tensor),
		  0)
		<< "op " << bad_op << " tensor " << bad_tensor;
}

TEST(Lowering, RefusesEmptyModelsAndHighRanks)
{
	std::vector<uint32_t> handles = {1};
	EXPECT_THAT(error_of([&] { lower(parse(R"({"module": "Compact", "layers": []})"), {2, 3}, handles); }),
		    HasSubstr("has no layers"));
	EXPECT_THAT(error_of([&] { lower(parse(kDense), {1, 1, 1, 1, 1, 1, 3}, handles); }),
		    HasSubstr("more than 6 dimensions"));
}
