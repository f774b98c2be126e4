// Model descriptions in JSON and Flax naming (see model.hpp).
#include "flaxdrm/model.hpp"

#include <set>
#include <string_view>

#include <nlohmann/json.hpp>

#include "file_io.hpp"
#include "flaxdrm/error.hpp"

extern "C" {
#include "flaxdrm_drm.h"
}

namespace flaxdrm {
namespace {

using json = nlohmann::json;

const char* const kSupported = "Compact, Sequential, Dense, relu";

// Flax modules and functions that exist but are not lowered yet.
bool is_known_unsupported(std::string_view m)
{
	static const std::set<std::string_view> known = {
		"DenseGeneral", "Conv", "ConvTranspose", "LayerNorm", "RMSNorm", "GroupNorm",
		"BatchNorm", "Embed", "MultiHeadDotProductAttention", "Dropout", "gelu", "silu",
		"swish", "sigmoid", "tanh", "elu", "leaky_relu", "softplus", "softmax",
		"log_softmax", "avg_pool", "max_pool"};
	return known.count(m) > 0;
}

class Parser {
public:
	explicit Parser(const std::string& source) : source_(source) {}

	Module parse(const json& j, const std::string& loc, bool root)
	{
		if (!j.is_object())
			fail(loc, "a layer must be a JSON object like {\"module\": \"Dense\", \"features\": 8}");
		auto mod_it = j.find("module");
		if (mod_it == j.end() || !mod_it->is_string())
			fail(loc, "missing \"module\" (one of " + std::string(kSupported) + ")");
		const std::string type = mod_it->get<std::string>();

		Module m;
		m.json_location = loc;
		json config = json::object();
		if (type == "Compact" || type == "Sequential") {
			bool compact = type == "Compact";
			m.kind = compact ? ModuleKind::Compact : ModuleKind::Sequential;
			m.class_name = type;
			check_keys(j, loc, type, compact ? std::vector<std::string>{"layers", "name", "class"}
							 : std::vector<std::string>{"layers", "name"});
			if (compact && j.contains("class")) {
				m.class_name = string_field(j, "class", loc);
				check_name(m.class_name, loc + ".class");
				config["class"] = m.class_name;
			}
			auto layers = j.find("layers");
			if (layers == j.end() || !layers->is_array())
				fail(loc, type + " needs \"layers\": a list of layers");
			for (std::size_t i = 0; i < layers->size(); i++)
				m.layers.push_back(parse((*layers)[i], loc + ".layers[" + std::to_string(i) + "]", false));
		} else if (type == "Dense") {
			m.kind = ModuleKind::Dense;
			m.class_name = "Dense";
			check_keys(j, loc, type, {"features", "use_bias", "name"},
				   {"dtype", "param_dtype", "precision", "kernel_init", "bias_init", "dot_general",
				    "dot_general_cls", "promote_dtype"});
			auto f = j.find("features");
			if (f == j.end())
				fail(loc, "Dense needs \"features\" (the output size)");
			if (!f->is_number_integer() || f->get<int64_t>() < 1 || f->get<int64_t>() > UINT32_MAX)
				fail(loc, "Dense \"features\" must be a positive integer, got " + f->dump());
			m.features = f->get<int64_t>();
			if (auto b = j.find("use_bias"); b != j.end()) {
				if (!b->is_boolean())
					fail(loc, "Dense \"use_bias\" must be true or false, got " + b->dump());
				m.use_bias = b->get<bool>();
			}
			config["features"] = m.features;
			config["use_bias"] = m.use_bias;
		} else if (type == "relu") {
			m.kind = ModuleKind::Relu;
			m.class_name = "relu";
			if (j.contains("name"))
				fail(loc, "relu is a function, not a module: it has no name");
			check_keys(j, loc, type, {});
			if (root)
				fail(loc, "the root must be a module (Compact, Sequential or Dense), not a function");
		} else if (is_known_unsupported(type)) {
			fail(loc, "module \"" + type + "\" is not supported yet (supported: " + kSupported + ")");
		} else {
			fail(loc, "unknown module \"" + type + "\" (supported: " + kSupported + ")");
		}

		if (!m.is_function() && j.contains("name")) {
			m.name = string_field(j, "name", loc);
			check_name(m.name, loc + ".name");
			if (root)
				m.name.clear(); // Flax ignores a top-level module's name in the variables
		}
		m.config = config.dump();
		return m;
	}

