// flaxdrm::flax: Flax's linen.Module programming model in C++20.
//
//   struct MLP : flax::ModuleT<MLP> {
//       MLP() : ModuleT("MLP") {}
//       flax::Value call(const flax::Value& x) override {   // compact-style
//           auto h = flax::relu(make_child<flax::Dense>(64)(x)); // Dense_0
//           return make_child<flax::Dense>(10)(h);               // Dense_1
//       }
//   };
//   MLP model;
//   flax::Variables vars = model.init(flax::PRNGKey(0), {x});  // params/Dense_0/kernel ...
//   flaxdrm::Tensor y = model.apply(vars, {x});                // traced once, run on a Backend
//
// Module code is symbolic: calls take and return flax::Value, handles to
// tensors of a Trace (the UAPI program being recorded). init() traces and
// computes initial values on the host; apply() traces once per input
// shapes/dtypes (+ method, mutable set, rngs and variable shapes), then
// runs the cached program on a Backend (local by default, or drm).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "flaxdrm/error.hpp"
#include "flaxdrm/flax/initializers.hpp"
#include "flaxdrm/flax/prng.hpp"
#include "flaxdrm/tensor.hpp"
#include "flaxdrm/variables.hpp"

extern "C" {
#include "flaxdrm_drm.h"
}

namespace flaxdrm::flax {

using flaxdrm::Shape;
using flaxdrm::Tensor;
using flaxdrm::Variable;
using flaxdrm::Variables; // flat: "params/Dense_0/kernel" -> Variable

// ------------------------------------------------------------------ errors
#define FLAXDRM_FLAX_ERROR(Name)                                                 \
	class Name : public flaxdrm::Error {                                     \
	public:                                                                  \
		explicit Name(const std::string& what) : flaxdrm::Error(#Name ": " + what) {} \
	}
FLAXDRM_FLAX_ERROR(NameInUseError);
FLAXDRM_FLAX_ERROR(AssignSubModuleError);
FLAXDRM_FLAX_ERROR(SetAttributeFrozenModuleError);
FLAXDRM_FLAX_ERROR(ModifyScopeVariableError);
FLAXDRM_FLAX_ERROR(ScopeParamShapeError);
FLAXDRM_FLAX_ERROR(ScopeParamNotFoundError);
FLAXDRM_FLAX_ERROR(ScopeCollectionNotFound);
FLAXDRM_FLAX_ERROR(ScopeVariableNotFoundError);
FLAXDRM_FLAX_ERROR(InvalidRngError);
FLAXDRM_FLAX_ERROR(UnboundModuleError);
FLAXDRM_FLAX_ERROR(ShapeError);
#undef FLAXDRM_FLAX_ERROR

// ------------------------------------------------------------ dtypes
// jnp dtypes, for Value::dtype, Array::dtype and the layers' `dtype` option
// (Flax's `dtype=`: the dtype a layer computes in). kNoDtype is Flax's
// None: the promoted dtype of the layer's inputs and parameters.
// Parameters are float32 (Flax's default param_dtype).
inline constexpr uint32_t float32 = FLAXDRM_DTYPE_F32;
inline constexpr uint32_t float16 = FLAXDRM_DTYPE_F16;
inline constexpr uint32_t int32 = FLAXDRM_DTYPE_I32;
inline constexpr uint32_t kNoDtype = 0;
// jnp.promote_types over those: float16 with float32 is float32, an
// integer with a float is the float.
uint32_t promote_types(uint32_t a, uint32_t b);
std::string dtype_name(uint32_t dtype); // "float32", "float16", "int32"; kNoDtype: "None"

// ------------------------------------------------------------ tracing
class Trace;

// A symbolic tensor: an entry of the Trace's tensor table.
struct Value {
	Trace* trace = nullptr;
	uint32_t index = 0;
	Shape shape;
	uint32_t dtype = FLAXDRM_DTYPE_F32;

	std::size_t rank() const { return shape.size(); }
	int64_t dim(int64_t axis) const; // negative counts from the end
};

// A concrete input: float32 values, integer values (I32) held as float, or
// float16 (values rounded to f16 on upload, as jnp.asarray(x, float16)).
struct Array {
	Shape shape;
	uint32_t dtype = FLAXDRM_DTYPE_F32;
	std::vector<float> data;

