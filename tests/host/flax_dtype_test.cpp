// The Module API's dtypes, as Flax's `dtype=`: a layer computes in its
// dtype (float16 or float32) or, for None, in the promotion of its inputs'
// and float32 parameters' dtypes; the norms compute in float32 and cast
// their result; float16 inputs round to f16 on upload; apply() returns
// float32 data. Checked on the local backend against plain CPU references
// on the same f16-rounded values (GCC's _Float16, round to nearest even),
// and by reading the traced program.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "f16_test_util.hpp"
#include "flax_test_util.hpp"

using namespace flaxtest;
using flaxdrm::optest::have_f16;
using flaxdrm::optest::round_f16;
using ::testing::HasSubstr;

namespace {

#define REQUIRE_MODULE_F16()                                                               \
	do {                                                                               \
		if (!have_f16())                                                           \
			GTEST_SKIP() << "the default Vulkan device has no f16 (shaderFloat16)"; \
	} while (0)

Tensor rounded(Tensor t)
{
	t.data = round_f16(t.data);
	return t;
}

// f16 results against a reference rounded to f16: the device sums in f32
// and rounds once, so a result may sit one f16 ulp (2^-10 relative) away
// when the exact value lies near a rounding boundary.
void expect_f16_near(const Tensor& got, const Tensor& want)
{
	ASSERT_EQ(got.shape, want.shape);
	for (std::size_t i = 0; i < got.data.size(); i++) {
		ASSERT_EQ(got.data[i], round_f16({got.data[i]})[0]) << "not an f16 value at " << i;
		ASSERT_NEAR(got.data[i], want.data[i], std::ldexp(std::fabs(want.data[i]), -10) + 1e-7) << "at " << i;
	}
}

// (opcode, output dtype) of every op of the module's last traced program
std::vector<std::pair<uint32_t, uint32_t>> ops_of(const Module& m)
{
	const Trace* t = m.last_trace();
	std::vector<std::pair<uint32_t, uint32_t>> r;
	for (const auto& op : t->ops)
		r.push_back({op.opcode, t->tensors[op.outputs[0]].dtype});
	return r;
}

template <class F> struct Fn : ModuleT<Fn<F>> {
	F f;
	explicit Fn(F fn) : ModuleT<Fn<F>>("Fn"), f(fn) {}
	Value call(const Value& x) override { return f(static_cast<Module&>(*this), x); }
};
template <class F> Fn<F> fn(F f)
{
	return Fn<F>(f);
}

using P = std::pair<uint32_t, uint32_t>;
constexpr uint32_t F16 = FLAXDRM_DTYPE_F16, F32 = FLAXDRM_DTYPE_F32;

} // namespace

TEST(FlaxDtype, DenseFloat16CastsInputAndParamsAndComputesInF16)
{
	REQUIRE_MODULE_F16();
	auto m = fn([](Module& self, const Value& x) {
		DenseOptions o;
		o.dtype = float16;
		return self.make_child<Dense>(24, o)(x);
	});
	const Tensor x = iota({5, 40}, 0.37f, -2.0f);
	Variables v = m.init(PRNGKey(0), {x});
	// parameters stay float32 (param_dtype)
	Tensor w = v.at("params/Dense_0/kernel").value, b = v.at("params/Dense_0/bias").value;
	for (float& e : b.data)
		e = 0.25f; // a bias that is not zero
	v.at("params/Dense_0/bias").value = b;
	const Tensor y = m.apply(v, {x});
	EXPECT_THAT(ops_of(m), ::testing::ElementsAre(P{FLAXDRM_OP_ASTYPE, F16}, P{FLAXDRM_OP_ASTYPE, F16},
						       P{FLAXDRM_OP_ASTYPE, F16}, P{FLAXDRM_OP_DENSE, F16},
						       P{FLAXDRM_OP_ASTYPE, F32}));
	const Tensor rb = rounded(b);
	expect_f16_near(y, rounded(dense_ref(rounded(x), rounded(w), &rb)));
}

