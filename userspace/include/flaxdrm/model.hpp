// Model descriptions in JSON, mirroring Flax (see DESIGN.md):
//
//   {"module": "Compact", "layers": [...]}     compact __call__ over layers
//   {"module": "Sequential", "layers": [...]}  nn.Sequential
//   {"module": "Dense", "features": 64, "use_bias": true}
//   {"module": "relu"}                          a function
//
// A Compact's unnamed children get Flax's auto-names (Dense_0, Dense_1,
// Sequential_0: one counter per class); "name" is used as given. A
// Sequential's children are named by position (layers_0, layers_2 for
// [Dense, relu, Dense]). Containers nest. A Compact's class name (used for
// its own auto-name in a parent Compact) is "Compact" unless "class" names
// the Flax class it stands for.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "flaxdrm/tensor.hpp"
#include "flaxdrm/variables.hpp"

namespace flaxdrm {

enum class ModuleKind { Compact, Sequential, Dense, Relu };

struct Module {
	ModuleKind kind = ModuleKind::Compact;
	std::string class_name;    // Flax class: "Dense", "Sequential", "relu", Compact's class
	std::string name;          // name in the parent; empty for the root and for functions
	std::string path;          // '/'-joined names from the root; empty for the root
	bool auto_named = false;   // name chosen by Flax's auto-naming
	int index = -1;            // pre-order number among modules (not functions); root 0
	std::string json_location; // where in the JSON it came from, for messages
	std::string config;        // constructor arguments as compact JSON

	// Dense
	int64_t features = 0;
	bool use_bias = true;

	std::vector<Module> layers; // Compact, Sequential

	bool is_function() const { return kind == ModuleKind::Relu; }
	// "/Dense_0", "/" for the root, or "/layers_1 (relu)" for a function.
	std::string display_path() const;
};

struct Model {
	Module root;
	int num_modules = 0; // modules numbered by Module::index
	std::string source;  // file name, for messages

	// Modules (not functions) in pre-order, so modules()[m.index] == &m.
	std::vector<const Module*> modules() const;
};

Model parse_model_json(const std::string& text, const std::string& source);
Model read_model_json(const std::string& path);

// The variables a model expects for inputs with the given shape:
// "params/Dense_0/kernel" -> (in, features), ".../bias" -> (features,).
std::map<std::string, Shape> expected_variables(const Model& model, const Shape& input_shape);

// The model's output shape for an input shape; throws with the module path
// when a layer cannot take its input.
Shape output_shape(const Model& model, const Shape& input_shape);

// Checks every variable path and shape against the model; throws one
// flaxdrm::Error listing every mismatch, missing and unexpected entry, e.g.
//   params/Dense_1/kernel: shape (64, 10), expected (128, 10)
void check_variables(const Model& model, const Variables& variables, const Shape& input_shape,
		     const std::string& variables_source = "variables");

} // namespace flaxdrm
