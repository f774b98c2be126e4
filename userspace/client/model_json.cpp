// Model descriptions in JSON and Flax naming (see model.hpp).
#include "flaxdrm/model.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <string_view>

#include <nlohmann/json.hpp>

#include "file_io.hpp"
#include "flaxdrm/error.hpp"
#include "flaxdrm/lowering.hpp"

extern "C" {
#include "flaxdrm_drm.h"
}

namespace flaxdrm {
namespace {

using json = nlohmann::json;

const char* const kSupported =
	"Compact, Sequential, Residual, Dense, DenseGeneral, Conv, ConvTranspose, LayerNorm, RMSNorm, GroupNorm, "
	"BatchNorm, Embed, MultiHeadDotProductAttention, Dropout, relu, gelu, silu, swish, sigmoid, tanh, elu, "
	"leaky_relu, softplus, softmax, log_softmax, avg_pool, max_pool, flatten, reshape";

// Flax constructor arguments that only matter for init or for other dtypes
// than float32: refused with "not supported yet" ("dtype" only where the
// layer has none: Dropout, containers, functions).
const std::vector<std::string> kInitArgs = {"precision", "kernel_init", "bias_init", "scale_init",
					    "embedding_init", "dot_general", "dot_general_cls", "promote_dtype",
					    "conv_general_dilated", "conv_general_dilated_cls", "axis_name",
					    "axis_index_groups", "use_fast_variance", "force_float32_reductions",
					    "out_kernel_init", "out_bias_init", "qkv_dot_general", "out_dot_general",
					    "qkv_dot_general_cls", "out_dot_general_cls", "attention_fn", "decode",
					    "mask", "shared_weights", "param_dtype", "dtype"};

// The layers that take Flax's "dtype" (see Module::dtype).
const std::set<std::string> kDtypeLayers = {"Dense", "DenseGeneral", "Conv", "ConvTranspose", "LayerNorm",
					     "RMSNorm", "GroupNorm", "BatchNorm", "Embed",
					     "MultiHeadDotProductAttention"};

const char* dtype_json_name(LayerDtype d)
{
	return d == LayerDtype::F16 ? "float16" : "float32";
}

const std::set<std::string> kUnary = {"relu", "gelu", "silu", "swish", "sigmoid", "tanh", "elu",
				       "leaky_relu", "softplus", "softmax", "log_softmax"};

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
		m.class_name = type;
		json config = json::object();
		loc_ = loc;
		type_ = type;
		if (type == "Compact" || type == "Sequential" || type == "Residual") {
			bool compact = type != "Sequential";
			m.kind = compact ? ModuleKind::Compact : ModuleKind::Sequential;
			m.residual = type == "Residual";
			check_keys(j, compact ? std::vector<std::string>{"layers", "name", "class"}
					      : std::vector<std::string>{"layers", "name"});
			if (compact && j.contains("class")) {
				m.class_name = string_field(j, "class", loc);
				check_name(m.class_name, loc + ".class");
				config["class"] = m.class_name;
			}
			if (m.residual)
				config["residual"] = true;
			auto layers = j.find("layers");
			if (layers == j.end() || !layers->is_array())
				fail(loc, type + " needs \"layers\": a list of layers");
			for (std::size_t i = 0; i < layers->size(); i++)
				m.layers.push_back(parse((*layers)[i], loc + ".layers[" + std::to_string(i) + "]", false));
		} else if (type == "Dense") {
			m.kind = ModuleKind::Dense;
			check_keys(j, {"features", "use_bias", "name"});
			m.features = positive(j, "features", true, 0, "(the output size)");
			m.use_bias = boolean(j, "use_bias", true);
			config["features"] = m.features;
			config["use_bias"] = m.use_bias;
		} else if (type == "DenseGeneral") {
			m.kind = ModuleKind::DenseGeneral;
			check_keys(j, {"features", "axis", "batch_dims", "use_bias", "name"});
			m.features_tuple = int_tuple(j, "features", true, {}, 0, true);
			m.axis = int_tuple(j, "axis", false, {-1}, 0, false);
			if (j.contains("batch_dims") && !int_tuple(j, "batch_dims", false, {}, 0, false).empty())
				fail(loc, "DenseGeneral \"batch_dims\" is not supported yet");
			m.use_bias = boolean(j, "use_bias", true);
			config["features"] = m.features_tuple;
			config["axis"] = m.axis;
			config["use_bias"] = m.use_bias;
		} else if (type == "Conv" || type == "ConvTranspose") {
			bool tr = type == "ConvTranspose";
			m.kind = tr ? ModuleKind::ConvTranspose : ModuleKind::Conv;
			std::vector<std::string> keys = {"features", "kernel_size", "strides", "padding", "kernel_dilation",
							 "use_bias", "name"};
			if (tr)
				keys.push_back("transpose_kernel");
			else
				keys.insert(keys.end(), {"input_dilation", "feature_group_count"});
			check_keys(j, keys);
			m.features = positive(j, "features", true, 0, "(the output channels)");
			m.kernel_size = int_tuple(j, "kernel_size", true, {}, 0, true);
			if (m.kernel_size.size() < 1 || m.kernel_size.size() > 2)
				fail(loc, type + " \"kernel_size\" must have 1 or 2 dimensions (1-D or 2-D convolution), got " +
						  j["kernel_size"].dump());
			std::size_t n = m.kernel_size.size();
			m.strides = int_tuple(j, "strides", false, {1}, n, true);
			m.kernel_dilation = int_tuple(j, "kernel_dilation", false, {1}, n, true);
			m.input_dilation = tr ? std::vector<int64_t>(n, 1) : int_tuple(j, "input_dilation", false, {1}, n, true);
			m.feature_group_count = tr ? 1 : positive(j, "feature_group_count", false, 1, "");
			m.padding = padding(j, "SAME", n, !tr);
			m.use_bias = boolean(j, "use_bias", true);
			if (tr && boolean(j, "transpose_kernel", false))
				fail(loc, "ConvTranspose \"transpose_kernel\": true is not supported yet");
			config["features"] = m.features;
			config["kernel_size"] = m.kernel_size;
			config["strides"] = m.strides;
			config["padding"] = j.contains("padding") ? j["padding"] : json("SAME");
			config["kernel_dilation"] = m.kernel_dilation;
			if (!tr) {
				config["input_dilation"] = m.input_dilation;
				config["feature_group_count"] = m.feature_group_count;
			}
			config["use_bias"] = m.use_bias;
		} else if (type == "LayerNorm" || type == "RMSNorm") {
			bool ln = type == "LayerNorm";
			m.kind = ln ? ModuleKind::LayerNorm : ModuleKind::RMSNorm;
			std::vector<std::string> keys = {"epsilon", "use_scale", "reduction_axes", "feature_axes", "name"};
			if (ln)
				keys.push_back("use_bias");
			check_keys(j, keys);
			m.epsilon = number(j, "epsilon", 1e-6);
			m.use_scale = boolean(j, "use_scale", true);
			m.use_bias = ln ? boolean(j, "use_bias", true) : false;
			m.reduction_axes = trailing_axes(j, "reduction_axes");
			if (trailing_axes(j, "feature_axes") != 1)
				fail(loc, type + " \"feature_axes\" other than -1 is not supported yet");
			config["epsilon"] = m.epsilon;
			config["use_scale"] = m.use_scale;
			if (ln)
				config["use_bias"] = m.use_bias;
			config["reduction_axes"] = m.reduction_axes;
		} else if (type == "GroupNorm") {
			m.kind = ModuleKind::GroupNorm;
			check_keys(j, {"num_groups", "group_size", "epsilon", "use_scale", "use_bias", "name"});
			bool has_groups = j.contains("num_groups") && !j["num_groups"].is_null();
			bool has_size = j.contains("group_size") && !j["group_size"].is_null();
			if (has_groups && has_size)
				fail(loc, "GroupNorm: give either \"num_groups\" or \"group_size\", not both");
			m.group_size = has_size ? positive(j, "group_size", true, 0, "") : 0;
			m.num_groups = has_size ? 0 : has_groups ? positive(j, "num_groups", true, 0, "") : 32;
			m.epsilon = number(j, "epsilon", 1e-6);
			m.use_scale = boolean(j, "use_scale", true);
			m.use_bias = boolean(j, "use_bias", true);
			if (m.num_groups)
				config["num_groups"] = m.num_groups;
			else
				config["group_size"] = m.group_size;
			config["epsilon"] = m.epsilon;
			config["use_scale"] = m.use_scale;
			config["use_bias"] = m.use_bias;
		} else if (type == "BatchNorm") {
			m.kind = ModuleKind::BatchNorm;
			check_keys(j, {"use_running_average", "axis", "momentum", "epsilon", "use_scale", "use_bias", "name"});
			m.use_running_average = boolean(j, "use_running_average", false);
			if (!m.use_running_average)
				fail(loc, "BatchNorm needs \"use_running_average\": true: flaxdrm run is inference and "
					  "cannot update batch_stats (Flax would raise on the immutable collection)");
			if (j.contains("axis") && !(j["axis"].is_number_integer() && j["axis"].get<int64_t>() == -1))
				fail(loc, "BatchNorm \"axis\" other than -1 is not supported yet");
			m.momentum = number(j, "momentum", 0.99);
			m.epsilon = number(j, "epsilon", 1e-5);
			m.use_scale = boolean(j, "use_scale", true);
			m.use_bias = boolean(j, "use_bias", true);
			config["use_running_average"] = true;
			config["momentum"] = m.momentum;
			config["epsilon"] = m.epsilon;
			config["use_scale"] = m.use_scale;
			config["use_bias"] = m.use_bias;
		} else if (type == "Embed") {
			m.kind = ModuleKind::Embed;
			check_keys(j, {"num_embeddings", "features", "name"});
			m.num_embeddings = positive(j, "num_embeddings", true, 0, "(the table size)");
			m.features = positive(j, "features", true, 0, "(the embedding size)");
			config["num_embeddings"] = m.num_embeddings;
			config["features"] = m.features;
		} else if (type == "MultiHeadDotProductAttention") {
			m.kind = ModuleKind::Attention;
			check_keys(j, {"num_heads", "qkv_features", "out_features", "use_bias", "dropout_rate",
				       "deterministic", "broadcast_dropout", "normalize_qk", "name"});
			m.num_heads = positive(j, "num_heads", true, 0, "");
			m.qkv_features = optional_positive(j, "qkv_features");
			m.out_features = optional_positive(j, "out_features");
			m.use_bias = boolean(j, "use_bias", true);
			double rate = number(j, "dropout_rate", 0.0);
			bool det = boolean(j, "deterministic", true);
			if (rate > 0 && !det)
				fail(loc, "MultiHeadDotProductAttention attention dropout (\"deterministic\": false) is not "
					  "supported: flaxdrm run is inference");
			if (boolean(j, "normalize_qk", false))
				fail(loc, "MultiHeadDotProductAttention \"normalize_qk\": true is not supported yet");
			boolean(j, "broadcast_dropout", true);
			config["num_heads"] = m.num_heads;
			if (m.qkv_features)
				config["qkv_features"] = m.qkv_features;
			if (m.out_features)
				config["out_features"] = m.out_features;
			config["use_bias"] = m.use_bias;
			for (const char* child : {"query", "key", "value", "out"}) {
				Module c;
				c.kind = ModuleKind::DenseGeneral;
				c.class_name = "DenseGeneral";
				c.name = child;
				c.json_location = loc + " (" + child + ")";
				c.use_bias = m.use_bias;
				c.config = json{{"use_bias", m.use_bias}}.dump();
				m.layers.push_back(std::move(c));
			}
		} else if (type == "Dropout") {
			m.kind = ModuleKind::Dropout;
			check_keys(j, {"rate", "deterministic", "broadcast_dims", "rng_collection", "name"});
			m.rate = number(j, "rate", 0.0);
			if (m.rate < 0 || m.rate > 1)
				fail(loc, "Dropout \"rate\" must be in [0, 1]");
			if (m.rate > 0 && !boolean(j, "deterministic", true))
				fail(loc, "Dropout with \"deterministic\": false is not supported: flaxdrm run is inference "
					  "(Dropout is the identity)");
			config["rate"] = m.rate;
			config["deterministic"] = true;
		} else if (kUnary.count(type) || type == "avg_pool" || type == "max_pool" || type == "flatten" ||
			   type == "reshape") {
			m.kind = ModuleKind::Function;
			if (j.contains("name"))
				fail(loc, type + " is a function, not a module: it has no name");
			if (type == "gelu") {
				check_keys(j, {"approximate"});
				m.approximate = boolean(j, "approximate", true);
			} else if (type == "leaky_relu") {
				check_keys(j, {"negative_slope"});
				m.negative_slope = number(j, "negative_slope", 0.01);
			} else if (type == "elu") {
				check_keys(j, {"alpha"});
				m.alpha = number(j, "alpha", 1.0);
			} else if (type == "softmax" || type == "log_softmax") {
				check_keys(j, {"axis"});
				if (j.contains("axis") && !(j["axis"].is_number_integer() && j["axis"].get<int64_t>() == -1))
					fail(loc, type + " over an axis other than -1 is not supported yet");
			} else if (type == "avg_pool" || type == "max_pool") {
				std::vector<std::string> keys = {"window_shape", "strides", "padding"};
				if (type == "avg_pool")
					keys.push_back("count_include_pad");
				check_keys(j, keys);
				m.kernel_size = int_tuple(j, "window_shape", true, {}, 0, true);
				if (m.kernel_size.size() < 1 || m.kernel_size.size() > 2)
					fail(loc, type + " \"window_shape\" must have 1 or 2 dimensions");
				std::size_t n = m.kernel_size.size();
				// flax.linen.pooling: strides default (1,) * len(window_shape)
				m.strides = int_tuple(j, "strides", false, {1}, n, true);
				m.padding = padding(j, "VALID", n, false);
				if (m.padding.mode == "CIRCULAR" || m.padding.mode == "CAUSAL")
					fail(loc, type + " \"padding\" must be \"SAME\", \"VALID\" or pairs");
				m.count_include_pad = boolean(j, "count_include_pad", true);
			} else if (type == "reshape") {
				check_keys(j, {"shape"});
				m.shape = int_tuple(j, "shape", true, {}, 0, false);
				int neg = 0;
				for (int64_t d : m.shape) {
					if (d == -1)
						neg++;
					else if (d < 1)
						fail(loc, "reshape \"shape\" dims must be positive or one -1, got " +
								  j["shape"].dump());
				}
				if (neg > 1 || m.shape.empty())
					fail(loc, "reshape \"shape\" needs at least one dim and at most one -1, got " +
							  j["shape"].dump());
			} else {
				check_keys(j, {});
			}
			if (root)
				fail(loc, "the root must be a module (Compact, Sequential or a layer), not a function");
		} else {
			fail(loc, "unknown module \"" + type + "\" (supported: " + kSupported + ")");
		}