TEST(FlaxDtype, NoneComputesInThePromotedDtype)
{
	REQUIRE_MODULE_F16();
	// a float16 input with float32 parameters: float32 (jnp.promote_types)
	auto m = fn([](Module& self, const Value& x) { return self.make_child<Dense>(6)(x); });
	const Tensor x32 = iota({3, 8}, 0.123f, -0.7f);
	const Array x(x32.shape, x32.data, float16);
	Variables v = m.init(PRNGKey(1), {x});
	const Tensor y = m.apply(v, {x});
	EXPECT_THAT(ops_of(m), ::testing::ElementsAre(P{FLAXDRM_OP_ASTYPE, F32}, P{FLAXDRM_OP_DENSE, F32}));
	const Tensor& w = v.at("params/Dense_0/kernel").value;
	expect_near(y, dense_ref(rounded(x32), w, &v.at("params/Dense_0/bias").value), 1e-5f);
}

TEST(FlaxDtype, PlainOpsKeepTheDtypeAndPromoteMixedOperands)
{
	REQUIRE_MODULE_F16();
	// relu of a float16 input stays float16; adding a float32 value promotes
	// the float16 operand to float32 first
	auto m = fn([](Module&, const Value& h) {
		Value r = relu(h);
		return add(r, astype(h, float32));
	});
	const Tensor x32 = iota({4, 9}, 0.41f, -2.5f);
	const Array x(x32.shape, x32.data, float16);
	const Tensor y = m.apply(m.init(PRNGKey(0), {x}), {x});
	EXPECT_THAT(ops_of(m), ::testing::ElementsAre(P{FLAXDRM_OP_RELU, F16}, P{FLAXDRM_OP_ASTYPE, F32},
						       P{FLAXDRM_OP_ASTYPE, F32}, P{FLAXDRM_OP_ADD, F32}));
	const std::vector<float> xr = round_f16(x32.data);
	for (std::size_t i = 0; i < xr.size(); i++)
		EXPECT_EQ(y.data[i], std::max(xr[i], 0.0f) + xr[i]) << "at " << i;
}

TEST(FlaxDtype, Float16MlpMatchesTheRoundedReference)
{
	REQUIRE_MODULE_F16();
	DenseOptions o;
	o.dtype = float16;
	Sequential mlp({layer<Dense>(32, o), Layer(std::function<Value(const Value&)>(relu)), layer<Dense>(10, o)});
	const Tensor x = iota({8, 20}, 0.2f, -1.2f);
	const Variables v = mlp.init(PRNGKey(3), {x});
	const Tensor y = mlp.apply(v, {x});
	auto param = [&](const std::string& p) { return rounded(v.at("params/" + p).value); };
	const Tensor b0 = param("layers_0/bias"), b2 = param("layers_2/bias");
	Tensor h = rounded(dense_ref(rounded(x), param("layers_0/kernel"), &b0));
	for (float& e : h.data)
		e = std::max(e, 0.0f);
	expect_f16_near(y, rounded(dense_ref(h, param("layers_2/kernel"), &b2)));
}

TEST(FlaxDtype, NormsComputeInFloat32AndCastTheResult)
{
	REQUIRE_MODULE_F16();
	const Tensor x = iota({6, 48}, 0.3f, -1.0f);
	for (int which = 0; which < 3; which++) {
		auto make = [which](uint32_t dtype) {
			return fn([which, dtype](Module& self, const Value& in) {
				NormOptions o;
				o.dtype = dtype;
				if (which == 0)
					return self.make_child<LayerNorm>(o)(in);
				if (which == 1)
					return self.make_child<RMSNorm>(o)(in);
				return self.make_child<GroupNorm>(8, o)(in);
			});
		};
		SCOPED_TRACE("norm " + std::to_string(which));
		auto m32 = make(kNoDtype), m16 = make(float16);
		const Variables v = m32.init(PRNGKey(0), {x});
		const Tensor want = m32.apply(v, {x});
		const Tensor got = m16.apply(v, {x});
		// the same float32 op, then one rounding: bit-exact
		EXPECT_EQ(got.data, round_f16(want.data));
		// ..., the float32 norm, astype to float16, and back to float32 for
		// apply()'s result
		const auto ops = ops_of(m16);
		ASSERT_GE(ops.size(), 3u);
		EXPECT_EQ(ops[ops.size() - 3].second, F32);
		EXPECT_EQ(ops[ops.size() - 2], (P{FLAXDRM_OP_ASTYPE, F16}));
		EXPECT_EQ(ops.back(), (P{FLAXDRM_OP_ASTYPE, F32}));
	}
}

