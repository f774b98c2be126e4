// Lowering a model to the UAPI program format (see lowering.hpp).
#include "flaxdrm/lowering.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <initializer_list>
#include <map>

#include "flaxdrm/conv_padding.hpp"
#include "flaxdrm/error.hpp"

namespace flaxdrm {
namespace {

uint32_t f32_bits(double v)
{
	return std::bit_cast<uint32_t>(static_cast<float>(v));
}

int64_t product(const Shape& s, std::size_t from = 0, std::size_t to = SIZE_MAX)
{
	int64_t n = 1;
	for (std::size_t i = from; i < std::min(to, s.size()); i++)
		n *= s[i];
	return n;
}

constexpr uint32_t F32 = FLAXDRM_DTYPE_F32, F16 = FLAXDRM_DTYPE_F16;

// jnp.promote_types over the program's dtypes: two floats of different
// widths give float32; int32 indices with a float give the float.
uint32_t promote(uint32_t a, uint32_t b)
{
	if (a == b)
		return a;
	const auto is_float = [](uint32_t d) { return d == F32 || d == F16; };
	if (is_float(a) && is_float(b))
		return F32;
	return is_float(a) ? a : b;
}

class Lowerer {
public:
	Lowerer(const Model& model, std::span<const uint32_t> handles, Program& p)
		: model_(model), handles_(handles), p_(p) {}

	// Returns the tensor holding m's output for input tensor `in`.
	uint32_t lower(const Module& m, uint32_t in, int depth = 0)
	{
		std::size_t row = p_.layers.size();
		p_.layers.push_back({&m, depth, shape_of(in), {}});
		uint32_t out = lower_module(m, in, depth);
		p_.layers[row].output = shape_of(out);
		return out;
	}