		if (kDtypeLayers.count(type)) {
			m.dtype = dtype(j, loc);
			// only when given, so configs without it stay as they were
			if (m.dtype != LayerDtype::None) {
				config["dtype"] = dtype_json_name(m.dtype);
				// the attention passes its dtype to its projections
				for (Module& c : m.layers) {
					c.dtype = m.dtype;
					c.config = json{{"use_bias", c.use_bias}, {"dtype", dtype_json_name(m.dtype)}}.dump();
				}
			}
		}
		if (!m.is_function() && j.contains("name")) {
			m.name = string_field(j, "name", loc);
			check_name(m.name, loc + ".name");
			if (root)
				m.name.clear(); // Flax ignores a top-level module's name in the variables
		}
		m.config = config.dump();
		if (m.config.size() > FLAXDRM_MAX_CONFIG_SIZE)
			fail(loc, "the module's configuration is longer than " + std::to_string(FLAXDRM_MAX_CONFIG_SIZE) +
					  " bytes of JSON");
		return m;
	}

	// Assigns names, paths and indices below m (m's own are set).
	void name_children(Module& m, int& next_index)
	{
		if (m.kind == ModuleKind::Attention) {
			for (Module& c : m.layers) {
				c.path = join(m.path, c.name);
				c.index = next_index++;
			}
			return;
		}
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
			check_dtype(c);
			name_children(c, next_index);
		}
	}

	// Refuses a bad "dtype" found by parse(), now that the layer's path is
	// known: "$.layers[0]: layers_0 (Dense): \"dtype\" must be ...".
	void check_dtype(const Module& m) const
	{
		auto it = bad_dtypes_.find(m.json_location);
		if (it == bad_dtypes_.end())
			return;
		fail(m.json_location, (m.path.empty() ? std::string("the root") : m.path) + " (" + m.class_name +
					      "): " + it->second);
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

	void check_keys(const json& j, std::vector<std::string> allowed) const
	{
		const std::string& loc = loc_;
		const std::string& type = type_;
		allowed.push_back("module");
		for (const auto& [key, value] : j.items()) {
			if (std::find(allowed.begin(), allowed.end(), key) != allowed.end())
				continue;
			// read by dtype(), which checks the value
			if (key == "dtype" && kDtypeLayers.count(type))
				continue;
			if ((key == "dtype" || key == "param_dtype") &&
			    (value.is_null() || (value.is_string() && value.get<std::string>() == "float32")))
				continue;
			if (std::find(kInitArgs.begin(), kInitArgs.end(), key) != kInitArgs.end())
				fail(loc, type + " argument \"" + key + "\" is not supported yet");
			std::string known;
			for (const auto& a : allowed)
				if (a != "module")
					known += (known.empty() ? "" : ", ") + a;
			fail(loc, "unknown key \"" + key + "\" for " + type +
					  (known.empty() ? " (it takes no arguments)" : " (known: " + known + ")"));
		}
	}

	// "dtype": "float16", "float32" or null/absent (None). A bad value is
	// kept for check_dtype, which names the layer by its path.
	LayerDtype dtype(const json& j, const std::string& loc)
	{
		auto it = j.find("dtype");
		if (it == j.end() || it->is_null())
			return LayerDtype::None;
		if (it->is_string() && it->get<std::string>() == "float16")
			return LayerDtype::F16;
		if (it->is_string() && it->get<std::string>() == "float32")
			return LayerDtype::F32;
		const std::set<std::string> other_floats = {"bfloat16", "float64"};
		if (it->is_string() && other_floats.count(it->get<std::string>()))
			bad_dtypes_[loc] = "\"dtype\" is not supported yet for " + it->dump() +
					    " (\"float16\", \"float32\" or null for None)";
		else
			bad_dtypes_[loc] = "\"dtype\" must be \"float16\", \"float32\" or null (None), got " +
					    it->dump();
		return LayerDtype::None;
	}

	bool boolean(const json& j, const char* key, bool def) const
	{
		auto it = j.find(key);
		if (it == j.end() || it->is_null())
			return def;
		if (!it->is_boolean())
			fail(loc_, type_ + " \"" + key + "\" must be true or false, got " + it->dump());
		return it->get<bool>();
	}

	double number(const json& j, const char* key, double def) const
	{
		auto it = j.find(key);
		if (it == j.end() || it->is_null())
			return def;
		if (!it->is_number())
			fail(loc_, type_ + " \"" + key + "\" must be a number, got " + it->dump());
		return it->get<double>();
	}

	int64_t positive(const json& j, const char* key, bool required, int64_t def, const char* what) const
	{
		auto it = j.find(key);
		if (it == j.end() || it->is_null()) {
			if (required)
				fail(loc_, type_ + " needs \"" + key + "\"" + (*what ? std::string(" ") + what : ""));
			return def;
		}
		if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > UINT32_MAX)
			fail(loc_, type_ + " \"" + key + "\" must be a positive integer, got " + it->dump());
		return it->get<int64_t>();
	}

	int64_t optional_positive(const json& j, const char* key) const
	{
		return positive(j, key, false, 0, "");
	}

	// An int or a list of ints; `n` > 0 broadcasts an int (or a one-element
	// default) to n entries and requires lists of n entries.
	std::vector<int64_t> int_tuple(const json& j, const char* key, bool required, std::vector<int64_t> def,
				       std::size_t n, bool positive_only) const
	{
		auto it = j.find(key);
		std::vector<int64_t> v;
		if (it == j.end() || it->is_null()) {
			if (required)
				fail(loc_, type_ + " needs \"" + key + "\"");
			v = def;
		} else if (it->is_number_integer()) {
			v = {it->get<int64_t>()};
		} else if (it->is_array()) {
			for (const auto& e : *it) {
				if (!e.is_number_integer())
					fail(loc_, type_ + " \"" + key + "\" must be an integer or a list of integers, got " +
							   it->dump());
				v.push_back(e.get<int64_t>());
			}
		} else {
			fail(loc_, type_ + " \"" + key + "\" must be an integer or a list of integers, got " + it->dump());
		}
		if (n && v.size() == 1 && n > 1)
			v.assign(n, v[0]);
		if (n && v.size() != n)
			fail(loc_, type_ + " \"" + key + "\" must have " + std::to_string(n) + " entries (one per spatial "
				   "dimension), got " + (it == j.end() ? json(v).dump() : it->dump()));
		for (int64_t x : v)
			if ((positive_only && x < 1) || x > UINT32_MAX || x < -int64_t(FLAXDRM_MAX_RANK))
				fail(loc_, type_ + " \"" + key + "\" entries must be " +
						   (positive_only ? "positive" : "valid") + ", got " + json(v).dump());
		return v;
	}

	// reduction_axes / feature_axes: -1, or the trailing axes (-k, ..., -1).
	int64_t trailing_axes(const json& j, const char* key) const
	{
		auto v = int_tuple(j, key, false, {-1}, 0, false);
		std::sort(v.begin(), v.end());
		for (std::size_t i = 0; i < v.size(); i++)
			if (v[i] != -static_cast<int64_t>(v.size() - i))
				fail(loc_, type_ + " \"" + key + "\" must be trailing axes written as negative numbers "
					   "(-1, or [-2, -1], ...), got " + j[key].dump());
		if (v.empty())
			fail(loc_, type_ + " \"" + key + "\" cannot be empty");
		return static_cast<int64_t>(v.size());
	}

	PaddingSpec padding(const json& j, const char* def, std::size_t n, bool conv) const
	{
		PaddingSpec p;
		auto it = j.find("padding");
		if (it == j.end() || it->is_null()) {
			p.mode = def;
			return p;
		}
		if (it->is_string()) {
			p.mode = it->get<std::string>();
			if (p.mode != "SAME" && p.mode != "VALID" && p.mode != "CIRCULAR" && p.mode != "CAUSAL")
				fail(loc_, type_ + " \"padding\" must be \"SAME\", \"VALID\", \"CIRCULAR\", \"CAUSAL\" or "
					   "(low, high) pairs, got " + it->dump());
			if (!conv && (p.mode == "CIRCULAR" || p.mode == "CAUSAL") && type_ != "avg_pool" &&
			    type_ != "max_pool")
				fail(loc_, type_ + " \"padding\": \"" + p.mode + "\" is not supported yet");
			if (p.mode == "CAUSAL" && n != 1)
				fail(loc_, type_ + " \"padding\": \"CAUSAL\" is for 1-D convolutions only");
			return p;
		}
		auto pad_value = [&](const json& e) {
			if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > UINT32_MAX)
				fail(loc_, type_ + " \"padding\" amounts must be non-negative integers, got " + it->dump());
			return e.get<int64_t>();
		};
		if (it->is_number_integer()) {
			int64_t v = pad_value(*it);
			p.pairs.assign(n, {v, v});
			return p;
		}
		if (!it->is_array() || it->size() != n)
			fail(loc_, type_ + " \"padding\" must be a string or " + std::to_string(n) +
					   " (low, high) pairs, got " + it->dump());
		for (const auto& e : *it) {
			if (e.is_array() && e.size() == 2)
				p.pairs.push_back({pad_value(e[0]), pad_value(e[1])});
			else if (e.is_number_integer())
				p.pairs.push_back({pad_value(e), pad_value(e)});
			else
				fail(loc_, type_ + " \"padding\" must be a string or " + std::to_string(n) +
						   " (low, high) pairs, got " + it->dump());
		}
		return p;
	}

	std::string loc_, type_;
	const std::string& source_;
	std::map<std::string, std::string> bad_dtypes_; // json_location -> what is wrong with its "dtype"
};

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
	parser.check_dtype(model.root);
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
	for (const auto& v : lower_shapes(model, input_shape).variables)
		vars[v.path] = v.shape;
	return vars;
}

Shape output_shape(const Model& model, const Shape& input_shape)
{
	return lower_shapes(model, input_shape).output_shape;
}

namespace {
const Module* first_layer(const Module& m)
{
	if (m.kind == ModuleKind::Compact || m.kind == ModuleKind::Sequential) {
		for (const Module& c : m.layers)
			if (c.kind != ModuleKind::Dropout)
				return first_layer(c);
		return nullptr;
	}
	return &m;
}
} // namespace

DType input_dtype(const Model& model)
{
	const Module* f = first_layer(model.root);
	return f && f->kind == ModuleKind::Embed ? DType::I32 : DType::F32;
}

void check_variables(const Model& model, const Variables& variables, const Shape& input_shape,
		     const std::string& variables_source)
{
	check_variable_shapes(expected_variables(model, input_shape), variables,
			      variables_source + " does not match the model " + model.source + " for inputs of shape " +
				      shape_str(input_shape));
}

} // namespace flaxdrm
