// The Module API against FLAX_SEMANTICS.md's numbered behaviours (one test
// each, named Bn_...), on the local backend.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "flax_test_util.hpp"

using namespace flaxtest;
using ::testing::HasSubstr;

namespace {

// compact: Dense(8), relu, Dense(8), LayerNorm, Dense(3, name="head")
struct Compact : ModuleT<Compact> {
	Compact() : ModuleT("Compact") {}
	Value call(const Value& x) override
	{
		Value h = relu(make_child<Dense>(8)(x));
		h = make_child<Dense>(8)(h);
		h = make_child<LayerNorm>()(h);
		return child<Dense>("head", 3)(h);
	}
};

struct MLP : ModuleT<MLP> {
	MLP() : ModuleT("MLP") {}
	Value call(const Value& x) override
	{
		Value h = relu(make_child<Dense>(4)(x)); // Dense_0 (order of evaluation matters in C++)
		return make_child<Dense>(3)(h);          // Dense_1
	}
};

int setup_runs = 0;

struct WithSetup : ModuleT<WithSetup> {
	WithSetup() : ModuleT("WithSetup") {}
	Dense* shared = nullptr;
	std::vector<Module*> layers;
	std::map<std::string, Module*> heads;
	void setup() override
	{
		setup_runs++;
		shared = &child<Dense>("shared", 5);
		std::vector<std::unique_ptr<Module>> ls;
		ls.push_back(std::make_unique<Dense>(5));
		ls.push_back(std::make_unique<Dense>(5));
		layers = child_list("layers", std::move(ls));
		std::map<std::string, std::unique_ptr<Module>> hs;
		hs["a"] = std::make_unique<Dense>(2);
		heads = child_map("heads", std::move(hs));
	}
	Value call(const Value& x) override
	{
		Value h = (*shared)(x);
		h = (*shared)(h); // weight sharing
		h = (*layers[1])((*layers[0])(h));
		return (*heads["a"])(h);
	}
	Value dispatch(const std::string& m, const std::vector<Value>& xs) override
	{
		if (m == "encode")
			return (*shared)(xs[0]);
		return Module::dispatch(m, xs);
	}
};

template <class Body> struct Lambda : ModuleT<Lambda<Body>> {
	Body body;
	explicit Lambda(Body b) : ModuleT<Lambda<Body>>("Lambda"), body(b) {}
	Value call(const Value& x) override { return body(*this, x); }
};
template <class Body> Lambda<Body> lambda(Body b) { return Lambda<Body>(b); }

const Tensor X = iota({2, 4});

} // namespace

TEST(FlaxModule, B1_AutoNamesOneCounterPerClass)
{
	Compact m;
	Variables v = m.init(PRNGKey(0), {X});
	for (const char* p : {"params/Dense_0/kernel", "params/Dense_1/kernel", "params/LayerNorm_0/scale",
			      "params/head/kernel"})
		EXPECT_TRUE(v.count(p)) << p << " in " << tree_str(v);
	EXPECT_FALSE(v.count("params/Dense_2/kernel"));
}

TEST(FlaxModule, B2_ExplicitNameUsedExactly)
{
	Compact m;
	Variables v = m.init(PRNGKey(0), {X});
	EXPECT_EQ(v.at("params/head/kernel").value.shape, (flaxdrm::Shape{8, 3}));
	EXPECT_EQ(v.at("params/head/bias").value.shape, (flaxdrm::Shape{3}));
}

TEST(FlaxModule, B3_SetupChildrenTakeAttributeNames)
{
	WithSetup m;
	Variables v = m.init(PRNGKey(0), {iota({2, 5})});
	for (const char* p : {"params/shared/kernel", "params/layers_0/kernel", "params/layers_1/kernel",
			      "params/heads_a/kernel"})
		EXPECT_TRUE(v.count(p)) << p << " in " << tree_str(v);
}

TEST(FlaxModule, B4_NameInUse)
{
	auto two_children = lambda([](Module& self, const Value& x) {
		self.child<Dense>("d", 3)(x);
		return self.child<Dense>("d", 3)(x);
	});
	std::string e = error_of<NameInUseError>([&] { two_children.init(PRNGKey(0), {X}); });
	EXPECT_THAT(e, HasSubstr("\"d\""));
	EXPECT_THAT(e, HasSubstr("Name in use"));
	EXPECT_THAT(e, HasSubstr("\"/\" (Lambda)"));

	auto child_and_var = lambda([](Module& self, const Value& x) {
		self.param("d", init::zeros(), {3});
		return self.child<Dense>("d", 3)(x);
	});
	e = error_of<NameInUseError>([&] { child_and_var.init(PRNGKey(0), {X}); });
	EXPECT_THAT(e, HasSubstr("submodule \"d\""));

	// nested parent path in the message
	auto nested = lambda([](Module& self, const Value& x) {
		auto inner = lambda([](Module& s2, const Value& y) {
			s2.param("w", init::zeros(), {3});
			s2.param("w", init::zeros(), {3});
			return y;
		});
		return self.child<decltype(inner)>("inner", inner)(x);
	});
	e = error_of<NameInUseError>([&] { nested.init(PRNGKey(0), {X}); });
	EXPECT_THAT(e, HasSubstr("param \"w\" in Module \"/inner\""));
}