	// x.astype(dtype) as an ASTYPE op; no op when t already has it.
	uint32_t astype(const Module& m, uint32_t t, uint32_t dtype)
	{
		if (dtype_of(t) == dtype)
			return t;
		return op(m, FLAXDRM_OP_ASTYPE, 0, {t}, shape_of(t), {}, dtype);
	}

private:
	uint32_t lower_module(const Module& m, uint32_t in, int depth)
	{
		const Shape x = shape_of(in);
		switch (m.kind) {
		case ModuleKind::Compact:
		case ModuleKind::Sequential: {
			uint32_t t = in;
			for (const Module& c : m.layers)
				t = lower(c, t, depth + 1);
			if (!m.residual)
				return t;
			if (shape_of(t) != x)
				fail(m, "the residual branch maps " + shape_str(x) + " to " + shape_str(shape_of(t)) +
						": x + layers(x) needs the same shape");
			// x + y promotes: float32 + float16 is float32
			const uint32_t dt = promote(dtype_of(in), dtype_of(t));
			return op(m, FLAXDRM_OP_ADD, 0, {astype(m, in, dt), astype(m, t, dt)}, x, {}, dt);
		}
		case ModuleKind::Dense: {
			need_rank(m, x, 1);
			uint32_t h = handle_of(m);
			std::vector<uint32_t> ins = {in, variable(m, h, "params", "kernel", {x.back(), m.features})};
			if (m.use_bias)
				ins.push_back(variable(m, h, "params", "bias", {m.features}));
			Shape y = x;
			y.back() = m.features;
			const uint32_t dt = compute_dtype(m, {dtype_of(in), F32});
			return op(m, FLAXDRM_OP_DENSE, h, cast_all(m, ins, dt), y, {1}, dt);
		}
		case ModuleKind::DenseGeneral:
			return dense_general(m, in, m.features_tuple, m.axis);
		case ModuleKind::Conv:
		case ModuleKind::ConvTranspose:
			return conv(m, in);
		case ModuleKind::LayerNorm:
		case ModuleKind::RMSNorm: {
			need_rank(m, x, static_cast<std::size_t>(m.reduction_axes));
			uint32_t h = handle_of(m);
			std::vector<uint32_t> ins = {astype(m, in, F32)};
			uint32_t flags = norm_affine(m, h, x.back(), ins);
			uint32_t y = op(m, m.kind == ModuleKind::LayerNorm ? FLAXDRM_OP_LAYER_NORM : FLAXDRM_OP_RMS_NORM, h,
					ins, x, {f32_bits(m.epsilon), static_cast<uint32_t>(m.reduction_axes), flags}, F32);
			return astype(m, y, norm_result_dtype(m, in, flags));
		}
		case ModuleKind::GroupNorm: {
			need_rank(m, x, 2);
			int64_t c = x.back();
			int64_t groups = m.num_groups ? m.num_groups : (m.group_size ? c / m.group_size : 0);
			if (m.group_size && c % m.group_size)
				fail(m, "group_size " + std::to_string(m.group_size) + " does not divide the " +
						std::to_string(c) + " channels of input " + shape_str(x));
			if (!groups || c % groups)
				fail(m, "num_groups " + std::to_string(groups) + " does not divide the " + std::to_string(c) +
						" channels of input " + shape_str(x));
			uint32_t h = handle_of(m);
			std::vector<uint32_t> ins = {astype(m, in, F32)};
			uint32_t flags = norm_affine(m, h, c, ins);
			uint32_t y = op(m, FLAXDRM_OP_GROUP_NORM, h, ins, x,
					{f32_bits(m.epsilon), static_cast<uint32_t>(groups), flags}, F32);
			return astype(m, y, norm_result_dtype(m, in, flags));
		}
		case ModuleKind::BatchNorm: {
			need_rank(m, x, 1);
			int64_t c = x.back();
			uint32_t h = handle_of(m);
			// the running statistics first, then x in float32 (the Module API's order)
			const uint32_t mean = variable(m, h, "batch_stats", "mean", {c});
			const uint32_t var = variable(m, h, "batch_stats", "var", {c});
			std::vector<uint32_t> ins = {astype(m, in, F32), mean, var};
			uint32_t flags = norm_affine(m, h, c, ins);
			uint32_t y = op(m, FLAXDRM_OP_BATCH_NORM, h, ins, x, {f32_bits(m.epsilon), 0, flags}, F32);
			return astype(m, y, norm_result_dtype(m, in, flags));
		}
		case ModuleKind::Embed: {
			if (in != p_.input)
				fail(m, "Embed takes integer indices: it must be the model's first layer (its input is the "
					"program input, an int32 .npy)");
			p_.tensors[in].dtype = FLAXDRM_DTYPE_I32;
			uint32_t h = handle_of(m);
			uint32_t table = variable(m, h, "params", "embedding", {m.num_embeddings, m.features});
			Shape y = x;
			y.push_back(m.features);
			// promote_dtype(embedding, dtype=dtype): the indices take no part
			const uint32_t dt = compute_dtype(m, {F32});
			return op(m, FLAXDRM_OP_EMBED, h, {in, astype(m, table, dt)}, y, {}, dt);
		}
		case ModuleKind::Attention:
			return attention(m, in);
		case ModuleKind::Dropout:
			handle_of(m);
			return in; // deterministic: the identity
		case ModuleKind::Function:
			return function(m, in);
		}
		return in;
	}