TEST(FlaxDtype, BatchNormFloat16KeepsFloat32RunningStatistics)
{
	REQUIRE_MODULE_F16();
	auto make = [](uint32_t dtype) {
		return fn([dtype](Module& self, const Value& in) {
			BatchNormOptions o;
			o.dtype = dtype;
			return self.make_child<BatchNorm>(o)(in);
		});
	};
	const Tensor x = iota({4, 3, 3, 8}, 0.21f, -0.9f);
	auto m32 = make(kNoDtype), m16 = make(float16);
	const Variables v = m32.init(PRNGKey(0), {x});
	const auto [want, up32] = m32.apply(v, {x}, Mutable{"batch_stats"});
	const auto [got, up16] = m16.apply(v, {x}, Mutable{"batch_stats"});
	EXPECT_EQ(got.data, round_f16(want.data));
	for (const char* s : {"batch_stats/BatchNorm_0/mean", "batch_stats/BatchNorm_0/var"}) {
		EXPECT_EQ(up16.at(s).value.data, up32.at(s).value.data) << s;
		EXPECT_NE(up16.at(s).value.data, v.at(s).value.data) << s << " was updated";
	}
}

TEST(FlaxDtype, EmbedFloat16LooksUpRoundedRowsAndAttends)
{
	REQUIRE_MODULE_F16();
	struct M : ModuleT<M> {
		M() : ModuleT("M") {}
		Value call(const Value& idx) override { return make_child<Embed>(10, 6, Initializer{}, float16)(idx); }
	} m;
	const Array idx = Array::i32({2, 2}, {0, 7, 9, 3});
	const Variables v = m.init(PRNGKey(0), {idx});
	const Tensor y = m.apply(v, {idx});
	const Tensor table = rounded(v.at("params/Embed_0/embedding").value);
	const int ids[] = {0, 7, 9, 3};
	for (int i = 0; i < 4; i++)
		for (int f = 0; f < 6; f++)
			EXPECT_EQ(y.data[i * 6 + f], table.data[ids[i] * 6 + f]);

	struct A : ModuleT<A> {
		A() : ModuleT("A") {}
		Value call(const Value& q) override { return make_child<Embed>(10, 6, Initializer{}, float16).attend(q); }
	} a;
	const Tensor q = iota({3, 6});
	const Variables av = a.init(PRNGKey(0), {q});
	const Tensor at = a.apply(av, {q});
	const Tensor t2 = rounded(av.at("params/Embed_0/embedding").value);
	const Tensor qr = rounded(q);
	Tensor want({3, 10});
	for (int r = 0; r < 3; r++)
		for (int n = 0; n < 10; n++) {
			double acc = 0;
			for (int f = 0; f < 6; f++)
				acc += double(qr.data[r * 6 + f]) * t2.data[n * 6 + f];
			want.data[r * 10 + n] = float(acc);
		}
	expect_f16_near(at, rounded(want));
}

TEST(FlaxDtype, Float16InputsRoundToNearestEvenOnUpload)
{
	REQUIRE_MODULE_F16();
	auto m = fn([](Module&, const Value& x) { return relu(x); });
	// 1 + 2^-11 is a tie (rounds to 1), 1 + 3 * 2^-11 rounds up, 70000
	// overflows to infinity
	const Array x({4}, {1.0f + std::ldexp(1.0f, -11), 1.0f + 3 * std::ldexp(1.0f, -11), 70000.0f, -3.0f},
		      float16);
	const Tensor y = m.apply(m.init(PRNGKey(0), {x}), {x});
	EXPECT_EQ(y.data[0], 1.0f);
	EXPECT_EQ(y.data[1], 1.0f + std::ldexp(1.0f, -9));
	EXPECT_EQ(y.data[2], INFINITY);
	EXPECT_EQ(y.data[3], 0.0f);
}