	Array() = default;
	Array(const Tensor& t) : shape(t.shape), data(t.data) {} // NOLINT: implicit
	Array(Shape s, std::vector<float> d, uint32_t dt = FLAXDRM_DTYPE_F32)
		: shape(std::move(s)), dtype(dt), data(std::move(d)) {}
	static Array i32(Shape s, const std::vector<int32_t>& values);
};

// The program being recorded (tensor table + op list, as the UAPI).
// Module ids in it are scope ids of the root's Session; a Backend maps
// them to its module handles when it creates the program.
class Trace {
public:
	struct Var {
		uint32_t tensor;
		uint32_t scope;
		std::string collection, name, path; // path "params/Dense_0/kernel"
		bool written = false;
	};
	std::vector<drm_flaxdrm_tensor> tensors;
	std::vector<drm_flaxdrm_op> ops;
	std::vector<std::string> op_where; // per op: "Dense /Dense_0"
	std::vector<Var> vars;
	std::vector<uint32_t> inputs;
	uint32_t output = FLAXDRM_INDEX_NONE;
	Shape output_shape;

	Value input(const Shape& shape, uint32_t dtype);
	Value variable(uint32_t scope, const std::string& collection, const std::string& name,
		       const std::string& path, const Shape& shape);
	// one op with one new TEMP output
	Value op(uint32_t opcode, uint32_t scope, const std::vector<Value>& ins, const Shape& out,
		 const std::vector<uint32_t>& attrs = {}, uint32_t dtype = FLAXDRM_DTYPE_F32);
	// an op with extra outputs that already exist (VARIABLE tensors written)
	Value op_writing(uint32_t opcode, uint32_t scope, const std::vector<Value>& ins, const Shape& out,
			 const std::vector<uint32_t>& attrs, const std::vector<uint32_t>& extra_outputs);
	uint32_t temp(const Shape& shape); // a TEMP tensor for an extra op output
	// makes v the program's OUTPUT (copying through RESHAPE when v is not a
	// TEMP); a float16 v is converted to float32, exactly, as apply()
	// returns float32 data
	void set_output(const Value& v);
	// checks the program with the kernel's rules; throws naming the op
	void check() const;
	std::string describe_op(uint32_t op) const;
	std::string describe_tensor(uint32_t tensor) const;
	std::string where; // set by the module making ops
};

// Plain ops (functions, as flax.linen's / jax.numpy's). Results keep their
// inputs' dtype; two operands of different float dtypes are promoted
// (jnp.promote_types) first.
Value astype(const Value& x, uint32_t dtype); // x.astype(dtype): float32 <-> float16
Value relu(const Value& x);
Value gelu(const Value& x, bool approximate = true);
Value silu(const Value& x);
inline Value swish(const Value& x) { return silu(x); }
Value sigmoid(const Value& x);
Value tanh(const Value& x);
Value elu(const Value& x, float alpha = 1.0f);
Value leaky_relu(const Value& x, float negative_slope = 0.01f);
Value softplus(const Value& x);
Value softmax(const Value& x);     // last axis
Value log_softmax(const Value& x); // last axis
Value add(const Value& a, const Value& b);
Value subtract(const Value& a, const Value& b);
Value multiply(const Value& a, const Value& b);
Value divide(const Value& a, const Value& b);
Value maximum(const Value& a, const Value& b);
Value minimum(const Value& a, const Value& b);
inline Value operator+(const Value& a, const Value& b) { return add(a, b); }
inline Value operator-(const Value& a, const Value& b) { return subtract(a, b); }
inline Value operator*(const Value& a, const Value& b) { return multiply(a, b); }
inline Value operator/(const Value& a, const Value& b) { return divide(a, b); }
Value matmul(const Value& a, const Value& b, bool transpose_a = false, bool transpose_b = false);
Value reshape(const Value& x, Shape shape); // one -1 allowed
Value transpose(const Value& x, const std::vector<int>& perm);
Value concatenate(const std::vector<Value>& xs, int axis);
Value slice(const Value& x, const Shape& start, const Shape& size);
Value sum(const Value& x, const std::vector<int>& axes, bool keepdims = false);
Value mean(const Value& x, const std::vector<int>& axes, bool keepdims = false);
Value max(const Value& x, const std::vector<int>& axes, bool keepdims = false);
// flax.linen.avg_pool / max_pool over NHWC (or NWC) inputs. padding:
// "SAME", "VALID", or explicit pairs via the overloads.
using PadPairs = std::vector<std::pair<int64_t, int64_t>>;
Value avg_pool(const Value& x, const Shape& window, const Shape& strides = {}, const std::string& padding = "VALID",
	       bool count_include_pad = true);
Value avg_pool(const Value& x, const Shape& window, const Shape& strides, const PadPairs& padding,
	       bool count_include_pad = true);
Value max_pool(const Value& x, const Shape& window, const Shape& strides = {}, const std::string& padding = "VALID");
Value max_pool(const Value& x, const Shape& window, const Shape& strides, const PadPairs& padding);

// ------------------------------------------------------------- modules
class Module;
class Backend;
struct Context;
struct Session;

using AttrValue = std::variant<bool, int64_t, double, std::string, std::vector<int64_t>, PadPairs, Initializer>;
std::string attr_repr(const AttrValue& v); // Python-ish: 3, True, 'SAME', (3, 3)

struct Mutable {
	std::set<std::string> collections;
	bool all = false; // mutable=True
	Mutable() = default;
	Mutable(std::initializer_list<std::string> c) : collections(c) {}
	static Mutable All() { Mutable m; m.all = true; return m; }
	bool contains(const std::string& c) const { return all || collections.count(c); }
	bool empty() const { return !all && collections.empty(); }
};

using Rngs = std::map<std::string, Key>;

struct ApplyOptions {
	Rngs rngs;               // e.g. {{"dropout", key}}
	std::string method;      // empty: the call; else a name dispatch() knows
	std::shared_ptr<Backend> backend; // null: the process's default (local) backend
};

struct InitOptions {
	std::string method;
};

class Module {
public:
	explicit Module(std::string class_name);
	Module(const Module& other); // copies class name and attributes only
	Module& operator=(const Module&) = delete;
	virtual ~Module();

