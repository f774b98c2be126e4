// Model JSON's "dtype" against the Module API's dtype option: the same model
// written both ways with float16 layers traces/lowers to the same ops with
// the same tensor dtypes and shapes, and gives the same outputs on the local
// device (the digits CNN with its checkpoint; a small Embed + attention
// model with init's variables). Skipped where the default device has no f16.
#include <gtest/gtest.h>

#include "f16_test_util.hpp"
#include "flax_test_util.hpp"
#include "flaxdrm/device.hpp"
#include "flaxdrm/lowering.hpp"
#include "flaxdrm/model.hpp"
#include "flaxdrm/npy.hpp"

using namespace flaxtest;
using flaxdrm::optest::have_f16;

namespace {

const std::string digits = std::string(FLAXDRM_SOURCE_DIR) + "/examples/digits/";

#define REQUIRE_F16_DEVICE()                                                               \
	do {                                                                               \
		if (!have_f16())                                                           \
			GTEST_SKIP() << "the default Vulkan device has no f16 (shaderFloat16)"; \
	} while (0)

// examples/digits/cnn.json with Conv and Dense in float16, the Flax way
struct CNN16 : ModuleT<CNN16> {
	CNN16() : ModuleT("CNN") {}
	Value call(const Value& x) override
	{
		BatchNormOptions eval;
		eval.use_running_average = true;
		ConvOptions conv;
		conv.dtype = float16;
		DenseOptions dense;
		dense.dtype = float16;
		Value h = make_child<Conv>(16, flaxdrm::Shape{3, 3}, conv)(x);
		h = avg_pool(relu(make_child<BatchNorm>(eval)(h)), {2, 2}, {2, 2});
		h = make_child<Conv>(32, flaxdrm::Shape{3, 3}, conv)(h);
		h = avg_pool(relu(make_child<BatchNorm>(eval)(h)), {2, 2}, {2, 2});
		h = reshape(h, {h.shape[0], -1});
		h = relu(make_child<Dense>(64, dense)(h));
		return make_child<Dense>(10, dense)(h);
	}
};

const char* const kCnn16 = R"({"module": "Compact", "class": "CNN", "layers": [
	{"module": "Conv", "features": 16, "kernel_size": [3, 3], "padding": "SAME", "dtype": "float16"},
	{"module": "BatchNorm", "use_running_average": true, "momentum": 0.99, "epsilon": 1e-05},
	{"module": "relu"}, {"module": "avg_pool", "window_shape": [2, 2], "strides": [2, 2]},
	{"module": "Conv", "features": 32, "kernel_size": [3, 3], "dtype": "float16"},
	{"module": "BatchNorm", "use_running_average": true},
	{"module": "relu"}, {"module": "avg_pool", "window_shape": [2, 2], "strides": [2, 2]},
	{"module": "flatten"},
	{"module": "Dense", "features": 64, "dtype": "float16"}, {"module": "relu"},
	{"module": "Dense", "features": 10, "dtype": "float16"}]})";

// Embed and attention in float16, a LayerNorm with dtype None (f32 result
// from an f16 input), a float16 BatchNorm and Dense
struct Tiny16 : ModuleT<Tiny16> {
	Tiny16() : ModuleT("Tiny") {}
	Value call(const Value& x) override
	{
		AttentionOptions attn;
		attn.dtype = float16;
		BatchNormOptions bn;
		bn.use_running_average = true;
		bn.dtype = float16;
		DenseOptions dense;
		dense.dtype = float16;
		Value h = make_child<Embed>(11, 8, Initializer{}, float16)(x);
		h = make_child<MultiHeadDotProductAttention>(2, attn)(h);
		h = make_child<LayerNorm>()(h);
		h = gelu(make_child<BatchNorm>(bn)(h));
		return make_child<Dense>(4, dense)(h);
	}
};

const char* const kTiny16 = R"({"module": "Compact", "class": "Tiny", "layers": [
	{"module": "Embed", "num_embeddings": 11, "features": 8, "dtype": "float16"},
	{"module": "MultiHeadDotProductAttention", "num_heads": 2, "dtype": "float16"},
	{"module": "LayerNorm"},
	{"module": "BatchNorm", "use_running_average": true, "dtype": "float16"}, {"module": "gelu"},
	{"module": "Dense", "features": 4, "dtype": "float16"}]})";

struct OpRow {
	uint32_t opcode, dtype;
	flaxdrm::Shape shape;
	bool operator==(const OpRow&) const = default;
};

std::ostream& operator<<(std::ostream& o, const OpRow& r)
{
	return o << "{op " << r.opcode << ", dtype " << r.dtype << ", " << flaxdrm::shape_str(r.shape) << "}";
}

template <class Tensors, class Ops> std::vector<OpRow> op_rows(const Tensors& tensors, const Ops& ops)
{
	std::vector<OpRow> r;
	for (const auto& op : ops) {
		const auto& t = tensors[op.outputs[0]];
		r.push_back({op.opcode, t.dtype, flaxdrm::Shape(t.dims, t.dims + t.rank)});
	}
	return r;
}