TEST(FlaxDtype, BadDtypesAreRefusedNamingTheLayer)
{
	DenseOptions o;
	o.dtype = int32;
	EXPECT_THAT(error_of<flaxdrm::Error>([&] { Dense d(3, o); }),
		    AllOf(HasSubstr("Dense"), HasSubstr("dtype must be float32, float16 or None"), HasSubstr("int32")));
	NormOptions n;
	n.dtype = 77;
	EXPECT_THAT(error_of<flaxdrm::Error>([&] { LayerNorm l(n); }), HasSubstr("LayerNorm: dtype"));
	auto m = fn([](Module&, const Value& x) { return relu(x); });
	const Array bad({2}, {1.0f, 2.0f}, FLAXDRM_DTYPE_BF16);
	EXPECT_THAT(error_of<flaxdrm::Error>([&] { m.apply(m.init(PRNGKey(0), {Tensor({2})}), {bad}); }),
		    HasSubstr("input 0: inputs are float32, float16 or int32, got bfloat16"));
}

TEST(FlaxDtype, ConvFloat16MatchesTheRoundedReference)
{
	REQUIRE_MODULE_F16();
	auto m = fn([](Module& self, const Value& x) {
		ConvOptions o;
		o.dtype = float16;
		return self.make_child<Conv>(5, Shape{3, 3}, o)(x);
	});
	const Tensor x = iota({2, 6, 7, 3}, 0.3f, -1.4f);
	Variables v = m.init(PRNGKey(2), {x});
	Tensor b = v.at("params/Conv_0/bias").value;
	for (std::size_t i = 0; i < b.data.size(); i++)
		b.data[i] = 0.1f * float(i) - 0.2f;
	v.at("params/Conv_0/bias").value = b;
	const Tensor y = m.apply(v, {x});
	ASSERT_EQ(y.shape, (Shape{2, 6, 7, 5}));
	EXPECT_EQ(ops_of(m)[ops_of(m).size() - 2], (P{FLAXDRM_OP_CONV, F16}));
	// SAME 3x3, stride 1: one row and column of zeros on each side
	const Tensor xr = rounded(x), w = rounded(v.at("params/Conv_0/kernel").value), br = rounded(b);
	Tensor want({2, 6, 7, 5});
	for (int n = 0; n < 2; n++)
		for (int i = 0; i < 6; i++)
			for (int j = 0; j < 7; j++)
				for (int f = 0; f < 5; f++) {
					double acc = br.data[f];
					for (int di = 0; di < 3; di++)
						for (int dj = 0; dj < 3; dj++) {
							const int si = i + di - 1, sj = j + dj - 1;
							if (si < 0 || si >= 6 || sj < 0 || sj >= 7)
								continue;
							for (int c = 0; c < 3; c++)
								acc += double(xr.data[((n * 6 + si) * 7 + sj) * 3 + c]) *
								       w.data[((di * 3 + dj) * 3 + c) * 5 + f];
						}
					want.data[((n * 6 + i) * 7 + j) * 5 + f] = float(acc);
				}
	expect_f16_near(y, rounded(want));
}

TEST(FlaxDtype, AttentionFloat16ProjectsAndAttendsInF16)
{
	REQUIRE_MODULE_F16();
	const Tensor x = iota({2, 7, 16}, 0.17f, -1.0f);
	AttentionOptions o16;
	o16.dtype = float16;
	MultiHeadDotProductAttention m32(4), m16(4, o16);
	const Variables v = m32.init(PRNGKey(5), {x});
	const Tensor want = m32.apply(v, {x});
	const Tensor got = m16.apply(v, {x});
	ASSERT_EQ(got.shape, want.shape);
	// the projections, the attention and the output projection in f16
	std::size_t f16_dense = 0, f16_attention = 0;
	for (const auto& [opcode, dtype] : ops_of(m16)) {
		f16_dense += opcode == FLAXDRM_OP_DENSE && dtype == F16;
		f16_attention += opcode == FLAXDRM_OP_ATTENTION && dtype == F16;
	}
	EXPECT_EQ(f16_dense, 4u);
	EXPECT_EQ(f16_attention, 1u);
	// f16 roundings of inputs, weights and each stage: within a few f16
	// ulps of the f32 module's result, relative to its largest value
	double peak = 0;
	for (float w : want.data)
		peak = std::max(peak, double(std::fabs(w)));
	for (std::size_t i = 0; i < got.data.size(); i++) {
		EXPECT_EQ(got.data[i], round_f16({got.data[i]})[0]) << "not an f16 value at " << i;
		ASSERT_NEAR(got.data[i], want.data[i], 8 * std::ldexp(peak, -11)) << "at " << i;
	}
}