	uint32_t dense_general(const Module& m, uint32_t in, const std::vector<int64_t>& features,
			       const std::vector<int64_t>& axis)
	{
		const Shape x = shape_of(in);
		need_rank(m, x, 1);
		const int64_t r = static_cast<int64_t>(x.size());
		std::vector<int64_t> ax;
		for (int64_t a : axis) {
			int64_t b = a < 0 ? a + r : a;
			if (b < 0 || b >= r)
				fail(m, "axis " + std::to_string(a) + " is out of range for input " + shape_str(x));
			ax.push_back(b);
		}
		std::sort(ax.begin(), ax.end());
		const std::size_t n = ax.size();
		for (std::size_t i = 0; i < n; i++)
			if (ax[i] != r - static_cast<int64_t>(n - i))
				fail(m, "axis must be the input's trailing axes (the program's DENSE contracts trailing "
					"axes), got " + shape_str(axis) + " for input " + shape_str(x));
		if (n == 0 || n > 8)
			fail(m, "axis must name 1 to 8 axes");
		uint32_t h = handle_of(m);
		Shape kshape(x.end() - static_cast<std::ptrdiff_t>(n), x.end());
		kshape.insert(kshape.end(), features.begin(), features.end());
		std::vector<uint32_t> ins = {in, variable(m, h, "params", "kernel", kshape)};
		if (m.use_bias)
			ins.push_back(variable(m, h, "params", "bias", features));
		Shape y(x.begin(), x.end() - static_cast<std::ptrdiff_t>(n));
		y.insert(y.end(), features.begin(), features.end());
		const uint32_t dt = compute_dtype(m, {dtype_of(in), F32});
		return op(m, FLAXDRM_OP_DENSE, h, cast_all(m, ins, dt), y, {static_cast<uint32_t>(n)}, dt);
	}

	// Adds a leading batch dim to an unbatched input, and views a 1-D
	// spatial input [N, L, C] as [N, 1, L, C]; returns the 4-D tensor.
	uint32_t to_nhwc(const Module& m, uint32_t in, std::size_t nsp, Shape& orig)
	{
		orig = shape_of(in);
		if (orig.size() != nsp + 1 && orig.size() != nsp + 2)
			fail(m, "input " + shape_str(orig) + " must be (batch, " + (nsp == 1 ? "length" : "height, width") +
					", features) or unbatched without the leading batch dim");
		Shape v = orig;
		if (v.size() == nsp + 1)
			v.insert(v.begin(), 1);
		if (nsp == 1)
			v.insert(v.begin() + 1, 1);
		return v == orig ? in : op(m, FLAXDRM_OP_RESHAPE, 0, {in}, v);
	}

	// The inverse view of to_nhwc for an output y[N, H, W, C].
	uint32_t from_nhwc(const Module& m, uint32_t y, std::size_t nsp, const Shape& orig)
	{
		Shape s = shape_of(y);
		Shape v;
		if (orig.size() == nsp + 2)
			v.push_back(s[0]);
		if (nsp == 2)
			v.push_back(s[1]);
		v.push_back(s[2]);
		v.push_back(s[3]);
		return v == s ? y : op(m, FLAXDRM_OP_RESHAPE, 0, {y}, v);
	}

	// Per spatial axis of a 2-D op: entry 0 is height (1-D: a unit height).
	static std::vector<int64_t> hw(const std::vector<int64_t>& v, int64_t fill)
	{
		return v.size() == 1 ? std::vector<int64_t>{fill, v[0]} : v;
	}

	std::vector<Padding> paddings(const Module& m, const Shape& x4, const std::vector<int64_t>& k,
				      const std::vector<int64_t>& strides, const std::vector<int64_t>& kdil,
				      bool transpose)
	{
		const std::size_t nsp = m.kernel_size.size();
		std::vector<Padding> pads(2);
		for (std::size_t a = 0; a < 2; a++) {
			// a unit height axis added for 1-D ops pads nothing
			if (nsp == 1 && a == 0)
				continue;
			const std::size_t i = nsp == 1 ? 0 : a; // index into the module's tuples
			const uint32_t in = static_cast<uint32_t>(x4[1 + a]);
			const uint32_t kk = static_cast<uint32_t>(k[a]), s = static_cast<uint32_t>(strides[a]),
				       d = static_cast<uint32_t>(kdil[a]);
			const std::string& mode = m.padding.mode;
			if (mode.empty()) {
				const auto& pr = m.padding.pairs[m.padding.pairs.size() == 1 ? 0 : i];
				pads[a] = {static_cast<uint32_t>(pr.first), static_cast<uint32_t>(pr.second)};
			} else if (transpose) {
				pads[a] = conv_transpose_padding(kk, s, d, mode == "SAME");
			} else if (mode == "SAME") {
				pads[a] = same_padding(in, kk, s, d);
			} else if (mode == "CIRCULAR") {
				// flax: ((k - 1) // 2, k // 2) of the dilated kernel, then VALID
				uint32_t kd = static_cast<uint32_t>(dilated_size(kk, d));
				pads[a] = {(kd - 1) / 2, kd / 2};
			} else if (mode == "CAUSAL") {
				pads[a] = causal_padding(kk, d);
			}
		}
		return pads;
	}

