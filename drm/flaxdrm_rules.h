/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Program rules: the dtype, shape and ordering rules of the program format.
 *
 * This file and flaxdrm_rules.c are freestanding C over the UAPI types only,
 * so the kernel (which must validate) and the engine runtime (which refuses
 * what it cannot run) apply one set of rules instead of two copies.
 */
#ifndef FLAXDRM_RULES_H
#define FLAXDRM_RULES_H

#include <linux/types.h>
#include "flaxdrm_drm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes per element of a dtype, 0 for an unknown dtype. */
__u32 flaxdrm_dtype_size(__u32 dtype);

/*
 * Bytes of a tensor with the given dtype/rank/dims, or 0 when the dtype or
 * rank is unknown, a used dim is zero, an unused dim is non-zero, or the
 * size exceeds FLAXDRM_MAX_BO_SIZE.
 */
__u64 flaxdrm_shape_bytes(__u32 dtype, __u32 rank, const __u32 *dims);

/* flaxdrm_shape_bytes() of a tensor descriptor. */
__u64 flaxdrm_tensor_bytes(const struct drm_flaxdrm_tensor *t);

/*
 * Checks one tensor descriptor on its own: kind, dtype, rank, dims, that
 * module/collection/name are set exactly for VARIABLE tensors and that the
 * strings are NUL-terminated with zero fill. Returns 0 or -EINVAL.
 */
int flaxdrm_check_tensor(const struct drm_flaxdrm_tensor *t);

/*
 * Checks a whole program except module handles, which only the kernel can
 * resolve: every tensor, every opcode and operand count, unused operand
 * slots and attributes zero, every operand index in range, outputs of kind
 * OUTPUT, TEMP or VARIABLE, every TEMP/OUTPUT written exactly once before
 * it is read, every OUTPUT written, VARIABLEs written at most once, layer
 * ops with a module and plain ops without one, and every output's dtype and
 * dims equal to what the op's rule infers from its inputs.
 *
 * scratch must hold num_tensors bytes (the kernel cannot put 4 KiB on its
 * stack). Returns 0 or -EINVAL; on error *bad_op and *bad_tensor name the
 * op and tensor at fault (FLAXDRM_INDEX_NONE when not applicable).
 */
int flaxdrm_check_program(const struct drm_flaxdrm_tensor *tensors,
			  __u32 num_tensors,
			  const struct drm_flaxdrm_op *ops, __u32 num_ops,
			  __u8 *scratch, __u32 *bad_op, __u32 *bad_tensor);

/* Whether an opcode is a layer op (needs a module). */
int flaxdrm_op_is_layer(__u32 opcode);

/*
 * Bitmask (1 << enum flaxdrm_module_kind) of the module kinds a layer op
 * may belong to; 0 for plain ops and unknown opcodes.
 */
__u32 flaxdrm_op_module_kinds(__u32 opcode);

/* Flax class name of an opcode, for messages ("Dense", "relu", ...). */
const char *flaxdrm_op_name(__u32 opcode);

/*
 * Work of an op from its shapes (flaxdrm_rules_cost.c): Dense 2*M*K*N
 * (+ M*N with a bias), Conv 2*N*OH*OW*F*KH*KW*C/groups (+ N*OH*OW*F with
 * a bias), attention B*H*Lq*Lk*(2*D + 5 + 2*Dv), elementwise ops a fixed
 * count per output element; bytes are the inputs' and outputs' sizes.
 * Operand indices out of range count as empty tensors; sums saturate.
 */
struct flaxdrm_cost {
	__u64 flops;
	__u64 bytes_read;
	__u64 bytes_written;
};

void flaxdrm_op_cost(const struct drm_flaxdrm_op *op,
		     const struct drm_flaxdrm_tensor *tensors,
		     __u32 num_tensors, struct flaxdrm_cost *cost);

/* The sum of flaxdrm_op_cost() over a program's ops. */
void flaxdrm_program_cost(const struct drm_flaxdrm_op *ops, __u32 num_ops,
			  const struct drm_flaxdrm_tensor *tensors,
			  __u32 num_tensors, struct flaxdrm_cost *cost);

#ifdef __cplusplus
}
#endif

#endif /* FLAXDRM_RULES_H */
