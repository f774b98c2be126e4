// The local device end to end: models from JSON with Flax checkpoints
// written by Python, against the numpy float64 reference
// (tests/tools/mlp_reference.py).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "flaxdrm/device.hpp"
#include "flaxdrm/error.hpp"
#include "flaxdrm/npy.hpp"
#include "flaxdrm/variables.hpp"
#include "userspace_test_util.hpp"

using namespace flaxdrm;
using namespace flaxdrm::testing;
using ::testing::HasSubstr;

namespace {

constexpr double kTolerance = 1e-5;

double max_abs_diff(const Tensor& a, const Tensor& b)
{
	EXPECT_EQ(a.shape, b.shape);
	double d = 0;
	for (std::size_t i = 0; i < std::min(a.data.size(), b.data.size()); i++)
		d = std::max(d, std::fabs(static_cast<double>(a.data[i]) - b.data[i]));
	return d;
}

Tensor reference(const std::string& model, const std::string& params, const std::string& input,
		 const std::string& out)
{
	auto r = run_tool("mlp_reference.py", "--model " + quote(model) + " --params " + quote(params) + " --input " +
						      quote(input) + " --output " + quote(out));
	EXPECT_EQ(r.status, 0) << r.output;
	return read_npy(out);
}

class LocalRun : public ::testing::Test {
protected:
	static void SetUpTestSuite() { device_ = Device::open("local").release(); }
	static void TearDownTestSuite()
	{
		delete device_;
		device_ = nullptr;
	}

	Tensor run(const std::string& model_path, const std::string& params_path, const std::string& input_path,
		   std::vector<JobTiming>* timings = nullptr)
	{
		Model model = read_model_json(model_path);
		Variables vars = read_flax_msgpack(params_path);
		Tensor x = read_npy(input_path);
		auto bound = device_->bind(model, vars, x.shape);
		Tensor y = bound->apply(x);
		bound->close();
		if (timings)
			*timings = bound->timings();
		return y;
	}

	static Device* device_;
};

Device* LocalRun::device_ = nullptr;

} // namespace

TEST_F(LocalRun, ExampleMlpMatchesNumpy)
{
	REQUIRE_PYTHON();
	TempDir dir;
	std::string ex = source_dir() + "/examples/mlp/";
	std::vector<JobTiming> timings;
	Tensor y = run(ex + "model.json", ex + "params.msgpack", ex + "input.npy", &timings);
	Tensor ref = reference(ex + "model.json", ex + "params.msgpack", ex + "input.npy", dir.file("ref.npy"));
	EXPECT_EQ(y.shape, (Shape{8, 10}));
	EXPECT_LE(max_abs_diff(y, ref), kTolerance);

	ASSERT_EQ(timings.size(), 3u);
	EXPECT_EQ(timings[0].job, "setup");
	EXPECT_EQ(timings[1].job, "call");
	EXPECT_EQ(timings[2].job, "cleanup");
	EXPECT_GT(timings[1].wall_ns, 0u);

	// the Sequential variant holds the same numbers under layers_0/layers_2
	Tensor ys = run(ex + "model_sequential.json", ex + "params_sequential.msgpack", ex + "input.npy");
	EXPECT_EQ(ys.data, y.data);
}

TEST_F(LocalRun, GeneratedNestedModelWithBatchDims)
{
	REQUIRE_PYTHON();
	TempDir dir;
	write_text(dir.file("m.json"), R"({"module": "Compact", "layers": [
		{"module": "Sequential", "layers": [
			{"module": "Dense", "features": 48}, {"module": "relu"}, {"module": "Dense", "features": 33}]},
		{"module": "relu"},
		{"module": "Dense", "features": 17, "name": "head", "use_bias": false},
		{"module": "Compact", "class": "Out", "layers": [{"module": "Dense", "features": 5}]}]})");
	auto r = run_tool("make_params.py", "--model " + quote(dir.file("m.json")) + " --input-shape 2,3,19 --seed 7" +
						    " --params " + quote(dir.file("p.msgpack")) + " --input " +
						    quote(dir.file("x.npy")));
	ASSERT_EQ(r.status, 0) << r.output;
	Tensor y = run(dir.file("m.json"), dir.file("p.msgpack"), dir.file("x.npy"));
	Tensor ref = reference(dir.file("m.json"), dir.file("p.msgpack"), dir.file("x.npy"), dir.file("ref.npy"));
	EXPECT_EQ(y.shape, (Shape{2, 3, 5}));
	EXPECT_LE(max_abs_diff(y, ref), kTolerance);
}

TEST_F(LocalRun, Float64CheckpointIsConverted)
{
	REQUIRE_PYTHON();
	TempDir dir;
	std::string ex = source_dir() + "/examples/mlp/";
	auto r = run_tool("make_params.py", "--model " + quote(ex + "model.json") +
						    " --input-shape 3,32 --dtype float64 --params " +
						    quote(dir.file("p.msgpack")) + " --input " + quote(dir.file("x.npy")));
	ASSERT_EQ(r.status, 0) << r.output;
	Tensor y = run(ex + "model.json", dir.file("p.msgpack"), dir.file("x.npy"));
	Tensor ref = reference(ex + "model.json", dir.file("p.msgpack"), dir.file("x.npy"), dir.file("ref.npy"));
	EXPECT_LE(max_abs_diff(y, ref), kTolerance);
}

TEST_F(LocalRun, BoundModuleAppliesManyBatchShapes)
{
	std::string ex = source_dir() + "/examples/mlp/";
	Model model = read_model_json(ex + "model.json");
	Variables vars = read_flax_msgpack(ex + "params.msgpack");
	Tensor x = read_npy(ex + "input.npy");
	auto bound = device_->bind(model, vars, x.shape);
	Tensor full = bound->apply(x);
	// the first row alone, as a rank-1 input, gives the first row of the batch
	Tensor row({32}, std::vector<float>(x.data.begin(), x.data.begin() + 32));
	Tensor y = bound->apply(row);
	EXPECT_EQ(y.shape, (Shape{10}));
	for (int i = 0; i < 10; i++)
		EXPECT_NEAR(y.data[i], full.data[i], 1e-6);

	std::string e = error_of([&] { bound->apply(Tensor({2, 16})); });
	EXPECT_THAT(e, HasSubstr("input of shape (2, 16) does not fit"));
	EXPECT_THAT(e, HasSubstr("the last dimension must be 32"));
	bound->close();
	bound->close(); // idempotent
	EXPECT_THROW(bound->apply(x), Error);
}

TEST_F(LocalRun, BindRefusesMismatchedParams)
{
	std::string ex = source_dir() + "/examples/mlp/";
	Model model = read_model_json(ex + "model.json");
	Variables vars = read_flax_msgpack(ex + "params_sequential.msgpack");
	std::string e = error_of([&] { device_->bind(model, vars, {8, 32}); });
	EXPECT_THAT(e, HasSubstr("(8 problems)"));
	EXPECT_THAT(e, HasSubstr("params/Dense_0/kernel: missing, expected shape (32, 64)"));
	EXPECT_THAT(e, HasSubstr("params/layers_2/bias: unexpected (shape (10,))"));
	e = error_of([&] { device_->bind(model, read_flax_msgpack(ex + "params.msgpack"), {8, 16}); });
	EXPECT_THAT(e, HasSubstr("params/Dense_0/kernel: shape (32, 64), expected (16, 64)"));
}