	uint32_t conv(const Module& m, uint32_t in)
	{
		const bool tr = m.kind == ModuleKind::ConvTranspose;
		const std::size_t nsp = m.kernel_size.size();
		Shape orig;
		uint32_t x4t = to_nhwc(m, in, nsp, orig);
		const Shape x4 = shape_of(x4t);
		const int64_t c = x4[3], g = m.feature_group_count;
		if (c % g || m.features % g)
			fail(m, "feature_group_count " + std::to_string(g) + " must divide the input features (" +
					std::to_string(c) + ") and the output features (" + std::to_string(m.features) + ")");
		const auto k = hw(m.kernel_size, 1), st = hw(m.strides, 1), kd = hw(m.kernel_dilation, 1),
			   id = hw(m.input_dilation, 1);
		auto pads = paddings(m, x4, k, st, kd, tr);
		uint32_t h = handle_of(m);
		Shape kshape = m.kernel_size;
		kshape.push_back(c / g);
		kshape.push_back(m.features);
		Shape kview = {k[0], k[1], c / g, m.features};
		std::vector<uint32_t> ins = {x4t, variable(m, h, "params", "kernel", kshape, kview)};
		if (m.use_bias)
			ins.push_back(variable(m, h, "params", "bias", {m.features}));
		// ConvTranspose (lax.conv_transpose): window strides 1, input dilation = strides
		const auto ws = tr ? std::vector<int64_t>{1, 1} : st;
		const auto ld = tr ? st : id;
		Shape y = {x4[0], 0, 0, m.features};
		for (std::size_t a = 0; a < 2; a++) {
			y[1 + a] = static_cast<int64_t>(conv_output_size(static_cast<uint32_t>(x4[1 + a]),
									   static_cast<uint32_t>(ld[a]), pads[a],
									   static_cast<uint32_t>(k[a]),
									   static_cast<uint32_t>(kd[a]),
									   static_cast<uint32_t>(ws[a])));
			if (y[1 + a] < 1)
				fail(m, "the kernel " + shape_str(m.kernel_size) + " does not fit input " + shape_str(orig) +
						" with this padding and dilation");
		}
		const bool circular = m.padding.mode == "CIRCULAR";
		std::vector<uint32_t> attrs = {
			u32(ws[0]), u32(ws[1]), u32(ld[0]), u32(ld[1]), u32(kd[0]), u32(kd[1]), u32(g),
			circular ? uint32_t(FLAXDRM_PAD_CIRCULAR) : uint32_t(FLAXDRM_PAD_ZERO),
			pads[0].before, pads[0].after, pads[1].before, pads[1].after};
		const uint32_t dt = compute_dtype(m, {dtype_of(in), F32});
		uint32_t out = op(m, FLAXDRM_OP_CONV, h, cast_all(m, ins, dt), y, attrs, dt);
		return from_nhwc(m, out, nsp, orig);
	}