	// Assigns names, paths and indices below m (m's own are set).
	void name_children(Module& m, int& next_index)
	{
		if (m.kind != ModuleKind::Compact && m.kind != ModuleKind::Sequential)
			return;
		std::map<std::string, int> counters;
		std::set<std::string> used;
		for (std::size_t i = 0; i < m.layers.size(); i++) {
			Module& c = m.layers[i];
			if (m.kind == ModuleKind::Sequential) {
				if (!c.name.empty())
					fail(c.json_location,
					     "a Sequential names its layers by position (layers_" + std::to_string(i) +
						     "); \"name\" is not allowed here");
				c.name = "layers_" + std::to_string(i);
				c.auto_named = true;
				if (c.is_function()) {
					c.path = join(m.path, c.name);
					continue;
				}
			} else {
				if (c.is_function()) {
					c.path = m.path;
					continue;
				}
				if (c.name.empty()) {
					int& n = counters[c.class_name];
					c.name = c.class_name + "_" + std::to_string(n++);
					c.auto_named = true;
					check_name(c.name, c.json_location);
				}
			}
			if (!used.insert(c.name).second)
				fail(c.json_location, "NameInUseError: could not create submodule \"" + c.name + "\" in " +
							      m.class_name + " at " + m.display_path() +
							      ": the name is already in use");
			c.path = join(m.path, c.name);
			c.index = next_index++;
			name_children(c, next_index);
		}
	}

private:
	[[noreturn]] void fail(const std::string& loc, const std::string& what) const
	{
		throw Error(source_ + ": " + loc + ": " + what);
	}

	static std::string join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "/" + b; }

	std::string string_field(const json& j, const char* key, const std::string& loc) const
	{
		const json& v = j.at(key);
		if (!v.is_string())
			fail(loc, std::string("\"") + key + "\" must be a string, got " + v.dump());
		return v.get<std::string>();
	}

	void check_name(const std::string& name, const std::string& loc) const
	{
		if (name.empty())
			fail(loc, "a name cannot be empty");
		if (name.size() >= FLAXDRM_NAME_LEN)
			fail(loc, "name \"" + name + "\" is longer than " + std::to_string(FLAXDRM_NAME_LEN - 1) +
					  " bytes");
		if (name.find('/') != std::string::npos)
			fail(loc, "name \"" + name + "\" contains '/'");
	}

	void check_keys(const json& j, const std::string& loc, const std::string& type,
			std::vector<std::string> allowed, std::vector<std::string> unsupported = {}) const
	{
		allowed.push_back("module");
		for (const auto& [key, value] : j.items()) {
			if (std::find(allowed.begin(), allowed.end(), key) != allowed.end())
				continue;
			if (std::find(unsupported.begin(), unsupported.end(), key) != unsupported.end())
				fail(loc, type + " argument \"" + key + "\" is not supported yet");
			std::string known;
			for (const auto& a : allowed)
				if (a != "module")
					known += (known.empty() ? "" : ", ") + a;
			fail(loc, "unknown key \"" + key + "\" for " + type +
					  (known.empty() ? " (it takes no arguments)" : " (known: " + known + ")"));
		}
	}

