// The Module core: attributes, naming, scopes, variables, rngs, init/apply.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "flaxdrm/flax/backend.hpp"
#include "flaxdrm/flax/module.hpp"
#include "session.hpp"

namespace flaxdrm::flax {

// ---------------------------------------------------------------- helpers
namespace {

std::string join(const std::vector<std::string>& parts, const std::string& sep)
{
	std::string s;
	for (std::size_t i = 0; i < parts.size(); i++)
		s += (i ? sep : "") + parts[i];
	return s;
}

std::string json_escape(const std::string& s)
{
	std::string o;
	for (char c : s) {
		if (c == '"' || c == '\\')
			o += '\\';
		o += c;
	}
	return o;
}

std::string attr_json(const AttrValue& v)
{
	struct V {
		std::string operator()(bool b) const { return b ? "true" : "false"; }
		std::string operator()(int64_t i) const { return std::to_string(i); }
		std::string operator()(double d) const
		{
			char b[32];
			std::snprintf(b, sizeof(b), "%.9g", d);
			return b;
		}
		std::string operator()(const std::string& s) const { return "\"" + json_escape(s) + "\""; }
		std::string operator()(const std::vector<int64_t>& v) const
		{
			std::string s = "[";
			for (std::size_t i = 0; i < v.size(); i++)
				s += (i ? "," : "") + std::to_string(v[i]);
			return s + "]";
		}
		std::string operator()(const PadPairs& v) const
		{
			std::string s = "[";
			for (std::size_t i = 0; i < v.size(); i++)
				s += (i ? "," : "") + std::string("[") + std::to_string(v[i].first) + "," +
				     std::to_string(v[i].second) + "]";
			return s + "]";
		}
		std::string operator()(const Initializer&) const { return {}; }
	};
	return std::visit(V{}, v);
}

std::string config_json(const Module& m)
{
	std::string s = "{";
	bool first = true;
	for (const auto& [k, v] : m.attributes()) {
		std::string j = attr_json(v);
		if (j.empty())
			continue;
		std::string item = (first ? "" : ",") + std::string("\"") + json_escape(k) + "\":" + j;
		if (s.size() + item.size() + 1 > FLAXDRM_MAX_CONFIG_SIZE)
			break;
		s += item;
		first = false;
	}
	return s + "}";
}

std::string collection_of(const std::string& path)
{
	return path.substr(0, path.find('/'));
}

std::string where(const Module& m)
{
	return "\"" + m.path_str() + "\" (" + m.class_name() + ")";
}

} // namespace

std::string attr_repr(const AttrValue& v)
{
	struct V {
		std::string operator()(bool b) const { return b ? "True" : "False"; }
		std::string operator()(int64_t i) const { return std::to_string(i); }
		std::string operator()(double d) const
		{
			char b[32];
			std::snprintf(b, sizeof(b), "%g", d);
			return b;
		}
		std::string operator()(const std::string& s) const { return "'" + s + "'"; }
		std::string operator()(const std::vector<int64_t>& v) const { return shape_str(v); }
		std::string operator()(const PadPairs& v) const
		{
			std::string s = "(";
			for (std::size_t i = 0; i < v.size(); i++)
				s += (i ? ", " : "") + std::string("(") + std::to_string(v[i].first) + ", " +
				     std::to_string(v[i].second) + ")";
			return s + ")";
		}
		std::string operator()(const Initializer&) const { return "<initializer>"; }
	};
	return std::visit(V{}, v);
}

Variables collection(const Variables& variables, const std::string& name)
{
	Variables out;
	for (const auto& [p, v] : variables)
		if (collection_of(p) == name)
			out.emplace(p, v);
	return out;
}

std::set<std::string> collections(const Variables& variables)
{
	std::set<std::string> out;
	for (const auto& [p, v] : variables)
		out.insert(collection_of(p));
	return out;
}

std::string tree_str(const Variables& variables)
{
	// nested braces from the sorted flat paths
	std::string s;
	std::vector<std::string> open;
	auto split_path = [](const std::string& p) {
		std::vector<std::string> parts;
		std::stringstream ss(p);
		std::string x;
		while (std::getline(ss, x, '/'))
			parts.push_back(x);
		return parts;
	};
	bool first = true;
	for (const auto& [p, v] : variables) {
		auto parts = split_path(p);
		std::size_t common = 0;
		while (common < open.size() && common + 1 < parts.size() && open[common] == parts[common])
			common++;
		while (open.size() > common) {
			s += "}";
			open.pop_back();
		}
		if (!first)
			s += ", ";
		first = false;
		for (std::size_t i = common; i + 1 < parts.size(); i++) {
			s += parts[i] + ": {";
			open.push_back(parts[i]);
		}
		s += parts.back() + ": " + shape_str(v.value.shape);
	}
	while (!open.empty()) {
		s += "}";
		open.pop_back();
	}
	return "{" + s + "}";
}

// ---------------------------------------------------------------- session
uint32_t Session::scope(const Module& m, uint32_t parent, bool auto_named)
{
	const std::string path = join(m.path(), "/");
	auto it = by_path.find(path);
	if (it != by_path.end())
		return it->second;
	ScopeInfo s;
	s.id = uint32_t(scopes.size() + 1);
	s.parent = parent;
	s.name = m.name();
	s.path = path;
	s.class_name = m.class_name();
	s.kind = m.kind();
	s.auto_named = auto_named;
	s.config = config_json(m);
	scopes.push_back(s);
	by_path[path] = s.id;
	return s.id;
}

Session::DeviceState& Session::device(const std::shared_ptr<Backend>& backend)
{
	auto& d = devices[backend.get()];
	d.backend = backend;
	return d;
}

void Session::release()
{
	for (auto& [ptr, d] : devices) {
		for (auto& [key, e] : cache) {
			auto it = e.programs.find(ptr);
			if (it == e.programs.end())
				continue;
			try {
				d.backend->destroy_program(it->second);
			} catch (...) {
			}
			e.programs.erase(it);
		}
		auto root = d.handles.find(1);
		if (root != d.handles.end()) {
			if (d.setup_done) {
				try {
					d.backend->cleanup(root->second);
				} catch (...) {
				}
			}
			try {
				d.backend->destroy_module(root->second);
			} catch (...) {
			}
		}
	}
	devices.clear();
}

// ------------------------------------------------------------ call frames
class CallFrame {
public:
	explicit CallFrame(Module& m) : m_(m)
	{
		if (!m.ctx_)
			throw UnboundModuleError("Can't call methods of the unbound module " + m.class_name() +
						 ": use init()/apply(), or bind() it to variables first");
		if (!m.ctx_->trace)
			throw UnboundModuleError("module " + where(m) +
						 " called with symbolic values outside a trace (call a bound "
						 "module with concrete arrays)");
		m.ensure_setup();
		if (m.call_depth_ == 0) {
			// a new call recreates the compact children (Dense_0 again)
			m.call_children_.clear();
			m.autoname_.clear();
			m.call_names_.clear();
		}
		m.call_depth_++;
		saved_ = m.ctx_->trace->where;
		m.ctx_->trace->where = m.class_name() + " " + m.path_str();
	}
	~CallFrame()
	{
		m_.call_depth_--;
		if (m_.ctx_ && m_.ctx_->trace)
			m_.ctx_->trace->where = saved_;
	}

private:
	Module& m_;
	std::string saved_;
};

// ----------------------------------------------------------------- module
Module::Module(std::string class_name) : class_name_(std::move(class_name)) {}

Module::Module(const Module& o) : class_name_(o.class_name_), attrs_(o.attrs_), constructed_(true) {}

Module::~Module() = default;

std::unique_ptr<Module> Module::clone(const std::map<std::string, AttrValue>& overrides) const
{
	auto c = clone();
	for (const auto& [k, v] : overrides) {
		if (!c->attrs_.count(k))
			throw Error("clone: " + class_name_ + " has no attribute \"" + k + "\"");
		c->attrs_[k] = v;
	}
	return c;
}

const AttrValue& Module::attr_value(const std::string& name) const
{
	auto it = attrs_.find(name);
	if (it == attrs_.end())
		throw Error("Module " + class_name_ + " has no attribute \"" + name + "\"");
	return it->second;
}

void Module::declare_attr(const std::string& name, AttrValue value)
{
	attrs_[name] = std::move(value);
}

void Module::set_attr(const std::string& name, const AttrValue& value)
{
	if (attrs_.count(name))
		throw SetAttributeFrozenModuleError("Can't set " + name + "=" + attr_repr(value) +
						    " for Module of type " + class_name_ +
						    ": Module instance is frozen outside of setup method (construction "
						    "attributes are fixed; use clone({{\"" + name + "\", ...}}))");
	throw Error("Module " + class_name_ + " has no attribute \"" + name + "\"");
}

std::vector<std::string> Module::path() const
{
	std::vector<std::string> p;
	for (const Module* m = this; m && m->parent_; m = m->parent_)
		p.push_back(m->name_);
	std::reverse(p.begin(), p.end());
	return p;
}

std::string Module::path_str() const
{
	return "/" + join(path(), "/");
}

bool Module::is_initializing() const
{
	return ctx_ && ctx_->initializing;
}

bool Module::is_mutable_collection(const std::string& c) const
{
	return ctx_ && ctx_->mut.contains(c);
}

Trace& Module::trace() const
{
	if (!ctx_ || !ctx_->trace)
		throw UnboundModuleError("module " + class_name_ + " is not being traced (not bound or called outside "
					 "init/apply)");
	return *ctx_->trace;
}

Module& Module::root()
{
	Module* m = this;
	while (m->parent_)
		m = m->parent_;
	return *m;
}

std::shared_ptr<Session> Module::session()
{
	if (!session_)
		session_ = std::make_shared<Session>();
	return session_;
}

void Module::ensure_setup()
{
	if (setup_done_)
		return;
	setup_done_ = true;
	in_setup_ = true;
	try {
		setup();
	} catch (...) {
		in_setup_ = false;
		throw;
	}
	in_setup_ = false;
}

void Module::reset_binding()
{
	for (auto& c : setup_children_)
		c->reset_binding();
	for (auto& c : call_children_)
		c->reset_binding();
	setup_children_.clear();
	call_children_.clear();
	autoname_.clear();
	setup_names_.clear();
	call_names_.clear();
	children_by_name_.clear();
	setup_done_ = false;
	call_depth_ = 0;
	ctx_ = nullptr;
}

void Module::reserve_name(const std::string& name, const std::string& what, const std::string& collection)
{
	auto taken = [&](const std::map<std::string, std::set<std::string>>& names) {
		auto it = names.find(name);
		if (it == names.end())
			return false;
		if (collection.empty() || it->second.count(""))
			return true; // a child, or anything with a child's name
		return it->second.count(collection) > 0;
	};
	if (taken(setup_names_) || taken(call_names_))
		throw NameInUseError("Could not create " + what + " \"" + name + "\" in Module " + where(*this) +
				     ": Name in use.");
	(in_setup_ ? setup_names_ : call_names_)[name].insert(collection);
}

void Module::bind_child(Module& c, const std::string& name, bool auto_named)
{
	c.parent_ = this;
	c.name_ = name;
	c.auto_named_ = auto_named;
	c.ctx_ = ctx_;
	c.constructed_ = true;
	c.scope_id_ = ctx_->session->scope(c, scope_id_, auto_named);
}

Module& Module::adopt(std::unique_ptr<Module> m, const std::string& name)
{
	if (!ctx_ || (!in_setup_ && call_depth_ == 0))
		throw AssignSubModuleError("Submodule " + m->class_name() +
					   " must be defined in setup() or inside a compact-style call (call()) of its "
					   "parent " + class_name_ +
					   (ctx_ ? " " + path_str() : std::string(" (unbound)")) +
					   ", not outside them");
	if (m->parent_)
		throw AssignSubModuleError("Submodule " + m->class_name() + " already has a parent " +
					   m->parent_->path_str());
	std::string n = name;
	bool auto_named = n.empty();
	if (auto_named)
		n = m->class_name() + "_" + std::to_string(autoname_[m->class_name()]++);
	if (n.find('/') != std::string::npos || n.size() >= FLAXDRM_NAME_LEN)
		throw Error("invalid submodule name \"" + n + "\" in " + where(*this) +
			    " (no '/', at most 63 bytes)");
	reserve_name(n, "submodule", "");
	Module& ref = *m;
	bind_child(ref, n, auto_named);
	if (in_setup_) {
		children_by_name_[n] = &ref;
		setup_children_.push_back(std::move(m));
	} else {
		call_children_.push_back(std::move(m));
	}
	return ref;
}

std::vector<Module*> Module::child_list(const std::string& attr, std::vector<std::unique_ptr<Module>> ms)
{
	std::vector<Module*> out;
	for (std::size_t i = 0; i < ms.size(); i++)
		out.push_back(&adopt(std::move(ms[i]), attr + "_" + std::to_string(i)));
	return out;
}

std::map<std::string, Module*> Module::child_map(const std::string& attr,
						  std::map<std::string, std::unique_ptr<Module>> ms)
{
	std::map<std::string, Module*> out;
	for (auto& [k, m] : ms)
		out[k] = &adopt(std::move(m), attr + "_" + k);
	return out;
}

Module* Module::submodule(const std::string& name)
{
	if (ctx_)
		ensure_setup();
	auto it = children_by_name_.find(name);
	if (it != children_by_name_.end())
		return it->second;
	for (auto& c : call_children_)
		if (c->name_ == name)
			return c.get();
	return nullptr;
}

std::vector<Module*> Module::submodules() const
{
	std::vector<Module*> out;
	for (auto& c : setup_children_)
		out.push_back(c.get());
	for (auto& c : call_children_)
		out.push_back(c.get());
	return out;
}

// ------------------------------------------------------------- variables
Value Module::declare(const std::string& collection, const std::string& name, const Initializer* init,
		      const Shape& shape, bool is_param)
{
	if (!ctx_)
		throw UnboundModuleError("Can't declare " + collection + "/" + name + " in the unbound module " +
					 class_name_);
	const char* kind = is_param ? "param" : "variable";
	reserve_name(name, kind, collection);
	const std::vector<std::string> p = path();
	const std::string vpath = collection + "/" + (p.empty() ? "" : join(p, "/") + "/") + name;
	auto it = ctx_->vars.find(vpath);
	if (it != ctx_->vars.end()) {
		if (init && it->second.value.shape != shape)
			throw ScopeParamShapeError("Initializer expected to generate shape " + shape_str(shape) +
						   " but got shape " + shape_str(it->second.value.shape) +
						   " instead for " + kind + " \"" + name + "\" in \"" + path_str() +
						   "\" (" + class_name_ + ")");
	} else if (init && ctx_->mut.contains(collection)) {
		Key key{};
		if (is_param)
			key = make_rng("params");
		Tensor t = (*init)(key, shape);
		if (t.shape != shape)
			throw ScopeParamShapeError("the initializer of " + std::string(kind) + " \"" + name + "\" in \"" +
						   path_str() + "\" made shape " + shape_str(t.shape) + ", expected " +
						   shape_str(shape));
		it = ctx_->vars.emplace(vpath, Variable{std::move(t), "float32"}).first;
	} else {
		bool empty = true;
		for (const auto& [vp, v] : ctx_->vars)
			if (collection_of(vp) == collection)
				empty = false;
		if (empty)
			throw ScopeCollectionNotFound("Tried to access \"" + name + "\" from collection \"" + collection +
						      "\" in \"" + path_str() + "\" (" + class_name_ +
						      ") but the collection is empty.");
		if (is_param)
			throw ScopeParamNotFoundError("Could not find parameter named \"" + name + "\" in scope \"" +
						      path_str() + "\" (" + class_name_ + ").");
		throw ScopeVariableNotFoundError("No Variable named \"" + name + "\" for collection \"" + collection +
						 "\" exists in \"" + path_str() + "\" (" + class_name_ + ").");
	}
	return trace().variable(scope_id_, collection, name, vpath, it->second.value.shape);
}

Value Module::param(const std::string& name, const Initializer& init, const Shape& shape)
{
	return declare("params", name, &init, shape, true);
}

Value Module::variable(const std::string& collection, const std::string& name, const Initializer& init,
		       const Shape& shape)
{
	return declare(collection, name, &init, shape, collection == "params");
}

Value Module::get_variable(const std::string& collection, const std::string& name)
{
	return declare(collection, name, nullptr, {}, collection == "params");
}

bool Module::has_variable(const std::string& collection, const std::string& name) const
{
	if (!ctx_)
		return false;
	const std::vector<std::string> p = path();
	return ctx_->vars.count(collection + "/" + (p.empty() ? "" : join(p, "/") + "/") + name) > 0;
}

uint32_t Module::write_target(const std::string& collection, const std::string& name)
{
	if (!ctx_)
		throw UnboundModuleError("Can't write " + collection + "/" + name + " in an unbound module");
	if (!ctx_->mut.contains(collection))
		throw ModifyScopeVariableError("Cannot update variable \"" + name + "\" in \"" + path_str() + "\" (" +
					       class_name_ + ") because collection \"" + collection +
					       "\" is immutable (pass it as mutable to apply)");
	const std::vector<std::string> p = path();
	const std::string vpath = collection + "/" + (p.empty() ? "" : join(p, "/") + "/") + name;
	auto it = ctx_->vars.find(vpath);
	if (it == ctx_->vars.end())
		throw ScopeVariableNotFoundError("No Variable named \"" + name + "\" for collection \"" + collection +
						 "\" exists in \"" + path_str() + "\" (" + class_name_ + ").");
	Trace& t = trace();
	Value v = t.variable(scope_id_, collection, name, vpath, it->second.value.shape);
	for (auto& var : t.vars)
		if (var.tensor == v.index) {
			if (var.written)
				throw ModifyScopeVariableError("variable \"" + name + "\" in \"" + path_str() +
							       "\" is written twice in one call");
			var.written = true;
		}
	return v.index;
}

void Module::put_variable(const std::string& collection, const std::string& name, const Value& v)
{
	const uint32_t target = write_target(collection, name);
	Trace& t = trace();
	const auto& desc = t.tensors[target];
	if (Shape(desc.dims, desc.dims + desc.rank) != v.shape)
		throw ScopeParamShapeError("put_variable \"" + name + "\" in \"" + path_str() + "\": value of shape " +
					   shape_str(v.shape) + ", the variable has shape " +
					   shape_str(Shape(desc.dims, desc.dims + desc.rank)));
	if (t.tensors[v.index].kind == FLAXDRM_TENSOR_TEMP) {
		// the op that made v writes the variable instead; later readers follow
		for (auto& op : t.ops) {
			for (uint32_t i = 0; i < op.num_inputs; i++)
				if (op.inputs[i] == v.index)
					op.inputs[i] = target;
			for (uint32_t i = 0; i < op.num_outputs; i++)
				if (op.outputs[i] == v.index)
					op.outputs[i] = target;
		}
		// leave a harmless TEMP behind: make it a copy of the variable
		t.ops.push_back({});
		auto& op = t.ops.back();
		op.opcode = FLAXDRM_OP_RESHAPE;
		op.num_inputs = op.num_outputs = 1;
		op.inputs[0] = target;
		op.outputs[0] = v.index;
		t.op_where.push_back(t.where);
	} else {
		drm_flaxdrm_op op{};
		op.opcode = FLAXDRM_OP_RESHAPE;
		op.num_inputs = op.num_outputs = 1;
		op.inputs[0] = v.index;
		op.outputs[0] = target;
		t.ops.push_back(op);
		t.op_where.push_back(t.where);
	}
}

Key Module::make_rng(const std::string& stream)
{
	if (!ctx_)
		throw UnboundModuleError("make_rng on the unbound module " + class_name_);
	auto it = ctx_->rngs.find(stream);
	if (it == ctx_->rngs.end())
		it = ctx_->rngs.find("params"); // Flax falls back to the params stream
	if (it == ctx_->rngs.end())
		throw InvalidRngError("Module " + where(*this) + " needs PRNG for \"" + stream +
				      "\" but no \"" + stream + "\" (or \"params\") rng was given; pass it in rngs");
	const std::string counter = path_str() + "#" + stream;
	uint32_t n = ctx_->rng_counters[counter]++;
	return fold_in(fold_in(fold_in(it->second, path_str()), stream), n);
}

// ------------------------------------------------------------------ calls
Value Module::call(const Value&)
{
	throw Error("Module " + class_name_ + " does not define call(x)");
}

Value Module::call_n(const std::vector<Value>& xs)
{
	if (xs.size() != 1)
		throw Error("Module " + class_name_ + " takes one input, got " + std::to_string(xs.size()));
	return call(xs[0]);
}

Value Module::dispatch(const std::string& method, const std::vector<Value>&)
{
	throw Error("Module " + class_name_ + " has no method \"" + method + "\"");
}

Value Module::operator()(const Value& x)
{
	return (*this)(std::vector<Value>{x});
}

Value Module::operator()(const std::vector<Value>& xs)
{
	CallFrame f(*this);
	return call_n(xs);
}

Value Module::call_method(const std::string& method, const std::vector<Value>& xs)
{
	CallFrame f(*this);
	return method.empty() ? call_n(xs) : dispatch(method, xs);
}

Value Module::run_method(const std::string& method, const std::vector<Value>& xs)
{
	return call_method(method, xs);
}

// -------------------------------------------------------------- init/apply
namespace {

std::vector<Value> trace_inputs(Trace& t, const std::vector<Array>& inputs)
{
	std::vector<Value> ins;
	for (std::size_t i = 0; i < inputs.size(); i++) {
		const Array& a = inputs[i];
		if (num_elements(a.shape) != a.data.size())
			throw Error("input of shape " + shape_str(a.shape) + " holds " + std::to_string(a.data.size()) +
				    " values");
		if (a.dtype != float32 && a.dtype != float16 && a.dtype != int32)
			throw Error("input " + std::to_string(i) + ": inputs are float32, float16 or int32, got " +
				    dtype_name(a.dtype));
		ins.push_back(t.input(a.shape, a.dtype));
	}
	return ins;
}

} // namespace

Variables Module::init(Key rng, const std::vector<Array>& inputs, const InitOptions& options)
{
	return init(Rngs{{"params", rng}}, inputs, options);
}

Variables Module::init(const Rngs& rngs, const std::vector<Array>& inputs, const InitOptions& options)
{
	if (parent_ || ctx_)
		throw Error("init() is for an unbound root module (" + class_name_ + " is bound or has a parent)");
	auto s = session();
	Context ctx;
	ctx.initializing = true;
	ctx.mut = Mutable::All();
	ctx.rngs = rngs;
	ctx.session = s.get();
	auto tr = std::make_shared<Trace>();
	ctx.trace = tr.get();
	ctx_ = &ctx;
	struct Reset {
		Module& m;
		~Reset() { m.reset_binding(); }
	} reset{*this};
	scope_id_ = s->scope(*this, 0, false);
	Value out = run_method(options.method, trace_inputs(*tr, inputs));
	tr->set_output(out);
	tr->check();
	s->stats.traces++;
	s->last_trace = tr;
	return std::move(ctx.vars);
}

Tensor Module::apply(const Variables& variables, const std::vector<Array>& inputs, const ApplyOptions& options)
{
	return run_apply(variables, inputs, Mutable{}, options).first;
}

std::pair<Tensor, Variables> Module::apply(const Variables& variables, const std::vector<Array>& inputs,
					   const Mutable& mut, const ApplyOptions& options)
{
	return run_apply(variables, inputs, mut, options);
}

std::pair<Tensor, Variables> Module::run_apply(const Variables& vars, const std::vector<Array>& inputs,
					       const Mutable& mut, const ApplyOptions& options)
{
	if (parent_)
		throw Error("apply() is for a root module, " + path_str() + " has a parent");
	if (ctx_ && !bound_ctx_)
		throw Error("apply() on a module that is being traced");
	auto s = session();
	std::shared_ptr<Backend> backend = options.backend ? options.backend
					   : bound_backend_ ? bound_backend_
							    : Backend::default_backend();

	// the cache key: everything the trace depends on
	std::string key = options.method + "|";
	for (const Array& a : inputs)
		key += std::to_string(a.dtype) + shape_str(a.shape);
	key += "|";
	if (mut.all)
		key += "*";
	for (const auto& c : mut.collections)
		key += c + ",";
	key += "|";
	for (const auto& [n, k] : options.rngs)
		key += n + key_str(k);
	key += "|";
	for (const auto& [p, v] : vars)
		key += p + shape_str(v.value.shape) + ";";

	auto [eit, fresh] = s->cache.try_emplace(key);
	Session::Entry& e = eit->second;
	if (fresh) {
		try {
			Context local;
			Context* ctx = bound_ctx_ ? bound_ctx_.get() : &local;
			if (!bound_ctx_)
				ctx->vars = vars;
			ctx->initializing = false;
			ctx->mut = mut;
			if (!bound_ctx_ || !options.rngs.empty())
				ctx->rngs = options.rngs;
			ctx->rng_counters.clear();
			ctx->session = s.get();
			auto tr = std::make_shared<Trace>();
			ctx->trace = tr.get();
			struct Guard {
				Module& m;
				Context* ctx;
				bool reset;
				~Guard()
				{
					ctx->trace = nullptr;
					if (reset)
						m.reset_binding();
				}
			} guard{*this, ctx, !bound_ctx_};
			ctx_ = ctx;
			scope_id_ = s->scope(*this, 0, false);
			Value out = run_method(options.method, trace_inputs(*tr, inputs));
			tr->set_output(out);
			tr->check();
			for (const auto& [p, v] : ctx->vars)
				if (!vars.count(p))
					e.created.emplace(p, v);
			if (bound_ctx_) // keep the bound variables as given
				for (const auto& [p, v] : e.created)
					ctx->vars.erase(p);
			e.trace = tr;
			s->stats.traces++;
			s->last_trace = tr;
		} catch (...) {
			s->cache.erase(eit);
			throw;
		}
	}
	const Trace& t = *e.trace;

	// the module tree, variables and setup on the backend
	auto& d = s->device(backend);
	for (const ScopeInfo& sc : s->scopes) {
		if (d.handles.count(sc.id))
			continue;
		const uint32_t parent = sc.parent ? d.handles.at(sc.parent) : 0;
		std::string chosen;
		uint32_t h = backend->create_module(parent, sc.kind, sc.auto_named ? "" : sc.name,
						    sc.kind == FLAXDRM_KIND_MODULE ? sc.class_name : "", sc.config, &chosen);
		d.handles[sc.id] = h;
		if (sc.parent && chosen != sc.name)
			throw Error(backend->description() + " named the " + sc.class_name + " at /" + sc.path + " \"" +
				    chosen + "\", Flax's name is \"" + sc.name + "\"");
	}
	for (const auto& tv : t.vars) {
		const Variable* val = nullptr;
		if (auto it = vars.find(tv.path); it != vars.end())
			val = &it->second;
		else if (auto it2 = e.created.find(tv.path); it2 != e.created.end())
			val = &it2->second;
		if (!val)
			throw Error("variable " + tv.path + " is missing");
		auto b = d.bound.find(tv.path);
		if (b == d.bound.end() || b->second.shape != val->value.shape || b->second.data != val->value.data) {
			backend->bind_variable(d.handles.at(tv.scope), tv.collection, tv.name, val->value);
			d.bound[tv.path] = val->value;
		}
	}
	const uint32_t root_handle = d.handles.at(1);
	if (!d.setup_done) {
		backend->setup(root_handle);
		d.setup_done = true;
		s->stats.setups++;
	}
	uint32_t program;
	if (auto pit = e.programs.find(backend.get()); pit != e.programs.end()) {
		program = pit->second;
	} else {
		std::vector<drm_flaxdrm_tensor> tensors = t.tensors;
		std::vector<drm_flaxdrm_op> ops = t.ops;
		for (auto& x : tensors)
			if (x.kind == FLAXDRM_TENSOR_VARIABLE)
				x.module = d.handles.at(x.module);
		for (auto& op : ops)
			if (op.module)
				op.module = d.handles.at(op.module);
		program = backend->create_program(root_handle, tensors, ops, [&t](uint32_t op, uint32_t tensor) {
			std::string w;
			for (const std::string& x : {t.describe_op(op), t.describe_tensor(tensor)})
				if (!x.empty())
					w += (w.empty() ? "" : ", ") + x;
			return w;
		});
		e.programs[backend.get()] = program;
		s->stats.program_creates++;
	}

	// inputs and output
	std::vector<std::vector<uint8_t>> bufs;
	std::vector<IoBinding> io;
	for (std::size_t i = 0; i < inputs.size(); i++) {
		const Array& a = inputs[i];
		std::vector<uint8_t> b;
		if (a.dtype == FLAXDRM_DTYPE_I32) {
			b.resize(a.data.size() * 4);
			for (std::size_t j = 0; j < a.data.size(); j++) {
				int32_t v = int32_t(a.data[j]);
				std::memcpy(b.data() + 4 * j, &v, 4);
			}
		} else if (a.dtype == FLAXDRM_DTYPE_F32) {
			b.resize(a.data.size() * 4);
			std::memcpy(b.data(), a.data.data(), b.size());
		} else if (a.dtype == FLAXDRM_DTYPE_F16) {
			// round to nearest even, as jnp.asarray(x, float16)
			b.resize(a.data.size() * 2);
			for (std::size_t j = 0; j < a.data.size(); j++) {
				const _Float16 h = static_cast<_Float16>(a.data[j]);
				std::memcpy(b.data() + 2 * j, &h, 2);
			}
		} else {
			throw Error("input " + std::to_string(i) + ": inputs are float32, float16 or int32, got " +
				    dtype_name(a.dtype));
		}
		bufs.push_back(std::move(b));
		io.push_back({t.inputs[i], bufs.back().data(), bufs.back().size(), false});
	}
	Tensor out(t.output_shape);
	io.push_back({t.output, out.data.data(), out.data.size() * sizeof(float), true});
	std::vector<std::string> cols(mut.collections.begin(), mut.collections.end());
	backend->call(root_handle, program, io, cols, mut.all);
	s->stats.calls++;

	Variables updates;
	if (!mut.empty()) {
		for (const auto& [p, v] : vars)
			if (mut.contains(collection_of(p)))
				updates[p] = v;
		for (const auto& [p, v] : e.created)
			if (mut.contains(collection_of(p)))
				updates[p] = v;
		for (const auto& tv : t.vars) {
			if (!tv.written)
				continue;
			Tensor nv = backend->read_variable(d.handles.at(tv.scope), tv.collection, tv.name);
			updates[tv.path] = Variable{nv, "float32"};
			d.bound[tv.path] = std::move(nv);
		}
	}
	return {std::move(out), std::move(updates)};
}

Tensor Module::operator()(const Array& x)
{
	return (*this)(std::vector<Array>{x});
}

Tensor Module::operator()(const std::vector<Array>& xs)
{
	if (!bound_ctx_)
		throw UnboundModuleError("Can't call the unbound module " + class_name_ +
					 " with arrays: use apply(), or bind() it first");
	return run_apply(bound_ctx_->vars, xs, Mutable{}, ApplyOptions{}).first;
}

std::unique_ptr<Module> Module::bind(const Variables& variables, const Rngs& rngs, std::shared_ptr<Backend> backend)
{
	if (parent_)
		throw Error("bind() is for a root module");
	auto c = clone();
	c->session_ = session();
	c->bound_ctx_ = std::make_unique<Context>();
	c->bound_ctx_->vars = variables;
	c->bound_ctx_->rngs = rngs;
	c->bound_ctx_->session = c->session_.get();
	c->ctx_ = c->bound_ctx_.get();
	c->scope_id_ = c->session_->scope(*c, 0, false);
	c->bound_backend_ = std::move(backend);
	return c;
}

std::pair<std::unique_ptr<Module>, Variables> Module::unbind() const
{
	if (!bound_ctx_)
		throw UnboundModuleError("unbind() on the unbound module " + class_name_);
	return {clone(), bound_ctx_->vars};
}

const Variables& Module::variables() const
{
	if (!ctx_)
		throw UnboundModuleError("variables() of the unbound module " + class_name_);
	return ctx_->vars;
}

void Module::cleanup()
{
	if (session_)
		session_->release();
}

Module::Stats Module::stats() const
{
	return session_ ? session_->stats : Stats{};
}

std::map<std::string, uint32_t> Module::backend_modules(const std::shared_ptr<Backend>& backend) const
{
	std::map<std::string, uint32_t> out;
	if (!session_)
		return out;
	auto it = session_->devices.find(backend.get());
	if (it == session_->devices.end())
		return out;
	for (const ScopeInfo& sc : session_->scopes)
		if (auto h = it->second.handles.find(sc.id); h != it->second.handles.end())
			out[sc.path] = h->second;
	return out;
}

const Trace* Module::last_trace() const
{
	return session_ ? session_->last_trace.get() : nullptr;
}

std::string Module::tabulate(Key rng, const std::vector<Array>& inputs)
{
	const Variables v = init(rng, inputs);
	auto s = session();
	struct Row {
		std::string path, cls, params;
		uint64_t count = 0;
	};
	std::vector<Row> rows;
	uint64_t total = 0;
	std::map<std::string, uint64_t> per_collection;
	for (const ScopeInfo& sc : s->scopes) {
		Row r{sc.path.empty() ? "" : sc.path, sc.class_name, {}, 0};
		for (const auto& [p, var] : v) {
			const std::string col = collection_of(p);
			std::string rest = p.substr(col.size() + 1);
			const std::string prefix = sc.path.empty() ? "" : sc.path + "/";
			if (rest.compare(0, prefix.size(), prefix) != 0)
				continue;
			rest = rest.substr(prefix.size());
			if (rest.find('/') != std::string::npos)
				continue;
			const uint64_t n = num_elements(var.value.shape);
			r.params += (r.params.empty() ? "" : " ") + (col == "params" ? "" : col + "/") + rest + ": " +
				    shape_str(var.value.shape);
			r.count += n;
			per_collection[col] += n;
			total += n;
		}
		rows.push_back(r);
	}
	auto commas = [](uint64_t n) {
		std::string d = std::to_string(n), o;
		for (std::size_t i = 0; i < d.size(); i++) {
			if (i && (d.size() - i) % 3 == 0)
				o += ',';
			o += d[i];
		}
		return o;
	};
	std::size_t w0 = 4, w1 = 6, w2 = 9, w3 = 5;
	for (const Row& r : rows) {
		w0 = std::max(w0, r.path.size());
		w1 = std::max(w1, r.cls.size());
		w2 = std::max(w2, r.params.size());
		w3 = std::max(w3, commas(r.count).size());
	}
	auto pad = [](const std::string& x, std::size_t w) { return x + std::string(w - x.size(), ' '); };
	auto line = [&](char c) {
		return "+" + std::string(w0 + 2, c) + "+" + std::string(w1 + 2, c) + "+" + std::string(w2 + 2, c) + "+" +
		       std::string(w3 + 2, c) + "+\n";
	};
	std::string out = class_name_ + " Summary\n" + line('-');
	out += "| " + pad("path", w0) + " | " + pad("module", w1) + " | " + pad("variables", w2) + " | " +
	       pad("count", w3) + " |\n" + line('=');
	for (const Row& r : rows)
		out += "| " + pad(r.path, w0) + " | " + pad(r.cls, w1) + " | " + pad(r.params, w2) + " | " +
		       pad(r.count ? commas(r.count) : "", w3) + " |\n";
	out += line('-');
	for (const auto& [c, n] : per_collection)
		out += "Total " + c + ": " + commas(n) + "\n";
	out += "Total Parameters: " + commas(per_collection["params"]) + "\n";
	(void)total;
	return out;
}

} // namespace flaxdrm::flax