	uint32_t attention(const Module& m, uint32_t in)
	{
		const Shape x = shape_of(in);
		if (x.size() != 3)
			fail(m, "input " + shape_str(x) + " must be (batch, length, features)");
		const int64_t f = x[2];
		const int64_t qkv = m.qkv_features ? m.qkv_features : f;
		const int64_t out_f = m.out_features ? m.out_features : f;
		if (qkv % m.num_heads)
			fail(m, "qkv_features " + std::to_string(qkv) + " must be divisible by num_heads " +
					std::to_string(m.num_heads));
		const int64_t d = qkv / m.num_heads;
		const Module* child[4] = {};
		for (const Module& c : m.layers)
			for (int i = 0; i < 4; i++)
				if (c.name == std::array<const char*, 4>{"query", "key", "value", "out"}[i])
					child[i] = &c;
		uint32_t qkvt[3];
		for (int i = 0; i < 3; i++) {
			p_.layers.push_back({child[i], 0, x, {}});
			qkvt[i] = dense_general(*child[i], in, {m.num_heads, d}, {-1});
			p_.layers.back().depth = -1; // filled below
			p_.layers.back().output = shape_of(qkvt[i]);
		}
		// q, k and v in one dtype (the projections share the attention's dtype)
		const uint32_t dt = promote(promote(dtype_of(qkvt[0]), dtype_of(qkvt[1])), dtype_of(qkvt[2]));
		std::vector<uint32_t> qkv_in = cast_all(m, {qkvt[0], qkvt[1], qkvt[2]}, dt);
		uint32_t a = op(m, FLAXDRM_OP_ATTENTION, 0, qkv_in, shape_of(qkvt[0]), {}, dt);
		p_.layers.push_back({child[3], -1, shape_of(a), {}});
		uint32_t y = dense_general(*child[3], a, {out_f}, {-2, -1});
		p_.layers.back().output = shape_of(y);
		return y;
	}

	uint32_t pool(const Module& m, uint32_t in)
	{
		const std::size_t nsp = m.kernel_size.size();
		Shape orig;
		uint32_t x4t = to_nhwc(m, in, nsp, orig);
		const Shape x4 = shape_of(x4t);
		const auto k = hw(m.kernel_size, 1), st = hw(m.strides, 1), one = std::vector<int64_t>{1, 1};
		auto pads = paddings(m, x4, k, st, one, false);
		Shape y = {x4[0], 0, 0, x4[3]};
		for (std::size_t a = 0; a < 2; a++) {
			y[1 + a] = static_cast<int64_t>(conv_output_size(static_cast<uint32_t>(x4[1 + a]), 1, pads[a],
									   static_cast<uint32_t>(k[a]), 1,
									   static_cast<uint32_t>(st[a])));
			if (y[1 + a] < 1)
				fail(m, "window " + shape_str(m.kernel_size) + " does not fit input " + shape_str(orig));
		}
		const bool avg = m.class_name == "avg_pool";
		std::vector<uint32_t> attrs = {u32(k[0]), u32(k[1]), u32(st[0]), u32(st[1]),
					       pads[0].before, pads[0].after, pads[1].before, pads[1].after};
		if (avg)
			attrs.push_back(m.count_include_pad ? 1 : 0);
		uint32_t out = op(m, avg ? FLAXDRM_OP_AVG_POOL : FLAXDRM_OP_MAX_POOL, 0, {x4t}, y, attrs);
		return from_nhwc(m, out, nsp, orig);
	}