	const std::string& source_;
};

// Applies a module to an input shape, collecting expected variables.
Shape apply_shape(const Model& model, const Module& m, const Shape& in, std::map<std::string, Shape>* vars)
{
	switch (m.kind) {
	case ModuleKind::Compact:
	case ModuleKind::Sequential: {
		Shape s = in;
		for (const Module& c : m.layers)
			s = apply_shape(model, c, s, vars);
		return s;
	}
	case ModuleKind::Dense: {
		if (in.empty())
			throw Error(model.source + ": Dense at " + m.display_path() +
				    " needs an input with at least one dimension, got shape ()");
		std::string prefix = "params/" + (m.path.empty() ? std::string() : m.path + "/");
		if (vars) {
			(*vars)[prefix + "kernel"] = {in.back(), m.features};
			if (m.use_bias)
				(*vars)[prefix + "bias"] = {m.features};
		}
		Shape out = in;
		out.back() = m.features;
		return out;
	}
	case ModuleKind::Relu:
		return in;
	}
	return in;
}

void collect(const Module& m, std::vector<const Module*>& out)
{
	if (m.is_function())
		return;
	if (static_cast<std::size_t>(m.index) >= out.size())
		out.resize(m.index + 1);
	out[m.index] = &m;
	for (const Module& c : m.layers)
		collect(c, out);
}

} // namespace

std::string Module::display_path() const
{
	std::string p = "/" + path;
	if (is_function())
		p += (p == "/" ? "" : " ") + std::string("(") + class_name + ")";
	return p;
}

std::vector<const Module*> Model::modules() const
{
	std::vector<const Module*> out;
	collect(root, out);
	return out;
}

Model parse_model_json(const std::string& text, const std::string& source)
{
	json j;
	try {
		j = json::parse(text);
	} catch (const json::parse_error& e) {
		throw Error(source + ": invalid JSON: " + e.what());
	}
	Parser parser(source);
	Model model;
	model.source = source;
	model.root = parser.parse(j, "$", true);
	model.root.index = 0;
	int next = 1;
	parser.name_children(model.root, next);
	model.num_modules = next;
	return model;
}

Model read_model_json(const std::string& path)
{
	auto bytes = detail::read_file(path, "model file");
	return parse_model_json(std::string(bytes.begin(), bytes.end()), path);
}

std::map<std::string, Shape> expected_variables(const Model& model, const Shape& input_shape)
{
	std::map<std::string, Shape> vars;
	apply_shape(model, model.root, input_shape, &vars);
	return vars;
}

Shape output_shape(const Model& model, const Shape& input_shape)
{
	return apply_shape(model, model.root, input_shape, nullptr);
}

void check_variables(const Model& model, const Variables& variables, const Shape& input_shape,
		     const std::string& variables_source)
{
	auto expected = expected_variables(model, input_shape);
	std::vector<std::string> problems;
	auto e = expected.begin();
	auto v = variables.begin();
	while (e != expected.end() || v != variables.end()) {
		if (v == variables.end() || (e != expected.end() && e->first < v->first)) {
			problems.push_back(e->first + ": missing, expected shape " + shape_str(e->second));
			++e;
		} else if (e == expected.end() || v->first < e->first) {
			problems.push_back(v->first + ": unexpected (shape " + shape_str(v->second.value.shape) +
					   "): the model has no such variable");
			++v;
		} else {
			if (v->second.value.shape != e->second)
				problems.push_back(e->first + ": shape " + shape_str(v->second.value.shape) +
						   ", expected " + shape_str(e->second));
			++e;
			++v;
		}
	}
	if (problems.empty())
		return;
	bool have_params = false;
	for (const auto& [path, var] : variables)
		have_params |= path.rfind("params/", 0) == 0;
	std::string msg = variables_source + " does not match the model " + model.source + " for inputs of shape " +
			  shape_str(input_shape) + " (" + std::to_string(problems.size()) + " problem" +
			  (problems.size() == 1 ? "" : "s") + "):";
	if (!have_params && !expected.empty())
		msg += "\n  the \"params\" collection is empty";
	for (const auto& p : problems)
		msg += "\n  " + p;
	throw Error(msg);
}

} // namespace flaxdrm
