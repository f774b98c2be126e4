// Model descriptions in JSON, mirroring Flax (see DESIGN.md):
//
//   {"module": "Compact", "layers": [...]}     compact __call__ over layers
//   {"module": "Sequential", "layers": [...]}  nn.Sequential
//   {"module": "Residual", "layers": [...]}    a Compact returning x + layers(x)
//   {"module": "Dense", "features": 64, "use_bias": true}
//   {"module": "relu"}                          a function
//
// Layers (Flax constructor arguments and defaults): Dense, DenseGeneral,
// Conv, ConvTranspose, LayerNorm, RMSNorm, GroupNorm, BatchNorm, Embed,
// MultiHeadDotProductAttention (self-attention), Dropout (identity: run is
// inference). Functions: relu, gelu, silu/swish, sigmoid, tanh, elu,
// leaky_relu, softplus, softmax, log_softmax, avg_pool, max_pool, flatten
// (x.reshape((x.shape[0], -1))), reshape ("shape", one -1 allowed).
// The layers except Dropout take "dtype": "float16", "float32" or null
// (None, the default), as the Module API's dtype option.
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

enum class ModuleKind {
	Compact,        // also Residual (residual = true): x + layers(x)
	Sequential,
	Dense,
	DenseGeneral,
	Conv,
	ConvTranspose,
	LayerNorm,
	RMSNorm,
	GroupNorm,
	BatchNorm,
	Embed,
	Attention,      // MultiHeadDotProductAttention (children query, key, value, out)
	Dropout,
	Function,       // relu, gelu, ..., avg_pool, max_pool, flatten, reshape (class_name)
};

// Flax's `dtype=` of a layer: the dtype it computes in. None is Flax's
// default: the promotion of its inputs' and (float32) parameters' dtypes.
enum class LayerDtype { None, F32, F16 };

// Padding of Conv, ConvTranspose and the pools: a Flax string or pairs.
struct PaddingSpec {
	std::string mode;                               // "SAME", "VALID", "CIRCULAR", "CAUSAL"; empty: pairs
	std::vector<std::pair<int64_t, int64_t>> pairs; // per spatial axis (one pair: every axis)
};

struct Module {
	ModuleKind kind = ModuleKind::Compact;
	std::string class_name;    // Flax class: "Dense", "Sequential", "Residual", or the function ("relu")
	std::string name;          // name in the parent; empty for the root and for functions
	std::string path;          // '/'-joined names from the root; empty for the root
	bool auto_named = false;   // name chosen by Flax's auto-naming
	int index = -1;            // pre-order number among modules (not functions); root 0
	std::string json_location; // where in the JSON it came from, for messages
	std::string config;        // constructor arguments as compact JSON

	bool residual = false; // Compact: output = input + layers(input)

	// Dense, DenseGeneral, Conv, ConvTranspose, Embed, the attention and its
	// children: cast input and params to it and compute in it; the norms:
	// compute in float32 and cast the result to it. Functions keep their
	// input's dtype.
	LayerDtype dtype = LayerDtype::None;

	// Dense, Conv, ConvTranspose, Embed: output features
	int64_t features = 0;
	// DenseGeneral: features tuple and contracted axes (negative from the end)
	std::vector<int64_t> features_tuple;
	std::vector<int64_t> axis;
	bool use_bias = true;
	bool use_scale = true;

	// Conv, ConvTranspose; the pools use kernel_size (window_shape), strides, padding
	std::vector<int64_t> kernel_size;
	std::vector<int64_t> strides;
	std::vector<int64_t> input_dilation;
	std::vector<int64_t> kernel_dilation;
	PaddingSpec padding;
	int64_t feature_group_count = 1;
	bool count_include_pad = true; // avg_pool

	// norms
	double epsilon = 1e-6;
	double momentum = 0.99;
	int64_t num_groups = 32;      // GroupNorm; 0 when group_size is given
	int64_t group_size = 0;
	int64_t reduction_axes = 1;   // LayerNorm, RMSNorm: number of trailing axes
	bool use_running_average = true;

	// Embed
	int64_t num_embeddings = 0;

	// MultiHeadDotProductAttention (0: the input's features)
	int64_t num_heads = 0;
	int64_t qkv_features = 0;
	int64_t out_features = 0;

	// Dropout
	double rate = 0;

	// functions
	bool approximate = true;      // gelu
	double negative_slope = 0.01; // leaky_relu
	double alpha = 1.0;           // elu
	std::vector<int64_t> shape;   // reshape (one -1 allowed)

	std::vector<Module> layers; // Compact, Sequential; Attention: query, key, value, out

	bool is_function() const { return kind == ModuleKind::Function; }
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

// The dtype of the model's input: I32 when it starts with an Embed.
DType input_dtype(const Model& model);

// Checks every variable path and shape against the model; throws one
// flaxdrm::Error listing every mismatch, missing and unexpected entry, e.g.
//   params/Dense_1/kernel: shape (64, 10), expected (128, 10)
void check_variables(const Model& model, const Variables& variables, const Shape& input_shape,
		     const std::string& variables_source = "variables");

} // namespace flaxdrm