	uint32_t function(const Module& m, uint32_t in)
	{
		const Shape x = shape_of(in);
		const std::string& f = m.class_name;
		if (f == "avg_pool" || f == "max_pool")
			return pool(m, in);
		if (f == "flatten") {
			need_rank(m, x, 1);
			Shape y = {x[0], product(x, 1)};
			return y == x ? in : op(m, FLAXDRM_OP_RESHAPE, 0, {in}, y);
		}
		if (f == "reshape") {
			Shape y = m.shape;
			int64_t known = 1;
			for (int64_t d : y)
				if (d != -1)
					known *= d;
			const int64_t total = product(x);
			for (int64_t& d : y)
				if (d == -1)
					d = known && total % known == 0 ? total / known : -1;
			if (product(y) != total || std::find(y.begin(), y.end(), -1) != y.end())
				fail(m, "cannot reshape " + shape_str(x) + " (" + std::to_string(total) + " elements) to " +
						shape_str(m.shape));
			return y == x ? in : op(m, FLAXDRM_OP_RESHAPE, 0, {in}, y);
		}
		static const std::map<std::string, uint32_t> unary = {
			{"relu", FLAXDRM_OP_RELU},       {"gelu", FLAXDRM_OP_GELU},
			{"silu", FLAXDRM_OP_SILU},       {"swish", FLAXDRM_OP_SILU},
			{"sigmoid", FLAXDRM_OP_SIGMOID}, {"tanh", FLAXDRM_OP_TANH},
			{"elu", FLAXDRM_OP_ELU},         {"leaky_relu", FLAXDRM_OP_LEAKY_RELU},
			{"softplus", FLAXDRM_OP_SOFTPLUS}, {"softmax", FLAXDRM_OP_SOFTMAX},
			{"log_softmax", FLAXDRM_OP_LOG_SOFTMAX}};
		auto it = unary.find(f);
		if (it == unary.end())
			fail(m, "internal error: unknown function " + f);
		std::vector<uint32_t> attrs;
		if (f == "gelu")
			attrs = {m.approximate ? 1u : 0u};
		else if (f == "elu")
			attrs = {f32_bits(m.alpha)};
		else if (f == "leaky_relu")
			attrs = {f32_bits(m.negative_slope)};
		if ((f == "softmax" || f == "log_softmax"))
			need_rank(m, x, 1);
		return op(m, it->second, 0, {in}, x, attrs);
	}

	static uint32_t u32(int64_t v) { return static_cast<uint32_t>(v); }

	// The dtype a layer computes in: its dtype, or for None the promotion
	// of its operands' dtypes (flax.linen.dtypes.promote_dtype).
	static uint32_t compute_dtype(const Module& m, std::initializer_list<uint32_t> operands)
	{
		if (m.dtype != LayerDtype::None)
			return m.dtype == LayerDtype::F16 ? F16 : F32;
		uint32_t r = *operands.begin();
		for (uint32_t d : operands)
			r = promote(r, d);
		return r;
	}

	// A norm's result dtype: its dtype, or for None the promotion of x's and
	// the (float32) scale's and bias's dtypes; x's alone without either.
	uint32_t norm_result_dtype(const Module& m, uint32_t x, uint32_t flags) const
	{
		const uint32_t xd = dtype_of(x);
		return compute_dtype(m, {xd, flags & (FLAXDRM_NORM_SCALE | FLAXDRM_NORM_BIAS) ? F32 : xd});
	}

	// Every operand cast to dtype, in order (input, kernel, bias), as the Module API does.
	std::vector<uint32_t> cast_all(const Module& m, std::vector<uint32_t> ts, uint32_t dtype)
	{
		for (uint32_t& t : ts)
			t = astype(m, t, dtype);
		return ts;
	}

	[[noreturn]] void fail(const Module& m, const std::string& what) const
	{
		throw Error(model_.source + ": " + m.class_name + " at " + m.display_path() + ": " + what);
	}

	// the optional scale and bias of a norm over c channels: appended to ins, their FLAXDRM_NORM_* flags returned
	uint32_t norm_affine(const Module& m, uint32_t h, int64_t c, std::vector<uint32_t>& ins)
	{
		uint32_t flags = 0;
		if (m.use_scale) {
			ins.push_back(variable(m, h, "params", "scale", {c}));
			flags |= FLAXDRM_NORM_SCALE;
		}
		if (m.use_bias) {
			ins.push_back(variable(m, h, "params", "bias", {c}));
			flags |= FLAXDRM_NORM_BIAS;
		}
		return flags;
	}

	void need_rank(const Module& m, const Shape& x, std::size_t rank) const
	{
		if (x.size() < rank)
			fail(m, "needs an input with at least " + std::to_string(rank) + " dimension" +
					(rank == 1 ? "" : "s") + ", got shape " + shape_str(x));
	}