TEST(FlaxModule, B5_SameNameInTwoCollections)
{
	auto m = lambda([](Module& self, const Value& x) {
		Value a = self.param("mean", init::ones(), {4});
		Value b = self.variable("batch_stats", "mean", init::zeros(), {4});
		return add(add(x, a), b);
	});
	Variables v = m.init(PRNGKey(0), {X});
	EXPECT_TRUE(v.count("params/mean"));
	EXPECT_TRUE(v.count("batch_stats/mean"));
	Tensor y = m.apply(v, {X});
	for (std::size_t i = 0; i < y.data.size(); i++)
		EXPECT_NEAR(y.data[i], X.data[i] + 1.0f, 1e-6);
}

TEST(FlaxModule, B6_WeightSharingAndCompactRecreation)
{
	// shared is applied twice: its (5, 5) kernel is created once
	WithSetup sq;
	Tensor x5 = iota({2, 5});
	Variables v5 = sq.init(PRNGKey(1), {x5});
	EXPECT_EQ(collection(v5, "params").size(), 8u); // shared, layers_0/1, heads_a: kernel + bias
	const Tensor& k = v5.at("params/shared/kernel").value;
	const Tensor& b = v5.at("params/shared/bias").value;
	Tensor h = dense_ref(dense_ref(x5, k, &b), k, &b);
	h = dense_ref(h, v5.at("params/layers_0/kernel").value, &v5.at("params/layers_0/bias").value);
	h = dense_ref(h, v5.at("params/layers_1/kernel").value, &v5.at("params/layers_1/bias").value);
	h = dense_ref(h, v5.at("params/heads_a/kernel").value, &v5.at("params/heads_a/bias").value);
	expect_near(sq.apply(v5, {x5}), h);

	// a bound compact module called again (new shapes: traced again)
	// recreates Dense_0 and finds the same params
	MLP mlp;
	Variables mv = mlp.init(PRNGKey(0), {X});
	auto bound = mlp.bind(mv);
	Tensor x3 = iota({3, 4});
	Tensor y1 = (*bound)(X), y2 = (*bound)(x3);
	EXPECT_EQ(bound->stats().traces, 3u); // init + two shapes
	Tensor r = dense_ref(x3, mv.at("params/Dense_0/kernel").value, &mv.at("params/Dense_0/bias").value);
	for (float& f : r.data)
		f = std::max(f, 0.0f);
	r = dense_ref(r, mv.at("params/Dense_1/kernel").value, &mv.at("params/Dense_1/bias").value);
	expect_near(y2, r);
}

TEST(FlaxModule, B7_SetupRunsLazilyOnce)
{
	WithSetup m;
	Tensor x5 = iota({2, 5});
	Variables v = m.init(PRNGKey(0), {x5});
	auto b = m.bind(v);
	setup_runs = 0;
	EXPECT_EQ(b->submodules().size(), 0u); // not yet
	Tensor y1 = (*b)(x5);
	EXPECT_EQ(setup_runs, 1);
	Tensor y2 = (*b)(iota({3, 5})); // traced again, setup not again
	EXPECT_EQ(setup_runs, 1);
	EXPECT_NE(b->submodule("shared"), nullptr);
	EXPECT_EQ(setup_runs, 1);
}

TEST(FlaxModule, B8_ChildOutsideSetupOrCall)
{
	MLP m;
	std::string e = error_of<AssignSubModuleError>([&] { m.make_child<Dense>(3); });
	EXPECT_THAT(e, HasSubstr("must be defined in setup() or inside a compact-style call"));
	auto b = m.bind(m.init(PRNGKey(0), {X}));
	e = error_of<AssignSubModuleError>([&] { b->make_child<Dense>(3); });
	EXPECT_THAT(e, HasSubstr("setup()"));
}

