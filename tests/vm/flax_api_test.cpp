// The Module API on the drm backend (inside the VM, engine attached): an
// MLP and a small CNN give the local backend's results, the kernel's module
// tree has the Flax paths, a second apply with the same shapes creates no
// program, and the backend reports kernel errors as the drm device does.
#include <gtest/gtest.h>

#include <cerrno>
#include <cmath>
#include <string>

#include "flaxdrm/device.hpp"
#include "flaxdrm/error.hpp"
#include "flaxdrm/flax/backend.hpp"
#include "flaxdrm/flax/layers.hpp"

using namespace flaxdrm::flax;
using flaxdrm::Tensor;

namespace {

Tensor iota(flaxdrm::Shape s)
{
	Tensor t(s);
	for (std::size_t i = 0; i < t.data.size(); i++)
		t.data[i] = -0.5f + 0.1f * float((i * 7) % 13);
	return t;
}

void expect_near(const Tensor& a, const Tensor& b)
{
	ASSERT_EQ(a.shape, b.shape);
	for (std::size_t i = 0; i < a.data.size(); i++)
		ASSERT_NEAR(a.data[i], b.data[i], 1e-5f * (1.0f + std::fabs(b.data[i]))) << "at " << i;
}

struct Block : ModuleT<Block> {
	Block() : ModuleT("Block") {}
	Value call(const Value& x) override { return gelu(make_child<Dense>(16)(x)); }
};

struct MLP : ModuleT<MLP> {
	MLP() : ModuleT("MLP") {}
	Value call(const Value& x) override
	{
		Value h = relu(make_child<Dense>(32)(x));
		h = make_child<Block>()(h);
		h = make_child<LayerNorm>()(h);
		return child<Dense>("head", 10)(h);
	}
};

struct CNN : ModuleT<CNN> {
	CNN() : ModuleT("CNN") {}
	Value call(const Value& x) override
	{
		Value h = relu(make_child<Conv>(4, flaxdrm::Shape{3, 3})(x));
		h = avg_pool(h, {2, 2}, {2, 2});
		ConvOptions o;
		o.strides = {2, 2};
		h = relu(make_child<Conv>(8, flaxdrm::Shape{3, 3}, o)(h));
		h = reshape(h, {h.shape[0], -1});
		return make_child<Dense>(10)(h);
	}
};

// Flax's dtype=float16 on the layers: f16 conv, pool, Dense and norms
// (ABI 1.2) through the kernel's program rules and the engine.
struct HalfCNN : ModuleT<HalfCNN> {
	HalfCNN() : ModuleT("HalfCNN") {}
	Value call(const Value& x) override
	{
		ConvOptions c;
		c.dtype = float16;
		Value h = relu(make_child<Conv>(8, flaxdrm::Shape{3, 3}, c)(x));
		h = max_pool(h, {2, 2}, {2, 2});
		NormOptions n;
		n.dtype = float16;
		h = make_child<GroupNorm>(4, n)(h);
		h = mean(h, {1, 2});
		DenseOptions d;
		d.dtype = float16;
		return make_child<Dense>(10, d)(h);
	}
};

void check_tree(Module& m, const std::shared_ptr<Backend>& drm, std::size_t expected)
{
	auto mods = m.backend_modules(drm);
	EXPECT_EQ(mods.size(), expected);
	for (const auto& [path, handle] : mods)
		EXPECT_EQ(drm->module_path(handle), path);
}

} // namespace

TEST(FlaxApiVm, MlpDrmEqualsLocal)
{
	auto drm = Backend::open("drm");
	auto local = Backend::open("local");
	MLP m;
	Tensor x = iota({4, 8});
	Variables v = m.init(PRNGKey(0), {x});
	ApplyOptions ol, od;
	ol.backend = local;
	od.backend = drm;
	Tensor yl = m.apply(v, {x}, ol);
	Tensor yd = m.apply(v, {x}, od);
	expect_near(yd, yl);
	// MLP, Dense_0, Block_0, Block_0/Dense_0, LayerNorm_0, head
	check_tree(m, drm, 6);
	auto mods = m.backend_modules(drm);
	EXPECT_TRUE(mods.count("Block_0/Dense_0"));
	EXPECT_EQ(drm->module_path(mods.at("Block_0/Dense_0")), "Block_0/Dense_0");

	const auto before = drm->counters();
	Tensor yd2 = m.apply(v, {x}, od);
	EXPECT_EQ(drm->counters().program_creates, before.program_creates);
	EXPECT_EQ(drm->counters().module_creates, before.module_creates);
	EXPECT_EQ(drm->counters().var_binds, before.var_binds);
	EXPECT_EQ(drm->counters().calls, before.calls + 1);
	expect_near(yd2, yl);
	m.cleanup();
}

