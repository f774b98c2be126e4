// The Module API on the drm backend (inside the VM, engine attached): an
// MLP and a small CNN give the local backend's results, the kernel's module
// tree has the Flax paths, and a second apply with the same shapes creates
// no program.
#include <gtest/gtest.h>

#include <cmath>

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