TEST(FlaxModule, B9_AttributesFrozen)
{
	Dense d(3);
	std::string e = error_of<SetAttributeFrozenModuleError>([&] { d.set_attr("features", int64_t(4)); });
	EXPECT_THAT(e, HasSubstr("Can't set features=4 for Module of type Dense"));
	EXPECT_EQ(d.features(), 3);
	auto c = d.clone({{"features", int64_t(4)}});
	EXPECT_EQ(c->attr<int64_t>("features"), 4);
}

TEST(FlaxModule, B10_Paths)
{
	Module* seen_inner = nullptr;
	std::string inner_path;
	auto m = lambda([&](Module& self, const Value& x) {
		EXPECT_TRUE(self.path().empty());
		EXPECT_EQ(self.path_str(), "/");
		auto blk = lambda([&](Module& s2, const Value& y) {
			Dense& d = s2.make_child<Dense>(3);
			inner_path = d.path_str();
			seen_inner = &d;
			EXPECT_EQ(d.path(), (std::vector<std::string>{"Lambda_0", "Dense_0"}));
			return d(y);
		});
		return self.make_child<decltype(blk)>(blk)(x);
	});
	m.init(PRNGKey(0), {X});
	EXPECT_EQ(inner_path, "/Lambda_0/Dense_0");
	EXPECT_NE(seen_inner, nullptr);
}

TEST(FlaxModule, B11_InitReturnsVariablesTree)
{
	Dense d(3);
	Variables v = d.init(PRNGKey(0), {X});
	ASSERT_EQ(v.size(), 2u);
	EXPECT_EQ(v.at("params/kernel").value.shape, (flaxdrm::Shape{4, 3}));
	EXPECT_EQ(v.at("params/bias").value.shape, (flaxdrm::Shape{3}));
	MLP mlp;
	Variables mv = mlp.init(PRNGKey(0), {X});
	EXPECT_EQ(tree_str(mv), "{params: {Dense_0: {bias: (4,), kernel: (4, 4)}, Dense_1: {bias: (3,), kernel: (4, 3)}}}");
}

TEST(FlaxModule, B12_ApplyOutputAloneOrWithUpdates)
{
	Dense d(3);
	Variables v = d.init(PRNGKey(0), {X});
	Tensor y = d.apply(v, {X});
	expect_near(y, dense_ref(X, v.at("params/kernel").value, &v.at("params/bias").value));

	BatchNorm bn;
	Variables bv = bn.init(PRNGKey(0), {X});
	auto [y2, updates] = bn.apply(bv, {X}, Mutable{"batch_stats"});
	EXPECT_EQ(y2.shape, X.shape);
	EXPECT_TRUE(updates.count("batch_stats/mean"));
	EXPECT_TRUE(updates.count("batch_stats/var"));
	EXPECT_FALSE(updates.count("params/scale"));
}

TEST(FlaxModule, B13_WriteImmutableCollection)
{
	BatchNorm bn; // use_running_average false: training
	Variables v = bn.init(PRNGKey(0), {X});
	auto m = lambda([](Module& self, const Value& x) { return self.make_child<BatchNorm>()(x); });
	Variables mv = m.init(PRNGKey(0), {X});
	std::string e = error_of<ModifyScopeVariableError>([&] { m.apply(mv, {X}); });
	EXPECT_THAT(e, HasSubstr("\"mean\""));
	EXPECT_THAT(e, HasSubstr("/BatchNorm_0"));
	EXPECT_THAT(e, HasSubstr("collection \"batch_stats\" is immutable"));

	auto counter = lambda([](Module& self, const Value& x) {
		Value c = self.variable("counter", "count", init::zeros(), {1});
		if (!self.is_initializing())
			self.put_variable("counter", "count", add(c, c));
		return x;
	});
	Variables cv = counter.init(PRNGKey(0), {X});
	e = error_of<ModifyScopeVariableError>([&] { counter.apply(cv, {X}); });
	EXPECT_THAT(e, HasSubstr("Cannot update variable \"count\" in \"/\""));
}

TEST(FlaxModule, B14_ParamShapeMismatch)
{
	MLP m;
	Variables v = m.init(PRNGKey(0), {X});
	v["params/Dense_1/kernel"].value = Tensor({5, 3});
	std::string e = error_of<ScopeParamShapeError>([&] { m.apply(v, {X}); });
	EXPECT_THAT(e, HasSubstr("(4, 3)"));
	EXPECT_THAT(e, HasSubstr("(5, 3)"));
	EXPECT_THAT(e, HasSubstr("\"kernel\""));
	EXPECT_THAT(e, HasSubstr("/Dense_1"));
}