	uint32_t dtype_of(uint32_t t) const { return p_.tensors[t].dtype; }

	Shape shape_of(uint32_t t) const
	{
		const auto& d = p_.tensors[t];
		return Shape(d.dims, d.dims + d.rank);
	}

	uint32_t handle_of(const Module& m) const
	{
		if (m.index < 0 || static_cast<std::size_t>(m.index) >= handles_.size() || !handles_[m.index])
			throw Error("internal error: no module handle for " + m.display_path());
		return handles_[m.index];
	}

	uint32_t add(const drm_flaxdrm_tensor& t)
	{
		if (p_.tensors.size() >= FLAXDRM_MAX_TENSORS)
			throw Error(model_.source + ": the program needs more than " +
				    std::to_string(FLAXDRM_MAX_TENSORS) + " tensors");
		p_.tensors.push_back(t);
		return static_cast<uint32_t>(p_.tensors.size() - 1);
	}

	uint32_t temp(const Module& m, const Shape& s, uint32_t dtype)
	{
		for (int64_t d : s)
			if (d < 1)
				fail(m, "would produce an empty output " + shape_str(s));
		return add(make_tensor(FLAXDRM_TENSOR_TEMP, s, 0, {}, {}, dtype));
	}

	// A VARIABLE operand: Flax's shape `s`, seen by the op as `view` (same size).
	uint32_t variable(const Module& m, uint32_t handle, const char* collection, const char* name, const Shape& s,
			  Shape view = {})
	{
		if (view.empty())
			view = s;
		for (int64_t d : s)
			if (d < 1)
				fail(m, std::string(collection) + "/" + name + " would have an empty shape " + shape_str(s));
		uint32_t t = add(make_tensor(FLAXDRM_TENSOR_VARIABLE, view, handle, collection, name));
		std::string path = std::string(collection) + "/" + (m.path.empty() ? std::string() : m.path + "/") + name;
		p_.variables.push_back({t, path, m.index, s});
		return t;
	}

	static constexpr uint32_t kInputsDtype = UINT32_MAX;

	// An op writing one new temporary of shape out and dtype (by default
	// that of inputs[0]: functions, pools and reshapes keep their input's).
	uint32_t op(const Module& m, uint32_t opcode, uint32_t module, const std::vector<uint32_t>& inputs,
		    const Shape& out, const std::vector<uint32_t>& attrs = {}, uint32_t dtype = kInputsDtype)
	{
		drm_flaxdrm_op o{};
		o.opcode = opcode;
		o.module = module;
		o.num_inputs = static_cast<uint32_t>(inputs.size());
		for (std::size_t i = 0; i < inputs.size(); i++)
			o.inputs[i] = inputs[i];
		for (std::size_t i = 0; i < attrs.size(); i++)
			o.attrs[i] = attrs[i];
		o.outputs[0] = temp(m, out, dtype == kInputsDtype ? dtype_of(inputs[0]) : dtype);
		o.num_outputs = 1;
		if (p_.ops.size() >= FLAXDRM_MAX_OPS)
			throw Error(model_.source + ": the program needs more than " + std::to_string(FLAXDRM_MAX_OPS) +
				    " ops");
		p_.ops.push_back(o);
		p_.op_modules.push_back(&m);
		return o.outputs[0];
	}

