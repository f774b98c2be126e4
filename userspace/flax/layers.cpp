// Layers (flax.linen, 0.12 defaults).
#include <cmath>
#include <cstring>
#include <numeric>

#include "flaxdrm/conv_padding.hpp"
#include "flaxdrm/flax/layers.hpp"

namespace flaxdrm::flax {
namespace {

uint32_t fbits(double d)
{
	float f = float(d);
	uint32_t u;
	std::memcpy(&u, &f, 4);
	return u;
}

int64_t prod(const Shape& s, std::size_t from = 0, std::size_t to = SIZE_MAX)
{
	int64_t p = 1;
	for (std::size_t i = from; i < s.size() && i < to; i++)
		p *= s[i];
	return p;
}

// an initializer that runs on the flattened (rows, cols) shape
Initializer flat_init(Initializer inner, int64_t rows)
{
	return [inner = std::move(inner), rows](Key k, const Shape& s) {
		const int64_t total = prod(s);
		Tensor t = inner(k, rows > 0 ? Shape{rows, total / rows} : Shape{total});
		t.shape = s;
		return t;
	};
}

Shape or_ones(const Shape& s, std::size_t n)
{
	return s.empty() ? Shape(n, 1) : s;
}

std::string describe(const Module& m)
{
	return m.class_name() + " " + m.path_str();
}

void need_feature_axis(const Module& m, const Value& x)
{
	if (x.rank() < 1)
		throw ShapeError(describe(m) + ": input of shape " + shape_str(x.shape) + " has no feature axis");
}

// The layer's dtype attribute, as Flax's repr shows it ("float16", "None").
std::string dtype_attr(const std::string& layer, uint32_t dtype)
{
	if (dtype != kNoDtype && dtype != float32 && dtype != float16)
		throw Error(layer + ": dtype must be float32, float16 or None (kNoDtype), got " + dtype_name(dtype));
	return dtype_name(dtype);
}

uint32_t layer_dtype(const Module& m)
{
	const std::string& d = m.attr<std::string>("dtype");
	return d == "float16" ? float16 : d == "float32" ? float32 : kNoDtype;
}

// The dtype a layer computes in: its dtype, or for None the promotion of
// its inputs' and parameters' dtypes (flax.linen.dtypes.promote_dtype).
uint32_t compute_dtype(const Module& m, std::initializer_list<uint32_t> operands)
{
	if (const uint32_t d = layer_dtype(m); d != kNoDtype)
		return d;
	uint32_t r = *operands.begin();
	for (uint32_t d : operands)
		r = promote_types(r, d);
	return r;
}

std::vector<Value> cast_all(std::vector<Value> vs, uint32_t dtype)
{
	for (Value& v : vs)
		v = astype(v, dtype);
	return vs;
}

} // namespace

// ------------------------------------------------------------------ Dense
Dense::Dense(int64_t features, DenseOptions o) : ModuleT("Dense")
{
	declare_attr("features", features);
	declare_attr("use_bias", o.use_bias);
	declare_attr("kernel_init", o.kernel_init);
	declare_attr("bias_init", o.bias_init);
	declare_attr("dtype", dtype_attr("Dense", o.dtype));
}

Value Dense::call(const Value& x)
{
	need_feature_axis(*this, x);
	const int64_t f = features();
	Value k = param("kernel", attr<Initializer>("kernel_init"), {x.dim(-1), f});
	std::vector<Value> ins = {x, k};
	if (use_bias())
		ins.push_back(param("bias", attr<Initializer>("bias_init"), {f}));
	Shape out = x.shape;
	out.back() = f;
	const uint32_t dt = compute_dtype(*this, {x.dtype, float32});
	return trace().op(FLAXDRM_OP_DENSE, scope_id(), cast_all(ins, dt), out, {1}, dt);
}

// ----------------------------------------------------------- DenseGeneral
DenseGeneral::DenseGeneral(std::vector<int64_t> features, std::vector<int64_t> axis, DenseOptions o)
	: ModuleT("DenseGeneral")
{
	declare_attr("features", std::move(features));
	declare_attr("axis", std::move(axis));
	declare_attr("use_bias", o.use_bias);
	declare_attr("kernel_init", o.kernel_init);
	declare_attr("bias_init", o.bias_init);
	declare_attr("dtype", dtype_attr("DenseGeneral", o.dtype));
}

Value DenseGeneral::call(const Value& x)
{
	const auto& features = attr<std::vector<int64_t>>("features");
	std::vector<int> axes;
	for (int64_t a : attr<std::vector<int64_t>>("axis")) {
		int64_t n = a < 0 ? a + int64_t(x.rank()) : a;
		if (n < 0 || n >= int64_t(x.rank()))
			throw ShapeError(describe(*this) + ": axis " + std::to_string(a) + " out of range for input " +
					 shape_str(x.shape));
		axes.push_back(int(n));
	}
	// move the contracted axes to the end, in the given order
	bool trailing = true;
	for (std::size_t i = 0; i < axes.size(); i++)
		trailing &= axes[i] == int(x.rank() - axes.size() + i);
	Value in = x;
	if (!trailing) {
		std::vector<int> perm;
		for (int i = 0; i < int(x.rank()); i++)
			if (std::find(axes.begin(), axes.end(), i) == axes.end())
				perm.push_back(i);
		for (int a : axes)
			perm.push_back(a);
		in = transpose(x, perm);
	}
	Shape kshape;
	for (int a : axes)
		kshape.push_back(x.shape[a]);
	const int64_t fan_in = prod(kshape);
	for (int64_t f : features)
		kshape.push_back(f);
	Value k = param("kernel", flat_init(attr<Initializer>("kernel_init"), fan_in), kshape);
	std::vector<Value> ins = {in, k};
	if (attr<bool>("use_bias"))
		ins.push_back(param("bias", flat_init(attr<Initializer>("bias_init"), 0), Shape(features)));
	Shape out(in.shape.begin(), in.shape.end() - axes.size());
	out.insert(out.end(), features.begin(), features.end());
	const uint32_t dt = compute_dtype(*this, {x.dtype, float32});
	return trace().op(FLAXDRM_OP_DENSE, scope_id(), cast_all(ins, dt), out, {uint32_t(axes.size())}, dt);
}

// ------------------------------------------------------------------- Conv
namespace {

void declare_conv(Module& m, std::function<void(const std::string&, AttrValue)> decl, int64_t features,
		  const Shape& kernel_size, const ConvOptions& o)
{
	decl("features", features);
	decl("kernel_size", kernel_size);
	decl("strides", or_ones(o.strides, kernel_size.size()));
	if (o.explicit_padding.empty())
		decl("padding", o.padding);
	else
		decl("padding", o.explicit_padding);
	decl("input_dilation", or_ones(o.input_dilation, kernel_size.size()));
	decl("kernel_dilation", or_ones(o.kernel_dilation, kernel_size.size()));
	decl("feature_group_count", o.feature_group_count);
	decl("use_bias", o.use_bias);
	decl("kernel_init", o.kernel_init);
	decl("bias_init", o.bias_init);
	decl("dtype", dtype_attr(m.class_name(), o.dtype));
}

struct ConvPlan {
	Value x4;                   // NHWC input
	Shape in_dil, k_dil, strides; // 2 entries each (h, w)
	std::vector<Padding> pads;  // 2 entries
	uint32_t mode = FLAXDRM_PAD_ZERO;
	bool one_d = false, unbatched = false;
	Shape batch_dims;           // original leading dims
};

Value run_conv(Module& m, const Value& x, bool transposed)
{
	const auto& ks = m.attr<std::vector<int64_t>>("kernel_size");
	const std::size_t nsp = ks.size();
	if (nsp != 1 && nsp != 2)
		throw ShapeError(describe(m) + ": only 1-D and 2-D kernels are supported, got kernel_size " +
				 shape_str(ks));
	if (x.rank() != nsp + 1 && x.rank() != nsp + 2)
		throw ShapeError(describe(m) + ": input of shape " + shape_str(x.shape) + " for a " +
				 std::to_string(nsp) + "-D kernel (expected (batch, spatial..., features))");
	const int64_t features = m.attr<int64_t>("features");
	const int64_t groups = transposed ? 1 : m.attr<int64_t>("feature_group_count");
	const Shape strides = m.attr<std::vector<int64_t>>("strides");
	const Shape in_dil = m.attr<std::vector<int64_t>>("input_dilation");
	const Shape k_dil = m.attr<std::vector<int64_t>>("kernel_dilation");
	const AttrValue& padding = m.attr_value("padding");

	Value xin = x;
	const bool unbatched = x.rank() == nsp + 1;
	if (unbatched) {
		Shape s = x.shape;
		s.insert(s.begin(), 1);
		xin = reshape(x, s);
	}
	const int64_t cin = xin.dim(-1);
	if (cin % groups)
		throw ShapeError(describe(m) + ": " + std::to_string(cin) + " input features are not divisible by " +
				 "feature_group_count " + std::to_string(groups));
	// kernel
	Shape kshape = ks;
	kshape.push_back(cin / groups);
	kshape.push_back(features);
	Value kernel = m.param("kernel", m.attr<Initializer>("kernel_init"), kshape);
	// padding per spatial axis
	std::vector<Padding> pads;
	uint32_t mode = FLAXDRM_PAD_ZERO;
	for (std::size_t i = 0; i < nsp; i++) {
		const uint32_t in = uint32_t(xin.shape[1 + i]), k = uint32_t(ks[i]), s = uint32_t(strides[i]),
			       d = uint32_t(k_dil[i]);
		if (const auto* pairs = std::get_if<PadPairs>(&padding)) {
			if (pairs->size() != nsp)
				throw ShapeError(describe(m) + ": " + std::to_string(pairs->size()) +
						 " padding pairs for " + std::to_string(nsp) + " spatial axes");
			pads.push_back({uint32_t((*pairs)[i].first), uint32_t((*pairs)[i].second)});
			continue;
		}
		const std::string& p = std::get<std::string>(padding);
		if (transposed) {
			if (p != "SAME" && p != "VALID")
				throw ShapeError(describe(m) + ": ConvTranspose padding \"" + p +
						 "\" is not supported (SAME, VALID or pairs)");
			pads.push_back(conv_transpose_padding(k, s, d, p == "SAME"));
		} else if (p == "SAME" || p == "CIRCULAR") {
			pads.push_back(same_padding(in, k, s, d));
			if (p == "CIRCULAR")
				mode = FLAXDRM_PAD_CIRCULAR;
		} else if (p == "VALID") {
			pads.push_back({0, 0});
		} else if (p == "CAUSAL") {
			if (nsp != 1)
				throw ShapeError(describe(m) + ": CAUSAL padding is for 1-D convolutions only");
			pads.push_back(causal_padding(k, d));
		} else {
			throw ShapeError(describe(m) + ": unknown padding \"" + p +
					 "\" (SAME, VALID, CIRCULAR, CAUSAL or pairs)");
		}
	}
	// to NHWC with an HWIO kernel
	Shape st = transposed ? Shape(nsp, 1) : strides;
	Shape idil = transposed ? strides : in_dil;
	Shape kd = k_dil;
	Value x4 = xin, k4 = kernel;
	if (nsp == 1) {
		x4 = reshape(xin, {xin.shape[0], 1, xin.shape[1], xin.shape[2]});
		k4 = reshape(kernel, {1, kshape[0], kshape[1], kshape[2]});
		st.insert(st.begin(), 1);
		idil.insert(idil.begin(), 1);
		kd.insert(kd.begin(), 1);
		pads.insert(pads.begin(), Padding{0, 0});
	}
	Shape out = {x4.shape[0], 0, 0, features};
	for (int i = 0; i < 2; i++) {
		out[1 + i] = int64_t(conv_output_size(uint32_t(x4.shape[1 + i]), uint32_t(idil[i]), pads[i],
						      uint32_t(k4.shape[i]), uint32_t(kd[i]), uint32_t(st[i])));
		if (!out[1 + i])
			throw ShapeError(describe(m) + ": kernel " + shape_str(kshape) + " does not fit input " +
					 shape_str(x.shape));
	}
	std::vector<Value> ins = {x4, k4};
	if (m.attr<bool>("use_bias"))
		ins.push_back(m.param("bias", m.attr<Initializer>("bias_init"), {features}));
	std::vector<uint32_t> attrs = {uint32_t(st[0]),	 uint32_t(st[1]),	  uint32_t(idil[0]),
				       uint32_t(idil[1]), uint32_t(kd[0]),	  uint32_t(kd[1]),
				       uint32_t(groups),  mode,		  pads[0].before,
				       pads[0].after,	 pads[1].before, pads[1].after};
	const uint32_t dt = compute_dtype(m, {x.dtype, float32});
	Value y = m.trace().op(FLAXDRM_OP_CONV, m.scope_id(), cast_all(ins, dt), out, attrs, dt);
	if (nsp == 1)
		y = reshape(y, {out[0], out[2], out[3]});
	if (unbatched) {
		Shape s(y.shape.begin() + 1, y.shape.end());
		y = reshape(y, s);
	}
	return y;
}

} // namespace

Conv::Conv(int64_t features, Shape kernel_size, ConvOptions o) : ModuleT("Conv")
{
	declare_conv(*this, [this](const std::string& n, AttrValue v) { declare_attr(n, std::move(v)); }, features,
		     kernel_size, o);
}

Value Conv::call(const Value& x)
{
	return run_conv(*this, x, false);
}

ConvTranspose::ConvTranspose(int64_t features, Shape kernel_size, ConvOptions o) : ModuleT("ConvTranspose")
{
	declare_conv(*this, [this](const std::string& n, AttrValue v) { declare_attr(n, std::move(v)); }, features,
		     kernel_size, o);
}

Value ConvTranspose::call(const Value& x)
{
	return run_conv(*this, x, true);
}

// ------------------------------------------------------------------ norms
namespace {
void declare_norm(const std::string& layer, std::function<void(const std::string&, AttrValue)> decl,
		  const NormOptions& o)
{
	decl("epsilon", o.epsilon);
	decl("use_bias", o.use_bias);
	decl("use_scale", o.use_scale);
	decl("scale_init", o.scale_init);
	decl("bias_init", o.bias_init);
	decl("dtype", dtype_attr(layer, o.dtype));
}

// the optional scale (and, with has_bias, bias) of a norm over c features:
// appended to ins, their FLAXDRM_NORM_* flags returned
uint32_t norm_affine(Module& m, int64_t c, bool has_bias, std::vector<Value>& ins)
{
	uint32_t flags = 0;
	if (m.attr<bool>("use_scale")) {
		ins.push_back(m.param("scale", m.attr<Initializer>("scale_init"), {c}));
		flags |= FLAXDRM_NORM_SCALE;
	}
	if (has_bias && m.attr<bool>("use_bias")) {
		ins.push_back(m.param("bias", m.attr<Initializer>("bias_init"), {c}));
		flags |= FLAXDRM_NORM_BIAS;
	}
	return flags;
}

// Flax normalises in float32 (statistics, scale and bias all float32) and
// casts the result to dtype, or for None to the promotion of x's and the
// parameters' dtypes; a float16 x converts to float32 exactly.
uint32_t norm_result_dtype(const Module& m, const Value& x, uint32_t flags)
{
	return compute_dtype(m, {x.dtype, flags & (FLAXDRM_NORM_SCALE | FLAXDRM_NORM_BIAS) ? float32 : x.dtype});
}

Value run_norm(Module& m, const Value& x, uint32_t opcode, uint32_t attr1, bool has_bias)
{
	need_feature_axis(m, x);
	const int64_t c = x.dim(-1);
	std::vector<Value> ins = {astype(x, float32)};
	const uint32_t flags = norm_affine(m, c, has_bias, ins);
	Value y = m.trace().op(opcode, m.scope_id(), ins, x.shape, {fbits(m.attr<double>("epsilon")), attr1, flags},
			       float32);
	return astype(y, norm_result_dtype(m, x, flags));
}
} // namespace

LayerNorm::LayerNorm(NormOptions o) : ModuleT("LayerNorm")
{
	declare_norm("LayerNorm", [this](const std::string& n, AttrValue v) { declare_attr(n, std::move(v)); }, o);
}

Value LayerNorm::call(const Value& x)
{
	return run_norm(*this, x, FLAXDRM_OP_LAYER_NORM, 1, true);
}

RMSNorm::RMSNorm(NormOptions o) : ModuleT("RMSNorm")
{
	declare_norm("RMSNorm", [this](const std::string& n, AttrValue v) { declare_attr(n, std::move(v)); }, o);
}

Value RMSNorm::call(const Value& x)
{
	return run_norm(*this, x, FLAXDRM_OP_RMS_NORM, 1, false);
}

GroupNorm::GroupNorm(int64_t num_groups, NormOptions o) : ModuleT("GroupNorm")
{
	declare_attr("num_groups", num_groups);
	declare_norm("GroupNorm", [this](const std::string& n, AttrValue v) { declare_attr(n, std::move(v)); }, o);
}

Value GroupNorm::call(const Value& x)
{
	const int64_t g = attr<int64_t>("num_groups");
	if (x.rank() < 2 || x.dim(-1) % g)
		throw ShapeError(describe(*this) + ": " + std::to_string(x.rank() ? x.dim(-1) : 0) +
				 " features are not divisible by num_groups " + std::to_string(g) + " (input " +
				 shape_str(x.shape) + ")");
	return run_norm(*this, x, FLAXDRM_OP_GROUP_NORM, uint32_t(g), true);
}

BatchNorm::BatchNorm(BatchNormOptions o) : ModuleT("BatchNorm")
{
	declare_attr("use_running_average", o.use_running_average);
	declare_attr("momentum", o.momentum);
	declare_attr("epsilon", o.epsilon);
	declare_attr("use_bias", o.use_bias);
	declare_attr("use_scale", o.use_scale);
	declare_attr("scale_init", o.scale_init);
	declare_attr("bias_init", o.bias_init);
	declare_attr("dtype", dtype_attr("BatchNorm", o.dtype));
}

Value BatchNorm::call(const Value& x)
{
	need_feature_axis(*this, x);
	const int64_t c = x.dim(-1);
	Value mean = variable("batch_stats", "mean", init::zeros(), {c});
	Value var = variable("batch_stats", "var", init::ones(), {c});
	// float32 throughout, as run_norm; the running statistics stay float32
	std::vector<Value> ins = {astype(x, float32), mean, var};
	uint32_t flags = norm_affine(*this, c, true, ins);
	const uint32_t result = norm_result_dtype(*this, x, flags);
	const uint32_t eps = fbits(attr<double>("epsilon")), mom = fbits(attr<double>("momentum"));
	if (attr<bool>("use_running_average"))
		return astype(trace().op(FLAXDRM_OP_BATCH_NORM, scope_id(), ins, x.shape, {eps, 0, flags}), result);
	flags |= FLAXDRM_NORM_TRAINING;
	Trace& t = trace();
	if (is_initializing()) {
		// normalise with the batch statistics, never update under init
		const uint32_t nm = t.temp({c}), nv = t.temp({c});
		return astype(t.op_writing(FLAXDRM_OP_BATCH_NORM, scope_id(), ins, x.shape, {eps, mom, flags}, {nm, nv}),
			      result);
	}
	const uint32_t tm = write_target("batch_stats", "mean");
	const uint32_t tv = write_target("batch_stats", "var");
	return astype(t.op_writing(FLAXDRM_OP_BATCH_NORM, scope_id(), ins, x.shape, {eps, mom, flags}, {tm, tv}),
		      result);
}

// ------------------------------------------------------------------ Embed
Embed::Embed(int64_t num_embeddings, int64_t features, Initializer embedding_init, uint32_t dtype)
	: ModuleT("Embed")
{
	declare_attr("num_embeddings", num_embeddings);
	declare_attr("features", features);
	declare_attr("embedding_init",
		     embedding_init ? embedding_init : init::variance_scaling(1.0, "fan_in", "normal", -2, 0));
	declare_attr("dtype", dtype_attr("Embed", dtype));
}

Value Embed::call(const Value& x)
{
	if (x.dtype != FLAXDRM_DTYPE_I32)
		throw ShapeError(describe(*this) + ": Input type must be an integer (int32) array");
	Value table = param("embedding", attr<Initializer>("embedding_init"),
			    {attr<int64_t>("num_embeddings"), attr<int64_t>("features")});
	Shape out = x.shape;
	out.push_back(attr<int64_t>("features"));
	// promote_dtype(embedding, dtype=dtype, inexact=False): the indices
	// do not take part
	const uint32_t dt = compute_dtype(*this, {float32});
	return trace().op(FLAXDRM_OP_EMBED, scope_id(), {x, astype(table, dt)}, out, {}, dt);
}

Value Embed::attend(const Value& q)
{
	return call_method("attend", {q});
}

Value Embed::dispatch(const std::string& method, const std::vector<Value>& xs)
{
	if (method != "attend" || xs.size() != 1)
		return Module::dispatch(method, xs);
	const Value& q = xs[0];
	Value table = param("embedding", attr<Initializer>("embedding_init"),
			    {attr<int64_t>("num_embeddings"), attr<int64_t>("features")});
	if (q.rank() < 1 || q.dim(-1) != attr<int64_t>("features"))
		throw ShapeError(describe(*this) + ": attend query of shape " + shape_str(q.shape) + " for " +
				 std::to_string(attr<int64_t>("features")) + " features");
	Shape out = q.shape;
	out.back() = attr<int64_t>("num_embeddings");
	const uint32_t dt = compute_dtype(*this, {q.dtype, float32});
	return trace().op(FLAXDRM_OP_ATTEND, scope_id(), {astype(q, dt), astype(table, dt)}, out, {}, dt);
}

// -------------------------------------------------------------- attention
MultiHeadDotProductAttention::MultiHeadDotProductAttention(int64_t num_heads, AttentionOptions o)
	: ModuleT("MultiHeadDotProductAttention")
{
	declare_attr("num_heads", num_heads);
	declare_attr("qkv_features", o.qkv_features);
	declare_attr("out_features", o.out_features);
	declare_attr("use_bias", o.use_bias);
	declare_attr("causal", o.causal);
	declare_attr("dropout_rate", o.dropout_rate);
	declare_attr("deterministic", o.deterministic);
	declare_attr("kernel_init", o.kernel_init);
	declare_attr("bias_init", o.bias_init);
	declare_attr("dtype", dtype_attr("MultiHeadDotProductAttention", o.dtype));
}

Value MultiHeadDotProductAttention::call_n(const std::vector<Value>& xs)
{
	if (xs.empty() || xs.size() > 4)
		throw Error(describe(*this) + " takes inputs_q[, inputs_k[, inputs_v[, mask]]]");
	Value q = xs[0];
	Value k = xs.size() > 1 ? xs[1] : q;
	Value v = xs.size() > 2 ? xs[2] : k;
	const int64_t heads = attr<int64_t>("num_heads");
	const int64_t qkv = attr<int64_t>("qkv_features") ? attr<int64_t>("qkv_features") : q.dim(-1);
	const int64_t outf = attr<int64_t>("out_features") ? attr<int64_t>("out_features") : q.dim(-1);
	if (qkv % heads)
		throw ShapeError(describe(*this) + ": Memory dimension (" + std::to_string(qkv) +
				 ") must be divisible by number of heads (" + std::to_string(heads) + ").");
	if (attr<double>("dropout_rate") > 0 && !attr<bool>("deterministic"))
		throw Error(describe(*this) + ": attention dropout is not supported (use deterministic=true)");
	const int64_t hd = qkv / heads;
	auto batch3 = [&](const Value& x) {
		if (x.rank() == 3)
			return x;
		if (x.rank() == 2)
			return reshape(x, {1, x.shape[0], x.shape[1]});
		throw ShapeError(describe(*this) + ": inputs of shape " + shape_str(x.shape) +
				 " (expected (batch, length, features))");
	};
	const bool unbatched = q.rank() == 2;
	q = batch3(q);
	k = batch3(k);
	v = batch3(v);
	DenseOptions dense{attr<bool>("use_bias"), attr<Initializer>("kernel_init"), attr<Initializer>("bias_init"),
			   layer_dtype(*this)};
	Value qh = child<DenseGeneral>("query", std::vector<int64_t>{heads, hd}, std::vector<int64_t>{-1}, dense)(q);
	Value kh = child<DenseGeneral>("key", std::vector<int64_t>{heads, hd}, std::vector<int64_t>{-1}, dense)(k);
	Value vh = child<DenseGeneral>("value", std::vector<int64_t>{heads, hd}, std::vector<int64_t>{-1}, dense)(v);
	std::vector<Value> ins = {qh, kh, vh};
	uint32_t flags = attr<bool>("causal") ? FLAXDRM_ATTN_CAUSAL : 0;
	if (xs.size() > 3) {
		if (xs[3].dtype != FLAXDRM_DTYPE_I32)
			throw ShapeError(describe(*this) + ": the mask must be an int32 array (non-zero keeps)");
		ins.push_back(xs[3]);
		flags |= FLAXDRM_ATTN_MASK;
	}
	Shape out = {qh.shape[0], qh.shape[1], heads, hd};
	// q, k and v in one dtype (the mask stays int32)
	const uint32_t dt = promote_types(promote_types(qh.dtype, kh.dtype), vh.dtype);
	for (std::size_t i = 0; i < 3; i++)
		ins[i] = astype(ins[i], dt);
	Value a = trace().op(FLAXDRM_OP_ATTENTION, 0, ins, out, {flags, fbits(1.0 / std::sqrt(double(hd)))}, dt);
	Value y = child<DenseGeneral>("out", std::vector<int64_t>{outf}, std::vector<int64_t>{-2, -1}, dense)(a);
	if (unbatched)
		y = reshape(y, {y.shape[1], y.shape[2]});
	return y;
}

// ---------------------------------------------------------------- Dropout
Dropout::Dropout(double rate, bool deterministic) : ModuleT("Dropout")
{
	declare_attr("rate", rate);
	declare_attr("deterministic", deterministic);
}

Value Dropout::call(const Value& x)
{
	const double rate = attr<double>("rate");
	if (rate == 0.0 || attr<bool>("deterministic"))
		return x;
	if (rate < 0.0 || rate >= 1.0)
		throw Error(describe(*this) + ": rate " + std::to_string(rate) + " outside [0, 1)");
	Key k = make_rng("dropout");
	return trace().op(FLAXDRM_OP_DROPOUT, 0, {x}, x.shape, {fbits(rate), k.k1, k.k0}, x.dtype);
}

// ------------------------------------------------------------- Sequential
Sequential::Sequential(std::vector<Layer> layers) : ModuleT("Sequential"), layers_(std::move(layers)) {}

Sequential::Sequential(const Sequential& o) : ModuleT(o), layers_(o.layers_) {}

void Sequential::setup()
{
	bound_.assign(layers_.size(), nullptr);
	for (std::size_t i = 0; i < layers_.size(); i++)
		if (auto* m = std::get_if<std::shared_ptr<Module>>(&layers_[i]))
			bound_[i] = &adopt((*m)->clone(), "layers_" + std::to_string(i));
}

Value Sequential::call_n(const std::vector<Value>& xs)
{
	if (layers_.empty())
		throw Error("Empty Sequential module " + path_str());
	Value y;
	for (std::size_t i = 0; i < layers_.size(); i++) {
		if (bound_[i])
			y = i == 0 ? (*bound_[i])(xs) : (*bound_[i])(y);
		else {
			if (i == 0 && xs.size() != 1)
				throw Error("Sequential " + path_str() + ": a function first layer takes one input");
			y = std::get<std::function<Value(const Value&)>>(layers_[i])(i == 0 ? xs[0] : y);
		}
	}
	return y;
}

} // namespace flaxdrm::flax