TEST(FlaxModule, B15_MissingParamVsEmptyCollection)
{
	MLP m;
	Variables v = m.init(PRNGKey(0), {X});
	v.erase("params/Dense_1/bias");
	std::string e = error_of<ScopeParamNotFoundError>([&] { m.apply(v, {X}); });
	EXPECT_THAT(e, HasSubstr("Could not find parameter named \"bias\" in scope \"/Dense_1\""));
	e = error_of<ScopeCollectionNotFound>([&] { m.apply(Variables{}, {X}); });
	EXPECT_THAT(e, HasSubstr("collection \"params\""));
	EXPECT_THAT(e, HasSubstr("the collection is empty"));
}

TEST(FlaxModule, B16_RngFallbackAndMissingRng)
{
	auto m = lambda([](Module& self, const Value& x) { return self.make_child<Dropout>(0.5)(x); });
	Variables v = m.init(PRNGKey(0), {X}); // dropout falls back to params
	EXPECT_TRUE(v.empty());
	ApplyOptions o;
	o.rngs = {{"params", PRNGKey(3)}};
	Tensor y = m.apply(v, {X}, o);
	EXPECT_EQ(y.shape, X.shape);
	std::string e = error_of<InvalidRngError>([&] { m.apply(v, {X}); });
	EXPECT_THAT(e, HasSubstr("/Dropout_0"));
	EXPECT_THAT(e, HasSubstr("\"dropout\""));
	Dense d(3);
	e = error_of<InvalidRngError>([&] { d.init(Rngs{}, {X}); });
	EXPECT_THAT(e, HasSubstr("\"params\""));
	EXPECT_THAT(e, HasSubstr("(Dense)"));
}

TEST(FlaxModule, B17_SameRngSameInitDifferentRngDifferent)
{
	MLP m;
	Variables a = m.init(PRNGKey(0), {X}), b = m.init(PRNGKey(0), {X}), c = m.init(PRNGKey(1), {X});
	EXPECT_EQ(a.at("params/Dense_0/kernel").value.data, b.at("params/Dense_0/kernel").value.data);
	EXPECT_NE(a.at("params/Dense_0/kernel").value.data, c.at("params/Dense_0/kernel").value.data);
	// two layers of one init differ too
	EXPECT_NE(a.at("params/Dense_0/kernel").value.data[0], a.at("params/Dense_1/kernel").value.data[0]);
}

TEST(FlaxModule, B18_BindEqualsApplyAndUnbind)
{
	MLP m;
	Variables v = m.init(PRNGKey(0), {X});
	auto b = m.bind(v);
	EXPECT_TRUE(b->is_bound());
	EXPECT_FALSE(m.is_bound());
	expect_near((*b)(X), m.apply(v, {X}), 0);
	auto [u, uv] = b->unbind();
	EXPECT_FALSE(u->is_bound());
	EXPECT_EQ(uv.size(), v.size());
	EXPECT_EQ(uv.at("params/Dense_0/kernel").value.data, v.at("params/Dense_0/kernel").value.data);
}

TEST(FlaxModule, B19_CloneCopiesAttributesNoParent)
{
	Dense* inner = nullptr;
	std::unique_ptr<Module> cl;
	auto m = lambda([&](Module& self, const Value& x) {
		inner = &self.make_child<Dense>(7, DenseOptions{false});
		cl = inner->clone();
		return (*inner)(x);
	});
	m.init(PRNGKey(0), {X});
	ASSERT_TRUE(cl);
	EXPECT_EQ(cl->template attr<int64_t>("features"), 7);
	EXPECT_FALSE(cl->attr<bool>("use_bias"));
	EXPECT_EQ(cl->parent(), nullptr);
	EXPECT_FALSE(cl->is_bound());
	EXPECT_EQ(cl->name(), "");
}

TEST(FlaxModule, B20_IsInitializingOnlyUnderInit)
{
	std::vector<bool> seen;
	auto m = lambda([&](Module& self, const Value& x) {
		seen.push_back(self.is_initializing());
		return self.make_child<Dense>(2)(x);
	});
	EXPECT_FALSE(m.is_initializing());
	Variables v = m.init(PRNGKey(0), {X});
	m.apply(v, {X});
	ASSERT_EQ(seen.size(), 2u);
	EXPECT_TRUE(seen[0]);
	EXPECT_FALSE(seen[1]);
}

TEST(FlaxModule, B21_ApplyMethod)
{
	WithSetup m;
	Tensor x5 = iota({2, 5});
	Variables v = m.init(PRNGKey(0), {x5});
	ApplyOptions o;
	o.method = "encode";
	Tensor y = m.apply(v, {x5}, o);
	expect_near(y, dense_ref(x5, v.at("params/shared/kernel").value, &v.at("params/shared/bias").value));
	o.method = "nope";
	EXPECT_THAT(error_of<flaxdrm::Error>([&] { m.apply(v, {x5}, o); }), HasSubstr("has no method \"nope\""));
}

