// The same model written with the C++ Module API and as model JSON (the
// committed digits CNN and MLP) has the same variable paths and shapes, and
// the trained checkpoint gives the same logits through both.
#include <gtest/gtest.h>

#include <cmath>

#include "flax_test_util.hpp"
#include "flaxdrm/device.hpp"
#include "flaxdrm/model.hpp"
#include "flaxdrm/npy.hpp"

using namespace flaxtest;

namespace {

const std::string digits = std::string(FLAXDRM_SOURCE_DIR) + "/examples/digits/";

// examples/digits/cnn.json, written the Flax way
struct CNN : ModuleT<CNN> {
	CNN() : ModuleT("CNN") {}
	Value call(const Value& x) override
	{
		BatchNormOptions eval;
		eval.use_running_average = true;
		Value h = make_child<Conv>(16, flaxdrm::Shape{3, 3})(x);
		h = avg_pool(relu(make_child<BatchNorm>(eval)(h)), {2, 2}, {2, 2});
		h = make_child<Conv>(32, flaxdrm::Shape{3, 3})(h);
		h = avg_pool(relu(make_child<BatchNorm>(eval)(h)), {2, 2}, {2, 2});
		h = reshape(h, {h.shape[0], -1});
		h = relu(make_child<Dense>(64)(h));
		return make_child<Dense>(10)(h);
	}
};

// examples/digits/mlp.json: nn.Sequential([flatten, Dense(128), relu, Dense(10)])
using Fn = std::function<Value(const Value&)>;
struct MLP : Sequential {
	MLP()
		: Sequential({Fn([](const Value& x) { return reshape(x, {x.shape[0], -1}); }), layer<Dense>(128),
			      Fn([](const Value& x) { return relu(x); }), layer<Dense>(10)})
	{
	}
};

std::map<std::string, flaxdrm::Shape> shapes_of(const flaxdrm::Variables& v)
{
	std::map<std::string, flaxdrm::Shape> out;
	for (const auto& [path, var] : v)
		out[path] = var.value.shape;
	return out;
}

flaxdrm::Tensor first_rows(const flaxdrm::Tensor& t, int64_t n)
{
	flaxdrm::Shape s = t.shape;
	s[0] = n;
	flaxdrm::Tensor out(s);
	std::copy_n(t.data.begin(), out.data.size(), out.data.begin());
	return out;
}

template <class M> void check_equivalent(const std::string& name)
{
	const flaxdrm::Model model = flaxdrm::read_model_json(digits + name + ".json");
	const flaxdrm::Tensor x = first_rows(flaxdrm::read_npy(digits + "test_x.npy"), 16);

	M module;
	const flaxdrm::Variables initialised = module.init(PRNGKey(0), {x});
	EXPECT_EQ(shapes_of(initialised), flaxdrm::expected_variables(model, x.shape));

	const flaxdrm::Variables trained = flaxdrm::read_flax_msgpack(digits + name + ".msgpack");
	const flaxdrm::Tensor via_api = module.apply(trained, {x});
	auto bound = flaxdrm::Device::open("local")->bind(model, trained, x.shape);
	const flaxdrm::Tensor via_json = bound->apply(x);
	bound->close();
	expect_near(via_api, via_json, 1e-5f);
	module.cleanup();
}

TEST(FlaxJsonEquivalence, DigitsCnnSamePathsAndLogits) { check_equivalent<CNN>("cnn"); }

TEST(FlaxJsonEquivalence, DigitsMlpSamePathsAndLogits) { check_equivalent<MLP>("mlp"); }

} // namespace
