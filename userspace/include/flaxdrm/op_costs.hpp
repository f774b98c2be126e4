// FLOPs and bytes of one op of a program, from its shapes alone (flaxdrm
// profile's GFLOP/s and GB/s columns). Conventions (op_costs.cpp, one
// function per op):
//   - a multiply-add is 2 FLOPs; an exp, log, tanh, erf, rsqrt or compare is 1;
//   - bytes_read is every input tensor's bytes (variables included, Embed
//     reads only the rows it gathers), bytes_written every output's;
//   - layout ops do no FLOPs; a reshape is a view and moves no bytes.
#pragma once

#include <cstdint>
#include <span>

extern "C" {
#include "flaxdrm_drm.h"
}

namespace flaxdrm {

struct OpCost {
	uint64_t flops = 0;
	uint64_t bytes_read = 0;
	uint64_t bytes_written = 0;
};

// The op's operands index `tensors`; an index out of range counts as empty.
OpCost op_cost(const drm_flaxdrm_op& op, std::span<const drm_flaxdrm_tensor> tensors);

} // namespace flaxdrm