TEST(FlaxApiVm, CnnDrmEqualsLocal)
{
	auto drm = Backend::open("drm");
	auto local = Backend::open("local");
	CNN m;
	Tensor x = iota({2, 12, 12, 3});
	Variables v = m.init(PRNGKey(1), {x});
	ApplyOptions ol, od;
	ol.backend = local;
	od.backend = drm;
	Tensor yl = m.apply(v, {x}, ol);
	Tensor yd = m.apply(v, {x}, od);
	EXPECT_EQ(yd.shape, (flaxdrm::Shape{2, 10}));
	expect_near(yd, yl);
	check_tree(m, drm, 4); // CNN, Conv_0, Conv_1, Dense_0
	const auto before = drm->counters();
	m.apply(v, {x}, od);
	EXPECT_EQ(drm->counters().program_creates, before.program_creates);
	m.cleanup();
}

TEST(FlaxApiVm, Float16CnnDrmEqualsLocal)
{
	auto drm = Backend::open("drm");
	auto local = Backend::open("local");
	HalfCNN m;
	Tensor x = iota({2, 10, 10, 3});
	// a float16 input, rounded on upload
	const Array xh(x.shape, x.data, float16);
	Variables v = m.init(PRNGKey(2), {xh});
	ApplyOptions ol, od;
	ol.backend = local;
	od.backend = drm;
	Tensor yl = m.apply(v, {xh}, ol);
	Tensor yd = m.apply(v, {xh}, od);
	EXPECT_EQ(yd.shape, (flaxdrm::Shape{2, 10}));
	// the same runtime and device on both sides: the same f16 values
	EXPECT_EQ(yd.data, yl.data);
	check_tree(m, drm, 4); // HalfCNN, Conv_0, GroupNorm_0, Dense_0
	m.cleanup();
}

TEST(FlaxApiVm, BatchNormTrainingUpdatesOnDrm)
{
	auto drm = Backend::open("drm");
	auto local = Backend::open("local");
	Sequential m({layer<Dense>(6), layer<BatchNorm>()});
	Tensor x = iota({5, 4});
	Variables v = m.init(PRNGKey(2), {x});
	ApplyOptions ol, od;
	ol.backend = local;
	od.backend = drm;
	auto [yl, ul] = m.apply(v, {x}, Mutable{"batch_stats"}, ol);
	auto [yd, ud] = m.apply(v, {x}, Mutable{"batch_stats"}, od);
	expect_near(yd, yl);
	expect_near(ud.at("batch_stats/layers_1/mean").value, ul.at("batch_stats/layers_1/mean").value);
	expect_near(ud.at("batch_stats/layers_1/var").value, ul.at("batch_stats/layers_1/var").value);
	check_tree(m, drm, 3); // root, layers_0, layers_1
	m.cleanup();
}

TEST(FlaxApiVm, DrmBackendAndDeviceReportKernelErrorsAlike)
{
	// both drive the kernel through one DrmConnection: a node that is not
	// flaxdrm, and a program the kernel refuses, read the same way
	const std::string node = "/dev/null";
	std::string backend_msg, device_msg;
	try {
		Backend::open("drm", node);
	} catch (const flaxdrm::Error& e) {
		backend_msg = e.what();
		EXPECT_EQ(e.code(), -ENODEV);
	}
	try {
		flaxdrm::DeviceOptions o;
		o.node = node;
		flaxdrm::Device::open_drm(o);
	} catch (const flaxdrm::Error& e) {
		device_msg = e.what();
		EXPECT_EQ(e.code(), -ENODEV);
	}
	EXPECT_EQ(backend_msg, node + " is not a flaxdrm device");
	EXPECT_EQ(device_msg, backend_msg);

	auto drm = Backend::open("drm");
	std::string chosen;
	const uint32_t root = drm->create_module(0, FLAXDRM_KIND_SEQUENTIAL, "", "", "", &chosen);
	// an op with an opcode the kernel does not know, on an input and output
	drm_flaxdrm_tensor t[2] = {};
	for (uint32_t i = 0; i < 2; i++) {
		t[i].kind = i ? FLAXDRM_TENSOR_OUTPUT : FLAXDRM_TENSOR_INPUT;
		t[i].dtype = FLAXDRM_DTYPE_F32;
		t[i].rank = 1;
		t[i].dims[0] = 4;
	}
	drm_flaxdrm_op op{};
	op.opcode = 0xffff;
	op.num_inputs = 1;
	op.num_outputs = 1;
	op.outputs[0] = 1;
	try {
		drm->create_program(root, t, {&op, 1}, [](uint32_t bad_op, uint32_t) {
			return bad_op == FLAXDRM_INDEX_NONE ? std::string() : "op " + std::to_string(bad_op);
		});
		ADD_FAILURE() << "the kernel took an unknown opcode";
	} catch (const flaxdrm::Error& e) {
		EXPECT_EQ(e.code(), -EINVAL);
		EXPECT_EQ(std::string(e.what()), drm->description().substr(4) +
							 ": the kernel refused the traced program: op 0: " +
							 flaxdrm::errno_string(-EINVAL));
	}
	drm->destroy_module(root);
}
