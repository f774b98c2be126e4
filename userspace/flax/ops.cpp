// Trace (program recording) and the plain ops of the Module API.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "flaxdrm/conv_padding.hpp"
#include "flaxdrm/flax/module.hpp"
#include "flaxdrm_rules.h"

namespace flaxdrm::flax {
namespace {

uint32_t fbits(float f)
{
	uint32_t u;
	std::memcpy(&u, &f, 4);
	return u;
}

drm_flaxdrm_tensor make_desc(uint32_t kind, const Shape& shape, uint32_t dtype)
{
	if (shape.size() > FLAXDRM_MAX_RANK)
		throw ShapeError("rank " + std::to_string(shape.size()) + " of " + shape_str(shape) + " exceeds " +
				 std::to_string(FLAXDRM_MAX_RANK));
	drm_flaxdrm_tensor t{};
	t.kind = kind;
	t.dtype = dtype;
	t.rank = static_cast<uint32_t>(shape.size());
	for (std::size_t i = 0; i < shape.size(); i++) {
		if (shape[i] <= 0 || shape[i] > 0xffffffffll)
			throw ShapeError("dimension " + std::to_string(shape[i]) + " of " + shape_str(shape) +
					 " is not supported (dims are 1..2^32-1)");
		t.dims[i] = static_cast<uint32_t>(shape[i]);
	}
	return t;
}

Trace& tr(const Value& v)
{
	if (!v.trace)
		throw UnboundModuleError("a flax::Value used outside a trace (values come from a bound module's "
					 "inputs, variables or ops)");
	return *v.trace;
}

int norm_axis(int64_t axis, std::size_t rank)
{
	int64_t a = axis < 0 ? axis + static_cast<int64_t>(rank) : axis;
	if (a < 0 || a >= static_cast<int64_t>(rank))
		throw ShapeError("axis " + std::to_string(axis) + " out of range for rank " + std::to_string(rank));
	return static_cast<int>(a);
}

Value unary(uint32_t opcode, const Value& x, std::vector<uint32_t> attrs = {})
{
	return tr(x).op(opcode, 0, {x}, x.shape, attrs, x.dtype);
}

Value binary(uint32_t opcode, const Value& a, const Value& b)
{
	const std::size_t rank = std::max(a.rank(), b.rank());
	Shape out(rank);
	for (std::size_t i = 0; i < rank; i++) {
		int64_t da = i + a.rank() >= rank ? a.shape[i + a.rank() - rank] : 1;
		int64_t db = i + b.rank() >= rank ? b.shape[i + b.rank() - rank] : 1;
		if (da != db && da != 1 && db != 1)
			throw ShapeError("cannot broadcast " + shape_str(a.shape) + " with " + shape_str(b.shape));
		out[i] = da == 1 ? db : da;
	}
	const uint32_t dt = promote_types(a.dtype, b.dtype);
	return tr(a).op(opcode, 0, {astype(a, dt), astype(b, dt)}, out, {}, dt);
}

Value reduce(uint32_t opcode, const Value& x, const std::vector<int>& axes, bool keepdims)
{
	uint32_t mask = 0;
	for (int a : axes)
		mask |= 1u << norm_axis(a, x.rank());
	Shape out;
	for (std::size_t i = 0; i < x.rank(); i++) {
		if (mask & (1u << i)) {
			if (keepdims)
				out.push_back(1);
		} else {
			out.push_back(x.shape[i]);
		}
	}
	return tr(x).op(opcode, 0, {x}, out, {mask, keepdims ? 1u : 0u}, x.dtype);
}

// pooling over NHWC (rank 4) or NWC (rank 3, as H = 1)
Value pool(uint32_t opcode, const Value& x, const Shape& window, Shape strides, const PadPairs* pairs,
	   const std::string& padding, bool count_include_pad)
{
	const std::size_t nsp = window.size();
	if ((nsp != 1 && nsp != 2) || x.rank() != nsp + 2)
		throw ShapeError(std::string(opcode == FLAXDRM_OP_MAX_POOL ? "max_pool" : "avg_pool") +
				 ": window " + shape_str(window) + " needs an input of rank " +
				 std::to_string(nsp + 2) + " (batch, spatial..., features), got " + shape_str(x.shape));
	if (strides.empty())
		strides.assign(nsp, 1);
	Value in = x;
	Shape win = window, st = strides;
	PadPairs pads;
	for (std::size_t i = 0; i < nsp; i++) {
		if (pairs) {
			pads.push_back(pairs->at(i));
		} else if (padding == "SAME") {
			Padding p = same_padding(uint32_t(x.shape[1 + i]), uint32_t(window[i]), uint32_t(strides[i]));
			pads.push_back({p.before, p.after});
		} else if (padding == "VALID") {
			pads.push_back({0, 0});
		} else {
			throw ShapeError("pooling padding must be SAME, VALID or pairs, got " + padding);
		}
	}
	if (nsp == 1) {
		in = reshape(x, {x.shape[0], 1, x.shape[1], x.shape[2]});
		win.insert(win.begin(), 1);
		st.insert(st.begin(), 1);
		pads.insert(pads.begin(), {0, 0});
	}
	Shape out = {in.shape[0], 0, 0, in.shape[3]};
	for (int i = 0; i < 2; i++) {
		out[1 + i] = int64_t(conv_output_size(uint32_t(in.shape[1 + i]), 1,
						      {uint32_t(pads[i].first), uint32_t(pads[i].second)},
						      uint32_t(win[i]), 1, uint32_t(st[i])));
		if (!out[1 + i])
			throw ShapeError("pooling window " + shape_str(window) + " does not fit input " +
					 shape_str(x.shape));
	}
	std::vector<uint32_t> attrs = {uint32_t(win[0]),	   uint32_t(win[1]),	     uint32_t(st[0]),
				       uint32_t(st[1]),	   uint32_t(pads[0].first), uint32_t(pads[0].second),
				       uint32_t(pads[1].first), uint32_t(pads[1].second)};
	if (opcode == FLAXDRM_OP_AVG_POOL)
		attrs.push_back(count_include_pad ? 1 : 0);
	Value y = tr(in).op(opcode, 0, {in}, out, attrs, in.dtype);
	if (nsp == 1)
		y = reshape(y, {out[0], out[2], out[3]});
	return y;
}

} // namespace

uint32_t promote_types(uint32_t a, uint32_t b)
{
	const auto is_float = [](uint32_t d) { return d == float32 || d == float16; };
	if (a == b)
		return a;
	if (is_float(a) && is_float(b))
		return float32;
	if (is_float(a) != is_float(b))
		return is_float(a) ? a : b;
	throw Error("no promotion between " + dtype_name(a) + " and " + dtype_name(b));
}

std::string dtype_name(uint32_t dtype)
{
	switch (dtype) {
	case kNoDtype:
		return "None";
	case float32:
		return "float32";
	case float16:
		return "float16";
	case int32:
		return "int32";
	case FLAXDRM_DTYPE_BF16:
		return "bfloat16";
	default:
		return "dtype " + std::to_string(dtype);
	}
}

int64_t Value::dim(int64_t axis) const
{
	return shape[norm_axis(axis, shape.size())];
}

Array Array::i32(Shape s, const std::vector<int32_t>& values)
{
	Array a;
	a.shape = std::move(s);
	a.dtype = FLAXDRM_DTYPE_I32;
	a.data.assign(values.begin(), values.end());
	return a;
}

Value Trace::input(const Shape& shape, uint32_t dtype)
{
	tensors.push_back(make_desc(FLAXDRM_TENSOR_INPUT, shape, dtype));
	inputs.push_back(uint32_t(tensors.size() - 1));
	return {this, uint32_t(tensors.size() - 1), shape, dtype};
}

Value Trace::variable(uint32_t scope, const std::string& collection, const std::string& name,
		      const std::string& path, const Shape& shape)
{
	for (const Var& v : vars)
		if (v.path == path)
			return {this, v.tensor, shape, FLAXDRM_DTYPE_F32};
	if (collection.size() >= FLAXDRM_COLLECTION_LEN || name.size() >= FLAXDRM_NAME_LEN)
		throw Error("variable " + path + ": collection or name too long for the program format");
	drm_flaxdrm_tensor t = make_desc(FLAXDRM_TENSOR_VARIABLE, shape, FLAXDRM_DTYPE_F32);
	t.module = scope;
	std::memcpy(t.collection, collection.data(), collection.size());
	std::memcpy(t.name, name.data(), name.size());
	tensors.push_back(t);
	vars.push_back({uint32_t(tensors.size() - 1), scope, collection, name, path, false});
	return {this, uint32_t(tensors.size() - 1), shape, FLAXDRM_DTYPE_F32};
}

Value Trace::op_writing(uint32_t opcode, uint32_t scope, const std::vector<Value>& ins, const Shape& out,
			const std::vector<uint32_t>& attrs, const std::vector<uint32_t>& extra_outputs)
{
	if (ins.size() > FLAXDRM_MAX_OP_INPUTS || attrs.size() > FLAXDRM_MAX_OP_ATTRS ||
	    extra_outputs.size() + 1 > FLAXDRM_MAX_OP_OUTPUTS)
		throw Error("too many operands for op " + std::string(flaxdrm_op_name(opcode)));
	drm_flaxdrm_op op{};
	op.opcode = opcode;
	op.module = scope;
	op.num_inputs = uint32_t(ins.size());
	for (std::size_t i = 0; i < ins.size(); i++) {
		if (ins[i].trace != this)
			throw Error("op " + std::string(flaxdrm_op_name(opcode)) + " mixes values of two traces");
		op.inputs[i] = ins[i].index;
	}
	tensors.push_back(make_desc(FLAXDRM_TENSOR_TEMP, out, FLAXDRM_DTYPE_F32));
	const uint32_t y = uint32_t(tensors.size() - 1);
	op.num_outputs = uint32_t(1 + extra_outputs.size());
	op.outputs[0] = y;
	for (std::size_t i = 0; i < extra_outputs.size(); i++)
		op.outputs[1 + i] = extra_outputs[i];
	for (std::size_t i = 0; i < attrs.size(); i++)
		op.attrs[i] = attrs[i];
	ops.push_back(op);
	op_where.push_back(where);
	return {this, y, out, FLAXDRM_DTYPE_F32};
}

Value Trace::op(uint32_t opcode, uint32_t scope, const std::vector<Value>& ins, const Shape& out,
		const std::vector<uint32_t>& attrs, uint32_t dtype)
{
	Value v = op_writing(opcode, scope, ins, out, attrs, {});
	tensors[v.index].dtype = dtype;
	v.dtype = dtype;
	return v;
}

uint32_t Trace::temp(const Shape& shape)
{
	tensors.push_back(make_desc(FLAXDRM_TENSOR_TEMP, shape, FLAXDRM_DTYPE_F32));
	return uint32_t(tensors.size() - 1);
}

void Trace::set_output(const Value& v)
{
	Value y = v.dtype == float16 ? astype(v, float32) : v;
	if (tensors[y.index].kind != FLAXDRM_TENSOR_TEMP)
		y = op(FLAXDRM_OP_RESHAPE, 0, {v}, v.shape, {}, v.dtype);
	tensors[y.index].kind = FLAXDRM_TENSOR_OUTPUT;
	output = y.index;
	output_shape = y.shape;
}

std::string Trace::describe_op(uint32_t i) const
{
	if (i >= ops.size())
		return {};
	std::string s = "op " + std::to_string(i) + " (" + flaxdrm_op_name(ops[i].opcode);
	if (!op_where[i].empty())
		s += " in " + op_where[i];
	return s + ")";
}

std::string Trace::describe_tensor(uint32_t i) const
{
	if (i >= tensors.size())
		return {};
	const auto& t = tensors[i];
	Shape s(t.dims, t.dims + t.rank);
	static const char* kinds[] = {"?", "INPUT", "OUTPUT", "TEMP", "VARIABLE"};
	std::string r = "tensor " + std::to_string(i) + " (" + kinds[t.kind <= 4 ? t.kind : 0];
	for (const Var& v : vars)
		if (v.tensor == i)
			r += " " + v.path;
	if (t.dtype != float32)
		r += " " + dtype_name(t.dtype);
	return r + " " + shape_str(s) + ")";
}

void Trace::check() const
{
	std::vector<uint8_t> scratch(tensors.size() + 1);
	uint32_t bad_op = FLAXDRM_INDEX_NONE, bad_tensor = FLAXDRM_INDEX_NONE;
	if (ops.empty())
		throw Error("the traced program has no ops");
	if (flaxdrm_check_program(tensors.data(), uint32_t(tensors.size()), ops.data(), uint32_t(ops.size()),
				  scratch.data(), &bad_op, &bad_tensor)) {
		std::string where;
		for (const std::string& s : {describe_op(bad_op), describe_tensor(bad_tensor)})
			if (!s.empty())
				where += (where.empty() ? ": " : ", ") + s;
		throw Error("the traced program breaks the program rules" + where);
	}
}

// ----------------------------------------------------------------- plain ops
Value astype(const Value& x, uint32_t dtype)
{
	if (dtype == x.dtype)
		return x;
	return tr(x).op(FLAXDRM_OP_ASTYPE, 0, {x}, x.shape, {}, dtype);
}

Value relu(const Value& x) { return unary(FLAXDRM_OP_RELU, x); }
Value gelu(const Value& x, bool approximate) { return unary(FLAXDRM_OP_GELU, x, {approximate ? 1u : 0u}); }
Value silu(const Value& x) { return unary(FLAXDRM_OP_SILU, x); }
Value sigmoid(const Value& x) { return unary(FLAXDRM_OP_SIGMOID, x); }
Value tanh(const Value& x) { return unary(FLAXDRM_OP_TANH, x); }
Value elu(const Value& x, float alpha) { return unary(FLAXDRM_OP_ELU, x, {fbits(alpha)}); }
Value leaky_relu(const Value& x, float slope) { return unary(FLAXDRM_OP_LEAKY_RELU, x, {fbits(slope)}); }
Value softplus(const Value& x) { return unary(FLAXDRM_OP_SOFTPLUS, x); }
Value softmax(const Value& x) { return unary(FLAXDRM_OP_SOFTMAX, x); }
Value log_softmax(const Value& x) { return unary(FLAXDRM_OP_LOG_SOFTMAX, x); }
Value add(const Value& a, const Value& b) { return binary(FLAXDRM_OP_ADD, a, b); }
Value subtract(const Value& a, const Value& b) { return binary(FLAXDRM_OP_SUB, a, b); }
Value multiply(const Value& a, const Value& b) { return binary(FLAXDRM_OP_MUL, a, b); }
Value divide(const Value& a, const Value& b) { return binary(FLAXDRM_OP_DIV, a, b); }
Value maximum(const Value& a, const Value& b) { return binary(FLAXDRM_OP_MAXIMUM, a, b); }
Value minimum(const Value& a, const Value& b) { return binary(FLAXDRM_OP_MINIMUM, a, b); }

Value matmul(const Value& a, const Value& b, bool ta, bool tb)
{
	if (a.rank() < 2 || b.rank() < 2)
		throw ShapeError("matmul needs rank >= 2 operands, got " + shape_str(a.shape) + " and " +
				 shape_str(b.shape));
	int64_t m = ta ? a.dim(-1) : a.dim(-2), k = ta ? a.dim(-2) : a.dim(-1);
	int64_t kb = tb ? b.dim(-1) : b.dim(-2), n = tb ? b.dim(-2) : b.dim(-1);
	if (k != kb)
		throw ShapeError("matmul: contracting dims differ: " + shape_str(a.shape) + " @ " + shape_str(b.shape));
	const std::size_t ba = a.rank() - 2, bb = b.rank() - 2, rank = std::max(ba, bb);
	Shape out(rank);
	for (std::size_t i = 0; i < rank; i++) {
		int64_t da = i + ba >= rank ? a.shape[i + ba - rank] : 1;
		int64_t db = i + bb >= rank ? b.shape[i + bb - rank] : 1;
		if (da != db && da != 1 && db != 1)
			throw ShapeError("matmul: batch dims of " + shape_str(a.shape) + " and " + shape_str(b.shape) +
					 " do not broadcast");
		out[i] = da == 1 ? db : da;
	}
	out.push_back(m);
	out.push_back(n);
	const uint32_t dt = promote_types(a.dtype, b.dtype);
	return tr(a).op(FLAXDRM_OP_MATMUL, 0, {astype(a, dt), astype(b, dt)}, out, {(ta ? 1u : 0u) | (tb ? 2u : 0u)},
			dt);
}

Value reshape(const Value& x, Shape shape)
{
	int64_t known = 1;
	int free = -1;
	for (std::size_t i = 0; i < shape.size(); i++) {
		if (shape[i] == -1) {
			if (free >= 0)
				throw ShapeError("reshape: more than one -1 in " + shape_str(shape));
			free = int(i);
		} else {
			known *= shape[i];
		}
	}
	const int64_t total = int64_t(num_elements(x.shape));
	if (free >= 0 && known > 0)
		shape[free] = total / known;
	if (int64_t(num_elements(shape)) != total)
		throw ShapeError("cannot reshape " + shape_str(x.shape) + " to " + shape_str(shape));
	return tr(x).op(FLAXDRM_OP_RESHAPE, 0, {x}, shape, {}, x.dtype);
}

Value transpose(const Value& x, const std::vector<int>& perm)
{
	if (perm.size() != x.rank())
		throw ShapeError("transpose: permutation of " + std::to_string(perm.size()) + " axes for " +
				 shape_str(x.shape));
	Shape out;
	std::vector<uint32_t> attrs;
	for (int p : perm) {
		int a = norm_axis(p, x.rank());
		out.push_back(x.shape[a]);
		attrs.push_back(uint32_t(a));
	}
	return tr(x).op(FLAXDRM_OP_TRANSPOSE, 0, {x}, out, attrs, x.dtype);
}

Value concatenate(const std::vector<Value>& xs, int axis)
{
	if (xs.empty())
		throw ShapeError("concatenate of nothing");
	int a = norm_axis(axis, xs[0].rank());
	Shape out = xs[0].shape;
	out[a] = 0;
	for (const Value& v : xs) {
		if (v.rank() != out.size())
			throw ShapeError("concatenate: ranks differ");
		out[a] += v.shape[a];
	}
	uint32_t dt = xs[0].dtype;
	for (const Value& v : xs)
		dt = promote_types(dt, v.dtype);
	std::vector<Value> ins;
	for (const Value& v : xs)
		ins.push_back(astype(v, dt));
	return tr(xs[0]).op(FLAXDRM_OP_CONCAT, 0, ins, out, {uint32_t(a)}, dt);
}

Value slice(const Value& x, const Shape& start, const Shape& size)
{
	if (start.size() != x.rank() || size.size() != x.rank())
		throw ShapeError("slice: start/size ranks differ from " + shape_str(x.shape));
	std::vector<uint32_t> attrs;
	for (std::size_t i = 0; i < x.rank(); i++) {
		if (start[i] < 0 || size[i] < 1 || start[i] + size[i] > x.shape[i])
			throw ShapeError("slice out of range of " + shape_str(x.shape));
		attrs.push_back(uint32_t(start[i]));
	}
	return tr(x).op(FLAXDRM_OP_SLICE, 0, {x}, size, attrs, x.dtype);
}

Value sum(const Value& x, const std::vector<int>& axes, bool k) { return reduce(FLAXDRM_OP_REDUCE_SUM, x, axes, k); }
Value mean(const Value& x, const std::vector<int>& axes, bool k) { return reduce(FLAXDRM_OP_REDUCE_MEAN, x, axes, k); }
Value max(const Value& x, const std::vector<int>& axes, bool k) { return reduce(FLAXDRM_OP_REDUCE_MAX, x, axes, k); }

Value avg_pool(const Value& x, const Shape& window, const Shape& strides, const std::string& padding,
	       bool count_include_pad)
{
	return pool(FLAXDRM_OP_AVG_POOL, x, window, strides, nullptr, padding, count_include_pad);
}
Value avg_pool(const Value& x, const Shape& window, const Shape& strides, const PadPairs& padding,
	       bool count_include_pad)
{
	return pool(FLAXDRM_OP_AVG_POOL, x, window, strides, &padding, {}, count_include_pad);
}
Value max_pool(const Value& x, const Shape& window, const Shape& strides, const std::string& padding)
{
	return pool(FLAXDRM_OP_MAX_POOL, x, window, strides, nullptr, padding, true);
}
Value max_pool(const Value& x, const Shape& window, const Shape& strides, const PadPairs& padding)
{
	return pool(FLAXDRM_OP_MAX_POOL, x, window, strides, &padding, {}, true);
}

} // namespace flaxdrm::flax