	const std::string& class_name() const { return class_name_; }
	// enum flaxdrm_module_kind; FLAXDRM_KIND_MODULE for user modules
	virtual uint32_t kind() const { return FLAXDRM_KIND_MODULE; }
	// a copy with the same construction attributes, unbound, no parent
	virtual std::unique_ptr<Module> clone() const = 0;
	// clone with some attributes replaced (Flax's clone(features=4))
	std::unique_ptr<Module> clone(const std::map<std::string, AttrValue>& overrides) const;

	// -- construction attributes (frozen once constructed)
	const std::map<std::string, AttrValue>& attributes() const { return attrs_; }
	const AttrValue& attr_value(const std::string& name) const;
	template <class T> const T& attr(const std::string& name) const { return std::get<T>(attr_value(name)); }
	// always refused for an existing attribute: SetAttributeFrozenModuleError
	void set_attr(const std::string& name, const AttrValue& value);

	// -- identity
	const std::string& name() const { return name_; }
	Module* parent() const { return parent_; }
	std::vector<std::string> path() const;  // {} at the root
	std::string path_str() const;           // "/Dense_0/..." ; "/" at the root
	bool is_bound() const { return ctx_ != nullptr; }
	bool is_initializing() const;
	bool is_mutable_collection(const std::string& collection) const;

	// -- calls: symbolic inside a trace
	Value operator()(const Value& x);
	Value operator()(const std::vector<Value>& xs);
	Value call_method(const std::string& method, const std::vector<Value>& xs);
	// concrete call of a bound module (from bind()): runs like apply
	Tensor operator()(const Array& x);
	Tensor operator()(const std::vector<Array>& xs);

	// -- init / apply
	Variables init(Key rng, const std::vector<Array>& inputs, const InitOptions& options = {});
	Variables init(const Rngs& rngs, const std::vector<Array>& inputs, const InitOptions& options = {});
	Tensor apply(const Variables& variables, const std::vector<Array>& inputs, const ApplyOptions& options = {});
	std::pair<Tensor, Variables> apply(const Variables& variables, const std::vector<Array>& inputs,
					   const Mutable& mutable_collections, const ApplyOptions& options = {});
	// a clone bound to the variables: its calls equal apply()
	std::unique_ptr<Module> bind(const Variables& variables, const Rngs& rngs = {},
				     std::shared_ptr<Backend> backend = nullptr);
	// an unbound clone and the bound variables
	std::pair<std::unique_ptr<Module>, Variables> unbind() const;
	const Variables& variables() const; // of a bound module

	// -- device state: releases this root's module tree and programs on
	// every backend it ran on (MODULE_DESTROY, PROGRAM_DESTROY, CLEANUP)
	void cleanup();
	// statistics of this root's program cache
	struct Stats {
		uint64_t traces = 0;          // init + apply traces
		uint64_t program_creates = 0; // programs created on backends
		uint64_t calls = 0;           // call jobs run
		uint64_t setups = 0;          // setup jobs run
	};
	Stats stats() const;
	// this root's modules on a backend: Flax path ("" for the root,
	// "Block_0/Dense_1") -> the backend's module handle
	std::map<std::string, uint32_t> backend_modules(const std::shared_ptr<Backend>& backend) const;
	// the last traced program (for inspection and tests)
	const Trace* last_trace() const;