TEST(FlaxModule, ProgramCachedPerShapes)
{
	auto backend = Backend::open("local");
	MLP m;
	Variables v = m.init(PRNGKey(0), {X});
	ApplyOptions o;
	o.backend = backend;
	m.apply(v, {X}, o);
	const auto s1 = m.stats();
	const auto c1 = backend->counters();
	Tensor y = m.apply(v, {X}, o);
	EXPECT_EQ(m.stats().traces, s1.traces);                 // no tracing
	EXPECT_EQ(backend->counters().program_creates, c1.program_creates); // no PROGRAM_CREATE
	EXPECT_EQ(backend->counters().var_binds, c1.var_binds);             // same variables stay bound
	EXPECT_EQ(backend->counters().calls, c1.calls + 1);
	m.apply(v, {iota({5, 4})}, o); // a new shape traces again
	EXPECT_EQ(m.stats().traces, s1.traces + 1);
	EXPECT_EQ(backend->counters().program_creates, c1.program_creates + 1);
	// new values of the same shapes: rebound, not retraced
	v["params/Dense_0/bias"].value.data[0] = 1.0f;
	m.apply(v, {X}, o);
	EXPECT_EQ(m.stats().traces, s1.traces + 1);
	EXPECT_EQ(backend->counters().var_binds, c1.var_binds + 1);
	m.cleanup();
}

TEST(FlaxModule, TracedProgramFormat)
{
	MLP m;
	Variables v = m.init(PRNGKey(0), {X});
	m.apply(v, {X});
	const Trace* t = m.last_trace();
	ASSERT_NE(t, nullptr);
	ASSERT_EQ(t->ops.size(), 3u);
	EXPECT_EQ(t->ops[0].opcode, uint32_t(FLAXDRM_OP_DENSE));
	EXPECT_EQ(t->ops[1].opcode, uint32_t(FLAXDRM_OP_RELU));
	EXPECT_EQ(t->ops[1].module, 0u);
	EXPECT_EQ(t->vars.size(), 4u);
	const auto& k = t->tensors[t->vars[0].tensor];
	EXPECT_EQ(k.kind, uint32_t(FLAXDRM_TENSOR_VARIABLE));
	EXPECT_STREQ(k.collection, "params");
	EXPECT_STREQ(k.name, "kernel");
	EXPECT_EQ(t->tensors[t->output].kind, uint32_t(FLAXDRM_TENSOR_OUTPUT));
}

TEST(FlaxModule, SequentialNamesByPosition)
{
	Sequential s({layer<Dense>(4), std::function<Value(const Value&)>([](const Value& x) { return relu(x); }),
		      layer<Dense>(2)});
	Variables v = s.init(PRNGKey(0), {X});
	EXPECT_TRUE(v.count("params/layers_0/kernel"));
	EXPECT_TRUE(v.count("params/layers_2/kernel"));
	EXPECT_FALSE(v.count("params/layers_1/kernel"));
	Tensor r = dense_ref(X, v.at("params/layers_0/kernel").value, &v.at("params/layers_0/bias").value);
	for (float& f : r.data)
		f = std::max(f, 0.0f);
	r = dense_ref(r, v.at("params/layers_2/kernel").value, &v.at("params/layers_2/bias").value);
	expect_near(s.apply(v, {X}), r);
}

TEST(FlaxModule, SymbolicCallOfUnboundModule)
{
	Dense d(3);
	Trace t;
	Value x = t.input({2, 4}, FLAXDRM_DTYPE_F32);
	EXPECT_THAT(error_of<UnboundModuleError>([&] { d(x); }), HasSubstr("unbound module Dense"));
}

TEST(FlaxModule, Tabulate)
{
	Compact m;
	std::string t = m.tabulate(PRNGKey(0), {X});
	EXPECT_THAT(t, HasSubstr("Compact Summary"));
	EXPECT_THAT(t, HasSubstr("| Dense_0 "));
	EXPECT_THAT(t, HasSubstr("bias: (8,) kernel: (4, 8)"));
	EXPECT_THAT(t, HasSubstr("| LayerNorm_0 | LayerNorm"));
	// 4*8+8 + 8*8+8 + 8+8 + 8*3+3 = 155
	EXPECT_THAT(t, HasSubstr("Total Parameters: 155"));
	std::cout << t;
}
