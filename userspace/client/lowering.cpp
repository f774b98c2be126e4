// Lowering a model to the UAPI program format (see lowering.hpp).
#include "flaxdrm/lowering.hpp"

#include <cstring>

#include "flaxdrm/error.hpp"

namespace flaxdrm {
namespace {

class Lowerer {
public:
	Lowerer(const Model& model, std::span<const uint32_t> handles, Program& p)
		: model_(model), handles_(handles), p_(p) {}

	// Returns the tensor holding m's output for input tensor `in`.
	uint32_t lower(const Module& m, uint32_t in)
	{
		switch (m.kind) {
		case ModuleKind::Compact:
		case ModuleKind::Sequential:
			for (const Module& c : m.layers)
				in = lower(c, in);
			return in;
		case ModuleKind::Dense: {
			Shape x = shape_of(in);
			if (x.empty())
				throw Error(model_.source + ": Dense at " + m.display_path() +
					    " needs an input with at least one dimension");
			uint32_t handle = handle_of(m);
			drm_flaxdrm_op op{};
			op.opcode = FLAXDRM_OP_DENSE;
			op.module = handle;
			op.inputs[0] = in;
			op.inputs[1] = variable(m, handle, "kernel", {x.back(), m.features});
			op.num_inputs = 2;
			if (m.use_bias)
				op.inputs[op.num_inputs++] = variable(m, handle, "bias", {m.features});
			Shape y = x;
			y.back() = m.features;
			op.outputs[0] = temp(y);
			op.num_outputs = 1;
			return push(op, m);
		}
		case ModuleKind::Relu: {
			drm_flaxdrm_op op{};
			op.opcode = FLAXDRM_OP_RELU;
			op.inputs[0] = in;
			op.num_inputs = 1;
			op.outputs[0] = temp(shape_of(in));
			op.num_outputs = 1;
			return push(op, m);
		}
		}
		return in;
	}

private:
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

	uint32_t temp(const Shape& s) { return add(make_tensor(FLAXDRM_TENSOR_TEMP, s)); }

	uint32_t variable(const Module& m, uint32_t handle, const char* name, const Shape& s)
	{
		uint32_t t = add(make_tensor(FLAXDRM_TENSOR_VARIABLE, s, handle, "params", name));
		std::string path = "params/" + (m.path.empty() ? std::string() : m.path + "/") + name;
		p_.variables.push_back({t, path, m.index});
		return t;
	}

	uint32_t push(const drm_flaxdrm_op& op, const Module& m)
	{
		if (p_.ops.size() >= FLAXDRM_MAX_OPS)
			throw Error(model_.source + ": the program needs more than " + std::to_string(FLAXDRM_MAX_OPS) +
				    " ops");
		p_.ops.push_back(op);
		p_.op_modules.push_back(&m);
		return op.outputs[0];
	}

	const Model& model_;
	std::span<const uint32_t> handles_;
	Program& p_;
};

} // namespace

drm_flaxdrm_tensor make_tensor(uint32_t kind, const Shape& shape, uint32_t module, const std::string& collection,
			       const std::string& name)
{
	drm_flaxdrm_tensor t{};
	if (shape.size() > FLAXDRM_MAX_RANK)
		throw Error("shape " + shape_str(shape) + " has more than " + std::to_string(FLAXDRM_MAX_RANK) +
			    " dimensions");
	t.kind = kind;
	t.dtype = FLAXDRM_DTYPE_F32;
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

Program lower(const Model& model, const Shape& input_shape, std::span<const uint32_t> handles)
{
	Program p;
	p.input = 0;
	p.tensors.push_back(make_tensor(FLAXDRM_TENSOR_INPUT, input_shape));
	uint32_t out = Lowerer(model, handles, p).lower(model.root, p.input);
	if (p.ops.empty())
		throw Error(model.source + ": the model has no layers: nothing to run");
	// the last op writes the program's output
	p.tensors[out].kind = FLAXDRM_TENSOR_OUTPUT;
	p.output = out;
	const auto& d = p.tensors[out];
	p.output_shape.assign(d.dims, d.dims + d.rank);
	return p;
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