	const Model& model_;
	std::span<const uint32_t> handles_;
	Program& p_;
};

} // namespace

drm_flaxdrm_tensor make_tensor(uint32_t kind, const Shape& shape, uint32_t module, const std::string& collection,
			       const std::string& name, uint32_t dtype)
{
	drm_flaxdrm_tensor t{};
	if (shape.size() > FLAXDRM_MAX_RANK)
		throw Error("shape " + shape_str(shape) + " has more than " + std::to_string(FLAXDRM_MAX_RANK) +
			    " dimensions");
	t.kind = kind;
	t.dtype = dtype;
	t.rank = static_cast<uint32_t>(shape.size());
	t.module = module;
	for (std::size_t i = 0; i < shape.size(); i++) {
		if (shape[i] < 1 || shape[i] > UINT32_MAX)
			throw Error("shape " + shape_str(shape) + " has a dimension out of range (1.." +
				    std::to_string(UINT32_MAX) + ")");
		t.dims[i] = static_cast<uint32_t>(shape[i]);
	}
	if (collection.size() >= sizeof(t.collection) || name.size() >= sizeof(t.name))
		throw Error("variable name '" + collection + "/" + name + "' is too long");
	std::memcpy(t.collection, collection.data(), collection.size());
	std::memcpy(t.name, name.data(), name.size());
	return t;
}

namespace {
Program lower_program(const Model& model, const Shape& input_shape, std::span<const uint32_t> handles)
{
	Program p;
	p.input = 0;
	p.tensors.push_back(make_tensor(FLAXDRM_TENSOR_INPUT, input_shape));
	Lowerer lowerer(model, handles, p);
	uint32_t out = lowerer.lower(model.root, p.input);
	// the program's output is float32 (the CLI's .npy and apply's Tensor)
	if (p.tensors[out].dtype == FLAXDRM_DTYPE_F16)
		out = lowerer.astype(model.root, out, FLAXDRM_DTYPE_F32);
	p.output = out;
	const auto& d = p.tensors[out];
	p.output_shape.assign(d.dims, d.dims + d.rank);
	// the attention children's rows sit at their parent's depth + 1
	for (std::size_t i = 0; i < p.layers.size(); i++)
		if (p.layers[i].depth < 0)
			for (std::size_t j = i; j-- > 0;)
				if (p.layers[j].depth >= 0 && p.layers[j].module->kind == ModuleKind::Attention) {
					p.layers[i].depth = p.layers[j].depth + 1;
					break;
				}
	return p;
}
} // namespace

Program lower(const Model& model, const Shape& input_shape, std::span<const uint32_t> handles)
{
	Program p = lower_program(model, input_shape, handles);
	if (p.ops.empty())
		throw Error(model.source + ": the model has no layers: nothing to run");
	if (p.output == p.input)
		throw Error(model.source + ": the model's output is its input: nothing to run");
	// the last op writes the program's output
	p.tensors[p.output].kind = FLAXDRM_TENSOR_OUTPUT;
	return p;
}

Program lower_shapes(const Model& model, const Shape& input_shape)
{
	std::vector<uint32_t> handles(model.num_modules);
	for (int i = 0; i < model.num_modules; i++)
		handles[i] = static_cast<uint32_t>(i + 1);
	return lower_program(model, input_shape, handles);
}

std::string Program::describe_op(uint32_t op) const
{
	if (op == FLAXDRM_INDEX_NONE || op >= ops.size())
		return "";
	const Module* m = op_modules[op];
	return "op " + std::to_string(op) + " (" + m->class_name + " at " + m->display_path() + ")";
}

std::string Program::describe_tensor(uint32_t tensor) const
{
	if (tensor == FLAXDRM_INDEX_NONE || tensor >= tensors.size())
		return "";
	const auto& t = tensors[tensor];
	Shape s(t.dims, t.dims + t.rank);
	std::string what;
	switch (t.kind) {
	case FLAXDRM_TENSOR_INPUT: what = "input"; break;
	case FLAXDRM_TENSOR_OUTPUT: what = "output"; break;
	case FLAXDRM_TENSOR_TEMP: what = "temporary"; break;
	case FLAXDRM_TENSOR_VARIABLE:
		what = "variable";
		for (const auto& v : variables)
			if (v.tensor == tensor)
				what += " " + v.path;
		break;
	default: what = "kind " + std::to_string(t.kind);
	}
	return "tensor " + std::to_string(tensor) + " (" + what + " " + shape_str(s) + ")";
}

} // namespace flaxdrm