// (kind, dtype, shape) of every tensor, in table order
template <class Tensors> std::vector<OpRow> tensor_rows(const Tensors& tensors)
{
	std::vector<OpRow> r;
	for (const auto& t : tensors)
		r.push_back({t.kind, t.dtype, flaxdrm::Shape(t.dims, t.dims + t.rank)});
	return r;
}

// The Module API's last trace and the JSON's program: same ops (opcode,
// output dtype and shape) and the same tensor table (kind, dtype, shape).
void expect_same_program(const Module& api, const flaxdrm::Model& model, const flaxdrm::Shape& x)
{
	const Trace* t = api.last_trace();
	ASSERT_NE(t, nullptr);
	std::vector<uint32_t> handles(model.num_modules, 1);
	const flaxdrm::Program p = flaxdrm::lower(model, x, handles);
	EXPECT_EQ(op_rows(t->tensors, t->ops), op_rows(p.tensors, p.ops));
	EXPECT_EQ(tensor_rows(t->tensors), tensor_rows(p.tensors));
	bool any_f16 = false;
	for (const auto& d : p.tensors)
		any_f16 |= d.dtype == FLAXDRM_DTYPE_F16;
	EXPECT_TRUE(any_f16);
	EXPECT_EQ(p.tensors[p.output].dtype, uint32_t(FLAXDRM_DTYPE_F32));
}

flaxdrm::Tensor first_rows(const flaxdrm::Tensor& t, int64_t n)
{
	flaxdrm::Shape s = t.shape;
	s[0] = n;
	flaxdrm::Tensor out(s);
	std::copy_n(t.data.begin(), out.data.size(), out.data.begin());
	return out;
}

} // namespace

TEST(FlaxJsonDtypeEquivalence, DigitsCnnFloat16SameProgramAndLogits)
{
	REQUIRE_F16_DEVICE();
	const flaxdrm::Model model = flaxdrm::parse_model_json(kCnn16, "cnn16.json");
	const flaxdrm::Tensor x = first_rows(flaxdrm::read_npy(digits + "test_x.npy"), 16);
	const flaxdrm::Variables trained = flaxdrm::read_flax_msgpack(digits + "cnn.msgpack");

	CNN16 module;
	const flaxdrm::Tensor via_api = module.apply(trained, {x});
	expect_same_program(module, model, x.shape);

	auto bound = flaxdrm::Device::open("local")->bind(model, trained, x.shape);
	const flaxdrm::Tensor via_json = bound->apply(x);
	bound->close();
	// the same program on the same device: the same values
	ASSERT_EQ(via_api.shape, via_json.shape);
	for (std::size_t i = 0; i < via_api.data.size(); i++)
		ASSERT_EQ(via_api.data[i], via_json.data[i]) << "at " << i;
	// and f16 logits near the float32 model's (examples/digits/cnn.json)
	const flaxdrm::Model f32_model = flaxdrm::read_model_json(digits + "cnn.json");
	auto bound32 = flaxdrm::Device::open("local")->bind(f32_model, trained, x.shape);
	const flaxdrm::Tensor f32_logits = bound32->apply(x);
	bound32->close();
	for (std::size_t i = 0; i < f32_logits.data.size(); i++)
		EXPECT_NEAR(via_json.data[i], f32_logits.data[i], 0.05f * (1.0f + std::fabs(f32_logits.data[i])))
			<< "at " << i;
	module.cleanup();
}

TEST(FlaxJsonDtypeEquivalence, EmbedAttentionNormsFloat16SameProgramAndOutputs)
{
	REQUIRE_F16_DEVICE();
	const flaxdrm::Model model = flaxdrm::parse_model_json(kTiny16, "tiny16.json");
	std::vector<int32_t> ids;
	for (int i = 0; i < 2 * 5; i++)
		ids.push_back((i * 7) % 11);
	const Array xa = Array::i32({2, 5}, ids);
	flaxdrm::Tensor x({2, 5});
	x.dtype = flaxdrm::DType::I32;
	for (std::size_t i = 0; i < ids.size(); i++)
		x.set_index(i, ids[i]);

	Tiny16 module;
	const flaxdrm::Variables vars = module.init(PRNGKey(0), {xa});
	EXPECT_EQ(flaxdrm::expected_variables(model, x.shape).size(), vars.size());
	const flaxdrm::Tensor via_api = module.apply(vars, {xa});
	expect_same_program(module, model, x.shape);

	auto bound = flaxdrm::Device::open("local")->bind(model, vars, x.shape);
	const flaxdrm::Tensor via_json = bound->apply(x);
	bound->close();
	ASSERT_EQ(via_api.shape, via_json.shape);
	for (std::size_t i = 0; i < via_api.data.size(); i++)
		ASSERT_EQ(via_api.data[i], via_json.data[i]) << "at " << i;
	module.cleanup();
}