	// -- inside setup() or a call
	Value param(const std::string& name, const Initializer& init, const Shape& shape);
	Value variable(const std::string& collection, const std::string& name, const Initializer& init,
		       const Shape& shape);
	// the symbolic value of an existing variable, without initialising it
	Value get_variable(const std::string& collection, const std::string& name);
	bool has_variable(const std::string& collection, const std::string& name) const;
	// the VARIABLE tensor an op may write (checks the collection is mutable)
	uint32_t write_target(const std::string& collection, const std::string& name);
	// writes an existing variable (the collection must be mutable): makes the
	// op that produced v write the variable (or copies v there)
	void put_variable(const std::string& collection, const std::string& name, const Value& v);
	// a fresh key of a stream: folded with the module path and a counter;
	// falls back to "params" when the stream is missing
	Key make_rng(const std::string& stream = "params");
	Trace& trace() const;
	uint32_t scope_id() const { return scope_id_; }

	// children: make_child auto-names (ClassName_N) in a call; child names
	// exactly (in setup: the attribute's name); child_list: attr_0, attr_1;
	// child_map: attr_key.
	template <class T, class... A> T& make_child(A&&... args)
	{
		return static_cast<T&>(adopt(std::make_unique<T>(std::forward<A>(args)...), ""));
	}
	template <class T, class... A> T& child(const std::string& name, A&&... args)
	{
		return static_cast<T&>(adopt(std::make_unique<T>(std::forward<A>(args)...), name));
	}
	Module& adopt(std::unique_ptr<Module> m, const std::string& name);
	std::vector<Module*> child_list(const std::string& attr, std::vector<std::unique_ptr<Module>> ms);
	std::map<std::string, Module*> child_map(const std::string& attr,
						   std::map<std::string, std::unique_ptr<Module>> ms);
	// a child by name (runs setup first when needed); null if none
	Module* submodule(const std::string& name);
	std::vector<Module*> submodules() const;

	// -- text table of the module tree, parameter shapes and counts
	std::string tabulate(Key rng, const std::vector<Array>& inputs);

protected:
	virtual void setup() {}
	// compact-style call; the default of call_n calls call(xs[0])
	virtual Value call(const Value& x);
	virtual Value call_n(const std::vector<Value>& xs);
	// other methods for apply(..., method) and call_method: override and
	// dispatch on the name (the default refuses every name)
	virtual Value dispatch(const std::string& method, const std::vector<Value>& xs);
	void declare_attr(const std::string& name, AttrValue value); // constructors only

private:
	friend struct Context;
	friend struct Session;
	friend class CallFrame;
	struct Names;

	void bind_child(Module& c, const std::string& name, bool auto_named);
	void ensure_setup();
	void reset_binding(); // recursively: unbound, setup not done, children dropped
	void reserve_name(const std::string& name, const std::string& what, const std::string& collection);
	Module& root();
	std::pair<Tensor, Variables> run_apply(const Variables& variables, const std::vector<Array>& inputs,
					       const Mutable& mut, const ApplyOptions& options);
	Value run_method(const std::string& method, const std::vector<Value>& xs);
	Value declare(const std::string& collection, const std::string& name, const Initializer* init,
		      const Shape& shape, bool is_param);
	std::shared_ptr<Session> session();

	std::string class_name_;
	std::map<std::string, AttrValue> attrs_;
	bool constructed_ = false;

	Module* parent_ = nullptr;
	std::string name_;
	bool auto_named_ = false;
	Context* ctx_ = nullptr;
	uint32_t scope_id_ = 0;
	bool setup_done_ = false;
	bool in_setup_ = false;
	int call_depth_ = 0;
	std::vector<std::unique_ptr<Module>> setup_children_;
	std::vector<std::unique_ptr<Module>> call_children_;
	std::map<std::string, uint32_t> autoname_;
	// names in use: child name -> "" ; variable name -> collections
	std::map<std::string, std::set<std::string>> setup_names_, call_names_;
	std::map<std::string, Module*> children_by_name_;

	std::shared_ptr<Session> session_;           // roots: scopes, programs
	std::unique_ptr<Context> bound_ctx_;         // bind(): the persistent context
	std::shared_ptr<Backend> bound_backend_;
};

// CRTP helper giving clone() through the copy constructor.
template <class Derived> class ModuleT : public Module {
public:
	using Module::Module;
	using Module::clone;
	std::unique_ptr<Module> clone() const override
	{
		return std::make_unique<Derived>(static_cast<const Derived&>(*this));
	}
};

// Variables helpers
Variables collection(const Variables& variables, const std::string& name); // entries of one collection
std::set<std::string> collections(const Variables& variables);
// nested-dict view: "{params: {Dense_0: {bias: (3,), kernel: (4, 3)}}}"
std::string tree_str(const Variables& variables);

} // namespace flaxdrm::flax
