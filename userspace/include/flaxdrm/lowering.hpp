// Lowering a model to the program format of the UAPI (tensor table + ops).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "flaxdrm/model.hpp"
#include "flaxdrm/tensor.hpp"

extern "C" {
#include "flaxdrm_drm.h"
}

namespace flaxdrm {

struct LoweredVariable {
	uint32_t tensor;      // index in Program::tensors
	std::string path;     // "params/Dense_0/kernel", "batch_stats/BatchNorm_0/mean"
	int module_index;     // Module::index of the owner
	Shape shape;          // Flax's shape of the variable (the tensor may view it
			      // with another shape of the same size: a 1-D conv's kernel)
};

// One row of a model summary: a module or function with its input and
// output shapes, in call order.
struct LoweredLayer {
	const Module* module;
	int depth;            // 0 for the root
	Shape input, output;
};

struct Program {
	std::vector<drm_flaxdrm_tensor> tensors;
	std::vector<drm_flaxdrm_op> ops;
	std::vector<const Module*> op_modules; // per op: the module or function it comes from
	std::vector<LoweredVariable> variables; // the VARIABLE tensors
	uint32_t input = 0;   // the INPUT tensor
	uint32_t output = 0;  // the OUTPUT tensor
	Shape output_shape;
	std::vector<LoweredLayer> layers; // every module and function, in call order

	// "op 1 (Dense /Dense_1)", "tensor 3 (VARIABLE params/Dense_1/kernel (64, 10))"
	std::string describe_op(uint32_t op) const;
	std::string describe_tensor(uint32_t tensor) const;
};

// handles[m.index] is the module handle to use for module m (kernel handles
// on the drm device, synthetic ids on the local one; all non-zero).
Program lower(const Model& model, const Shape& input_shape, std::span<const uint32_t> handles);

// The program with synthetic module handles, for shapes and variables (an
// empty program, e.g. a lone Dropout, is not an error here).
Program lower_shapes(const Model& model, const Shape& input_shape);

// One VARIABLE/INPUT/OUTPUT descriptor (exposed for the device code).
drm_flaxdrm_tensor make_tensor(uint32_t kind, const Shape& shape, uint32_t module = 0,
			       const std::string& collection = {}, const std::string& name = {},
			       uint32_t dtype = FLAXDRM_DTYPE_F32);

} // namespace flaxdrm
