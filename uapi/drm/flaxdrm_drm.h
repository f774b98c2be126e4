/* SPDX-License-Identifier: MIT */
/*
 * flaxdrm: Flax-style neural-network modules through a DRM render node.
 *
 * This is the ioctl ABI shared by the kernel module and userspace. Every
 * struct has a fixed size with explicit padding; pads and reserved fields
 * must be zero, unknown flags are refused, user pointers are __u64.
 */
#ifndef _UAPI_FLAXDRM_DRM_H_
#define _UAPI_FLAXDRM_DRM_H_

#include "drm.h"

#if defined(__cplusplus)
extern "C" {
#endif

#define FLAXDRM_DRIVER_NAME	"flaxdrm"

/*
 * ABI version reported by FLAXDRM_PARAM_VERSION: major << 16 | minor.
 * 1.1 added FLAXDRM_OP_ASTYPE and f16 tensors for the GEMM family,
 * activations and binary ops; 1.2 extended f16 to every op that computes
 * on floats (all its float operands one dtype; indices and masks stay
 * I32) and to transpose, concat and slice. Userspace checks the minor
 * before using them.
 */
#define FLAXDRM_VERSION_MAJOR	1
#define FLAXDRM_VERSION_MINOR	2

#define DRM_FLAXDRM_GET_PARAM		0x00
#define DRM_FLAXDRM_BO_CREATE		0x01
#define DRM_FLAXDRM_BO_MMAP_OFFSET	0x02
#define DRM_FLAXDRM_MODULE_CREATE	0x03
#define DRM_FLAXDRM_MODULE_DESTROY	0x04
#define DRM_FLAXDRM_VAR_BIND		0x05
#define DRM_FLAXDRM_PROGRAM_CREATE	0x06
#define DRM_FLAXDRM_PROGRAM_DESTROY	0x07
#define DRM_FLAXDRM_SUBMIT		0x08
#define DRM_FLAXDRM_MODULE_QUERY	0x09
#define DRM_FLAXDRM_JOB_QUERY		0x0a
#define DRM_FLAXDRM_PERFMON_CREATE	0x0b
#define DRM_FLAXDRM_PERFMON_DESTROY	0x0c
#define DRM_FLAXDRM_PERFMON_GET_VALUES	0x0d
#define DRM_FLAXDRM_COUNTER_QUERY	0x0e
#define DRM_FLAXDRM_ENGINE_ATTACH	0x10
#define DRM_FLAXDRM_ENGINE_FETCH	0x11
#define DRM_FLAXDRM_ENGINE_COMPLETE	0x12

/* Limits; the kernel refuses anything larger with EINVAL. */
#define FLAXDRM_MAX_RANK	6
#define FLAXDRM_NAME_LEN	64	/* module and variable names, NUL included */
#define FLAXDRM_COLLECTION_LEN	32	/* collection names, NUL included */
#define FLAXDRM_MAX_OP_INPUTS	8
#define FLAXDRM_MAX_OP_OUTPUTS	4
#define FLAXDRM_MAX_OP_ATTRS	16
#define FLAXDRM_MAX_TENSORS	4096
#define FLAXDRM_MAX_OPS		4096
#define FLAXDRM_MAX_BINDINGS	1024
#define FLAXDRM_MAX_SYNCS	64
#define FLAXDRM_MAX_MUTABLE	16
#define FLAXDRM_MAX_CONFIG_SIZE	1024
#define FLAXDRM_MAX_BO_SIZE	0x400000000ull	/* 16 GiB: 1 << 34 */

/* ---------------------------------------------------------------- params */

enum flaxdrm_param {
	FLAXDRM_PARAM_VERSION = 0,		/* major << 16 | minor */
	FLAXDRM_PARAM_ENGINE_ATTACHED = 1,	/* 1 while an engine is attached */
	FLAXDRM_PARAM_JOB_TIMEOUT_MS = 2,	/* scheduler timeout per job */
	FLAXDRM_PARAM_MAX_TENSORS = 3,
	FLAXDRM_PARAM_MAX_OPS = 4,
	FLAXDRM_PARAM_NUM_COUNTERS = 5,	/* perf counters, ids 0..n-1 */
};

struct drm_flaxdrm_get_param {
	__u32 param;	/* in: enum flaxdrm_param */
	__u32 pad;	/* must be zero */
	__u64 value;	/* out */
};

/* ------------------------------------------------------------ GEM objects */

struct drm_flaxdrm_bo_create {
	__u64 size;	/* in: bytes, 1..FLAXDRM_MAX_BO_SIZE, rounded up to a page */
	__u32 flags;	/* in: none defined, must be zero */
	__u32 handle;	/* out */
};

struct drm_flaxdrm_bo_mmap_offset {
	__u32 handle;	/* in */
	__u32 flags;	/* in: must be zero */
	__u64 offset;	/* out: fake offset for mmap() on the same fd */
};

/* ---------------------------------------------------------- module tree */

/*
 * Module kinds. A layer kind fixes the Flax class name used for auto-naming
 * (Dense_0, Conv_1, ...); FLAXDRM_KIND_MODULE is a user-defined composite
 * whose class name is given in class_name.
 */
enum flaxdrm_module_kind {
	FLAXDRM_KIND_MODULE = 0,
	FLAXDRM_KIND_SEQUENTIAL = 1,
	FLAXDRM_KIND_DENSE = 2,
	FLAXDRM_KIND_DENSE_GENERAL = 3,
	FLAXDRM_KIND_CONV = 4,
	FLAXDRM_KIND_CONV_TRANSPOSE = 5,
	FLAXDRM_KIND_LAYER_NORM = 6,
	FLAXDRM_KIND_RMS_NORM = 7,
	FLAXDRM_KIND_GROUP_NORM = 8,
	FLAXDRM_KIND_BATCH_NORM = 9,
	FLAXDRM_KIND_EMBED = 10,
	FLAXDRM_KIND_ATTENTION = 11,	/* MultiHeadDotProductAttention */
	FLAXDRM_KIND_DROPOUT = 12,
	FLAXDRM_KIND_COUNT
};

struct drm_flaxdrm_module_create {
	__u32 parent;		/* in: parent module handle, 0 for a root */
	__u32 kind;		/* in: enum flaxdrm_module_kind */
	__u32 flags;		/* in: must be zero */
	__u32 handle;		/* out */
	/*
	 * in/out: the module's name in its parent. Empty asks for Flax's
	 * auto-name (<class>_<n>, one counter per class in the parent); the
	 * chosen name is written back. Must be empty for a root. A name holds
	 * no '/' and is zero-filled after its NUL. A name (given or automatic)
	 * already used in the parent is EEXIST; like Flax, an automatic name
	 * that is taken still consumes its counter value, and counters never
	 * go back (destroying Dense_0 does not make the next one Dense_0).
	 * Trees are at most 64 levels deep (EINVAL).
	 */
	char name[FLAXDRM_NAME_LEN];
	/* in: class name for FLAXDRM_KIND_MODULE, must be empty otherwise */
	char class_name[FLAXDRM_NAME_LEN];
	__u64 config;		/* in: pointer to opaque constructor config */
	__u32 config_size;	/* in: 0..FLAXDRM_MAX_CONFIG_SIZE */
	__u32 pad;		/* must be zero */
};

/*
 * Destroying a module destroys its subtree and drops its variables' BO
 * references. Programs naming a destroyed module stay allocated but are
 * refused at SUBMIT with ENOENT; jobs already submitted are not affected.
 */
struct drm_flaxdrm_module_destroy {
	__u32 handle;	/* in: destroys the module and its whole subtree */
	__u32 pad;	/* must be zero */
};

/*
 * Reads a module's name, path, kind and tree links. The path is the
 * '/'-joined names below the root ("Block_0/Dense_1"; "" for a root).
 * With path == 0 only path_size is set; a buffer smaller than path_size
 * is ENOSPC (path_size still set), as for ENGINE_FETCH.
 */
struct drm_flaxdrm_module_query {
	__u32 handle;		/* in */
	__u32 pad;		/* must be zero */
	__u32 kind;		/* out */
	__u32 parent;		/* out: 0 for a root */
	__u32 num_children;	/* out */
	__u32 num_variables;	/* out */
	char name[FLAXDRM_NAME_LEN];	/* out */
	__u64 path;		/* in: pointer to a buffer for the '/'-joined path, or 0 */
	__u32 path_size;	/* in: buffer size; out: bytes needed incl. NUL */
	__u32 pad2;		/* must be zero */
};

enum flaxdrm_dtype {
	FLAXDRM_DTYPE_F32 = 1,
	FLAXDRM_DTYPE_F16 = 2,
	FLAXDRM_DTYPE_BF16 = 3,
	FLAXDRM_DTYPE_I32 = 4,
	FLAXDRM_DTYPE_I64 = 5,
};

/*
 * Binds a variable of a module (collection/name) to a range of a BO. The
 * variable takes a reference on the BO; rebinding replaces it and bumps the
 * variable's generation so the engine drops any cached copy. A variable
 * keeps its var_id across rebinds. A rebind may change the shape; a
 * program built for the old shape is then refused at SUBMIT (EINVAL).
 * Names and collections are non-empty, without '/', zero-filled. At most
 * 1024 variables per module (ENOSPC).
 */
struct drm_flaxdrm_var_bind {
	__u32 module;		/* in */
	__u32 bo;		/* in: BO handle in the caller's file */
	__u64 offset;		/* in: bytes into the BO */
	__u32 dtype;		/* in: enum flaxdrm_dtype */
	__u32 rank;		/* in: 0..FLAXDRM_MAX_RANK */
	__u32 dims[FLAXDRM_MAX_RANK];	/* in: unused dims must be zero */
	__u32 flags;		/* in: must be zero */
	__u32 pad;		/* must be zero */
	char collection[FLAXDRM_COLLECTION_LEN];	/* in: e.g. "params" */
	char name[FLAXDRM_NAME_LEN];		/* in: e.g. "kernel" */
};

/* ------------------------------------------------------------- programs */

enum flaxdrm_tensor_kind {
	FLAXDRM_TENSOR_INPUT = 1,	/* bound to a BO range at submit */
	FLAXDRM_TENSOR_OUTPUT = 2,	/* bound to a BO range at submit */
	FLAXDRM_TENSOR_TEMP = 3,	/* allocated by the engine */
	FLAXDRM_TENSOR_VARIABLE = 4,	/* module/collection/name */
};

struct drm_flaxdrm_tensor {
	__u32 kind;	/* enum flaxdrm_tensor_kind */
	__u32 dtype;	/* enum flaxdrm_dtype */
	__u32 rank;	/* 0..FLAXDRM_MAX_RANK */
	__u32 module;	/* VARIABLE: module handle; otherwise zero */
	__u32 dims[FLAXDRM_MAX_RANK];	/* unused dims must be zero */
	char collection[FLAXDRM_COLLECTION_LEN];	/* VARIABLE only */
	char name[FLAXDRM_NAME_LEN];		/* VARIABLE only */
};

/*
 * Opcodes. Layer ops name the module they belong to (its variables are
 * ordinary VARIABLE operands); plain ops have module == 0. Inputs and
 * outputs are tensor indices. Attributes are opcode-specific 32-bit words,
 * floats as IEEE-754 binary32 bit patterns; unused words must be zero.
 * Spatial ops take channels-last (NHWC) inputs and HWIO kernels, as Flax.
 * Every output's dtype and dims must equal what the op's rule infers.
 */
enum flaxdrm_opcode {
	/*
	 * Dense and DenseGeneral: x[..., k1..kn] @ kernel[k1..kn, f1..fm]
	 * (+ bias[f1..fm]) -> y[..., f1..fm]. attrs[0]: n, the number of
	 * contracted trailing axes of x (0 means 1).
	 */
	FLAXDRM_OP_DENSE = 0x01,
	FLAXDRM_OP_RELU = 0x02,		/* elementwise unary, same shape */
	/* Embed.attend: q[..., F] @ table[N, F]^T -> [..., N] */
	FLAXDRM_OP_ATTEND = 0x03,
	/*
	 * Embed lookup as jnp.take: indices (I32, any shape) and table[N, F]
	 * -> [indices..., F]; an index in [-N, 0) counts from the end, one
	 * outside [-N, N) gives NaN (JAX's fill mode).
	 */
	FLAXDRM_OP_EMBED = 0x04,
	/*
	 * a[..., M, K] @ b[..., K, N] -> [..., M, N] with NumPy broadcasting
	 * of the batch dims. attrs[0]: bit 0 transposes a, bit 1 transposes b.
	 */
	FLAXDRM_OP_MATMUL = 0x05,
	/*
	 * Conv and ConvTranspose (as lax.conv_general_dilated):
	 * x[N, H, W, C], kernel[KH, KW, C / groups, F], [bias[F]] ->
	 * y[N, OH, OW, F]. attrs: [0..1] strides (h, w), [2..3] input
	 * dilation, [4..5] kernel dilation, [6] feature_group_count (all >= 1),
	 * [7] padding mode (FLAXDRM_PAD_*), [8..11] padding top, bottom, left,
	 * right. OH = (dilated H + top + bottom - dilated KH) / stride_h + 1.
	 */
	FLAXDRM_OP_CONV = 0x06,
	/*
	 * Pooling over x[N, H, W, C]: attrs [0..1] window, [2..3] strides,
	 * [4..7] padding top, bottom, left, right; AVG_POOL attrs[8]:
	 * count_include_pad (Flax's default is 1). Max pool pads with -inf.
	 */
	FLAXDRM_OP_AVG_POOL = 0x07,
	FLAXDRM_OP_MAX_POOL = 0x08,
	/*
	 * Normalisation. attrs[0]: epsilon; attrs[2]: FLAXDRM_NORM_* flags
	 * saying which optional operands follow x, in the order scale, bias.
	 * LAYER_NORM, RMS_NORM: statistics over the last attrs[1] axes (0
	 * means 1), scale/bias shaped like the last axis.
	 * GROUP_NORM: x[N, ..., C], attrs[1] groups dividing C, statistics per
	 * sample and group, scale/bias[C].
	 * BATCH_NORM: x[..., C], mean[C], var[C], [scale[C]], [bias[C]] -> y;
	 * with FLAXDRM_NORM_TRAINING it also writes outputs new_mean[C] and
	 * new_var[C] (momentum in attrs[1]) from the biased batch statistics,
	 * which normalise y.
	 */
	FLAXDRM_OP_LAYER_NORM = 0x09,
	FLAXDRM_OP_RMS_NORM = 0x0a,
	FLAXDRM_OP_GROUP_NORM = 0x0b,
	FLAXDRM_OP_BATCH_NORM = 0x0c,
	/*
	 * Scaled dot-product attention: q[B, Lq, H, D], k[B, Lk, H, D],
	 * v[B, Lk, H, Dv], [mask (I32, non-zero keeps) broadcastable to
	 * [B, H, Lq, Lk]] -> [B, Lq, H, Dv]. attrs[0]: FLAXDRM_ATTN_* flags;
	 * attrs[1]: scale (0.0f means 1/sqrt(D)). Masked logits take the
	 * lowest f32 value, as Flax does.
	 */
	FLAXDRM_OP_ATTENTION = 0x0d,
	/* binary elementwise with NumPy broadcasting */
	FLAXDRM_OP_ADD = 0x10,
	FLAXDRM_OP_SUB = 0x11,
	FLAXDRM_OP_MUL = 0x12,
	FLAXDRM_OP_DIV = 0x13,
	FLAXDRM_OP_MAXIMUM = 0x14,
	FLAXDRM_OP_MINIMUM = 0x15,
	/* unary elementwise, same shape */
	FLAXDRM_OP_GELU = 0x20,		/* attrs[0]: 1 tanh approximation, 0 exact */
	FLAXDRM_OP_SILU = 0x21,
	FLAXDRM_OP_SIGMOID = 0x22,
	FLAXDRM_OP_TANH = 0x23,
	FLAXDRM_OP_ELU = 0x24,		/* attrs[0]: alpha */
	FLAXDRM_OP_LEAKY_RELU = 0x25,	/* attrs[0]: negative slope */
	FLAXDRM_OP_SOFTPLUS = 0x26,
	FLAXDRM_OP_SOFTMAX = 0x27,	/* over the last axis */
	FLAXDRM_OP_LOG_SOFTMAX = 0x28,	/* over the last axis */
	/*
	 * Dropout: keeps with probability 1 - rate and scales by
	 * 1 / (1 - rate). attrs[0]: rate; attrs[1..2]: seed (low, high).
	 */
	FLAXDRM_OP_DROPOUT = 0x29,
	/* reductions: attrs[0] bitmask of axes, attrs[1] keepdims */
	FLAXDRM_OP_REDUCE_SUM = 0x30,
	FLAXDRM_OP_REDUCE_MEAN = 0x31,
	FLAXDRM_OP_REDUCE_MAX = 0x32,
	/* layout */
	FLAXDRM_OP_RESHAPE = 0x38,	/* same element count, a view */
	FLAXDRM_OP_TRANSPOSE = 0x39,	/* attrs[0..rank-1]: permutation */
	FLAXDRM_OP_CONCAT = 0x3a,	/* 1..8 inputs; attrs[0]: axis */
	FLAXDRM_OP_SLICE = 0x3b,	/* attrs[0..rank-1]: start; size from y */
	/*
	 * x.astype(y's dtype): x and y F32 or F16, same dims, no attributes.
	 * f32 -> f16 rounds to nearest and overflows to infinity; NaN stays
	 * NaN. Since 1.2 every op that computes on floats also runs on F16
	 * when all its float tensors are F16 (computing in f32, rounding
	 * once on store).
	 */
	FLAXDRM_OP_ASTYPE = 0x3c,
	FLAXDRM_OP_COUNT
};

#define FLAXDRM_PAD_ZERO	0x0
#define FLAXDRM_PAD_CIRCULAR	0x1

#define FLAXDRM_NORM_SCALE	0x1u
#define FLAXDRM_NORM_BIAS	0x2u
#define FLAXDRM_NORM_TRAINING	0x4u	/* BATCH_NORM only */

#define FLAXDRM_ATTN_CAUSAL	0x1u
#define FLAXDRM_ATTN_MASK	0x2u	/* a mask operand follows v */

struct drm_flaxdrm_op {
	__u32 opcode;		/* enum flaxdrm_opcode */
	__u32 module;		/* layer ops: module handle; plain ops: 0 */
	__u32 num_inputs;
	__u32 num_outputs;
	__u32 inputs[FLAXDRM_MAX_OP_INPUTS];	/* unused entries must be zero */
	__u32 outputs[FLAXDRM_MAX_OP_OUTPUTS];	/* unused entries must be zero */
	__u32 attrs[FLAXDRM_MAX_OP_ATTRS];	/* opcode-specific, else zero */
};

#define FLAXDRM_INDEX_NONE	0xffffffffu

struct drm_flaxdrm_program_create {
	__u32 root;		/* in: module every layer op must lie under */
	__u32 flags;		/* in: must be zero */
	__u64 tensors;		/* in: pointer to struct drm_flaxdrm_tensor[] */
	__u64 ops;		/* in: pointer to struct drm_flaxdrm_op[] */
	__u32 num_tensors;	/* in: 1..FLAXDRM_MAX_TENSORS */
	__u32 num_ops;		/* in: 1..FLAXDRM_MAX_OPS */
	__u32 handle;		/* out */
	/* out on EINVAL: the op and tensor found wrong, or FLAXDRM_INDEX_NONE */
	__u32 error_op;
	__u32 error_tensor;
	__u32 pad;		/* must be zero */
};

struct drm_flaxdrm_program_destroy {
	__u32 handle;	/* in */
	__u32 pad;	/* must be zero */
};

/* --------------------------------------------------------------- submit */

/*
 * SUBMIT checks everything first (EINVAL, ENOENT, EFAULT), then refuses
 * with ENODEV when no engine is attached. A CALL's program root must lie
 * in the job's module tree (EINVAL). A CALL whose program writes (has as
 * an op output) a VARIABLE of a collection not listed in
 * mutable_collections, without FLAXDRM_SUBMIT_MUTABLE_ALL, is EINVAL, as
 * Flax raises. An in-sync must already have a fence at its point (EINVAL
 * otherwise, as DRM_SYNCOBJ_WAIT without WAIT_FOR_SUBMIT). The out-sync
 * gets the job's fence (a new timeline point when point != 0). The fences
 * of the jobs of one open file signal in submission order; a job that
 * fails signals its fence with the error: the engine's status, -ETIMEDOUT
 * when the engine did not complete it within FLAXDRM_PARAM_JOB_TIMEOUT_MS of
 * fetching it, or let it wait that long in the queue without calling
 * FETCH or COMPLETE (a stalled engine: later jobs then fail at once with
 * -ETIMEDOUT until it calls FETCH or COMPLETE again), -ENODEV when the engine
 * went away. Closing the file does not cancel its submitted jobs. A file
 * may have at most 4096 unfinished jobs; SUBMIT beyond that is EBUSY.
 */

enum flaxdrm_job_op {
	FLAXDRM_JOB_SETUP = 1,		/* make the module tree resident */
	FLAXDRM_JOB_CALL = 2,		/* run a program on it */
	FLAXDRM_JOB_CLEANUP = 3,	/* release the engine's resources */
};

struct drm_flaxdrm_binding {
	__u32 tensor;	/* index of an INPUT or OUTPUT tensor */
	__u32 bo;	/* BO handle in the caller's file */
	__u64 offset;	/* bytes; offset + tensor size must fit the BO */
};

struct drm_flaxdrm_sync {
	__u32 handle;	/* syncobj handle */
	__u32 flags;	/* must be zero */
	__u64 point;	/* timeline point, 0 for a binary syncobj */
};

struct drm_flaxdrm_collection {
	char name[FLAXDRM_COLLECTION_LEN];
};

/* Every collection is mutable (Flax's mutable=True). */
#define FLAXDRM_SUBMIT_MUTABLE_ALL	0x1u
#define FLAXDRM_SUBMIT_FLAGS		FLAXDRM_SUBMIT_MUTABLE_ALL

struct drm_flaxdrm_submit {
	__u32 op;		/* enum flaxdrm_job_op */
	__u32 module;		/* root module of the job */
	__u32 program;		/* CALL: program handle; otherwise zero */
	__u32 flags;		/* FLAXDRM_SUBMIT_* */
	__u64 bindings;		/* pointer to struct drm_flaxdrm_binding[] */
	__u64 in_syncs;		/* pointer to struct drm_flaxdrm_sync[] */
	__u64 mutable_collections; /* pointer to struct drm_flaxdrm_collection[] */
	__u32 num_bindings;	/* CALL: one per INPUT and OUTPUT tensor */
	__u32 num_in_syncs;	/* 0..FLAXDRM_MAX_SYNCS */
	__u32 num_mutable;	/* 0..FLAXDRM_MAX_MUTABLE */
	__u32 pad;		/* must be zero */
	struct drm_flaxdrm_sync out_sync;	/* handle 0: none */
	__u64 job_id;		/* out: the job's sequence number */
	__u32 perfmon;		/* perfmon handle counting this job, or 0 */
	__u32 pad2;		/* must be zero */
	__u64 reserved;		/* must be zero */
};

/* ------------------------------------------------- profiling and counters */

/* Timestamps of one op of a CALL, in ns relative to the job's start. */
struct drm_flaxdrm_op_timing {
	__u32 op_index;
	__u32 opcode;
	__u64 start_ns;
	__u64 end_ns;
};

/*
 * The outcome of a job this file submitted. The kernel keeps the last
 * FLAXDRM_JOB_HISTORY completed jobs per file; an older or unknown job_id
 * (another file's job included) is ENOENT, one of this file still queued
 * or running is EBUSY. Up to num_op_timings entries are copied to
 * op_timings (none when it is 0) and num_op_timings is set to the number
 * the job has: the engine's, 0 when it reported none (always for SETUP
 * and CLEANUP). A bad op_timings pointer is EFAULT.
 */
#define FLAXDRM_JOB_HISTORY	64

struct drm_flaxdrm_job_query {
	__u64 job_id;		/* in */
	__u64 op_timings;	/* in: pointer to drm_flaxdrm_op_timing[], or 0 */
	__u32 num_op_timings;	/* in: capacity; out: entries the job has */
	__u32 flags;		/* in: must be zero */
	__s32 status;		/* out: 0 or the job's negative errno */
	__u32 op;		/* out: enum flaxdrm_job_op */
	__u64 queue_ns;		/* out: submit to handed to the engine */
	__u64 exec_ns;		/* out: engine execution time */
	__u64 shader_invocations;	/* out */
	__u64 flops;		/* out: derived from the program's shapes */
	__u64 bytes_read;	/* out: derived from the program's shapes */
	__u64 bytes_written;	/* out: derived from the program's shapes */
};

/*
 * Perf counter ids; FLAXDRM_PARAM_NUM_COUNTERS says how many exist. A job
 * counts once its result is known (completed, failed, timed out, or failed
 * by the engine's death). Bytes, FLOPs and ops count the work of the jobs
 * that succeeded, derived from the program's shapes (a Dense layer is
 * 2*M*K*N FLOPs plus M*N for its bias, an elementwise op a fixed number
 * per output element; bytes are the operands' sizes).
 */
enum flaxdrm_counter {
	FLAXDRM_COUNTER_JOBS_COMPLETED = 0,	/* jobs, errors included */
	FLAXDRM_COUNTER_QUEUE_WAIT_NS = 1,	/* submit to ENGINE_FETCH */
	FLAXDRM_COUNTER_ENGINE_EXEC_NS = 2,
	FLAXDRM_COUNTER_SHADER_INVOCATIONS = 3,
	FLAXDRM_COUNTER_BYTES_READ = 4,
	FLAXDRM_COUNTER_BYTES_WRITTEN = 5,
	FLAXDRM_COUNTER_FLOPS = 6,
	FLAXDRM_COUNTER_ERRORS = 7,		/* jobs that failed */
	FLAXDRM_COUNTER_OPS_EXECUTED = 8,
	FLAXDRM_COUNTER_COUNT
};

#define FLAXDRM_MAX_PERFMON_COUNTERS	32

/*
 * Names a counter: query by id, 0..FLAXDRM_PARAM_NUM_COUNTERS-1; an id past
 * the end is EINVAL. The strings are NUL-terminated and zero-filled.
 */
struct drm_flaxdrm_counter_query {
	__u32 id;		/* in */
	__u32 flags;		/* in: must be zero */
	char name[32];		/* out: e.g. "engine-exec" */
	char unit[16];		/* out: "ns", "jobs", "bytes", "flop", ... */
	char description[64];	/* out */
};

/*
 * A perfmon counts the listed counters over every job submitted with it,
 * from creation on. Values are 64-bit and never decrease. Each id must be
 * below FLAXDRM_COUNTER_COUNT and listed at most once (EINVAL); a bad
 * counters pointer is EFAULT; a file has at most 1024 perfmons (ENOSPC).
 * Perfmons belong to their file: another file's handle is ENOENT, for
 * SUBMIT too. DESTROY of an unknown handle is ENOENT; jobs submitted with
 * a destroyed perfmon still count in it, but it can no longer be read or
 * named at SUBMIT (ENOENT). GET_VALUES with num_values other than the
 * perfmon's count is EINVAL; values[i] is the counter counters[i].
 */
struct drm_flaxdrm_perfmon_create {
	__u64 counters;		/* in: pointer to __u32 ids */
	__u32 num_counters;	/* in: 1..FLAXDRM_MAX_PERFMON_COUNTERS */
	__u32 flags;		/* in: must be zero */
	__u32 handle;		/* out */
	__u32 pad;		/* must be zero */
};

struct drm_flaxdrm_perfmon_destroy {
	__u32 handle;		/* in */
	__u32 pad;		/* must be zero */
};

struct drm_flaxdrm_perfmon_get_values {
	__u32 handle;		/* in */
	__u32 flags;		/* in: must be zero */
	__u64 values;		/* in: pointer to __u64[num_counters] */
	__u32 num_values;	/* in: must equal the perfmon's num_counters */
	__u32 pad;		/* must be zero */
};

/* ---------------------------------------------------------------- engine */

/*
 * Engine ioctls: primary node only, CAP_SYS_ADMIN (EACCES otherwise, and on
 * the render node). One engine at a time: ATTACH by a second file is
 * EBUSY. FETCH and COMPLETE from a file that is not the attached engine
 * are EPERM. Closing the engine's file detaches it: every job it had
 * fetched or could fetch fails with -ENODEV and SUBMIT is ENODEV until an
 * engine attaches again.
 */

struct drm_flaxdrm_engine_attach {
	__u32 flags;	/* in: must be zero */
	__u32 pad;	/* must be zero */
};

/*
 * A fetched job is written to the caller's buffer as
 *   struct drm_flaxdrm_engine_job
 *   struct drm_flaxdrm_engine_tensor[num_tensors]
 *   struct drm_flaxdrm_op[num_ops]
 * BO handles are created in the engine's file and stay valid until the job
 * is completed; the engine must not keep mappings past ENGINE_COMPLETE.
 * One handle per distinct BO of the job (tensors sharing a BO share the
 * handle). The kernel deletes them at COMPLETE, or when the job times out
 * or the engine detaches: the engine must not close them itself.
 *
 * FETCH hands out jobs in the order the scheduler ran them, once their
 * in-syncs have signalled. The engine may run jobs of different contexts
 * concurrently but must run the jobs of one context in FETCH order (the
 * scheduler does not hold back a job that waits for an earlier job of the
 * same file). With timeout_ms, it blocks (interruptibly) until
 * a job is queued; none by then returns 0 with job_id 0 and buffer_size 0.
 * A buffer smaller than the job is ENOSPC with buffer_size set to the size
 * needed; the job stays queued. A buffer the kernel cannot write is EFAULT
 * (ENOMEM when memory runs out): no handle is left behind and the job goes
 * back to the head of the queue, still the next one (FETCH calls are
 * serialized). A timed-out job is forgotten: its late COMPLETE is ENOENT,
 * like one for an unknown job_id.
 *
 * writable: OUTPUT and TEMP tensors, and the VARIABLEs the CALL writes (the
 * program has them as op outputs; they are then in a mutable collection);
 * everything else is read-only, and SETUP/CLEANUP variables all are.
 *
 * SETUP and CLEANUP list every variable of the module subtree as VARIABLE
 * tensors and carry no ops; CALL carries the program.
 */
struct drm_flaxdrm_engine_job {
	__u64 job_id;
	__u32 op;		/* enum flaxdrm_job_op */
	__u32 module;		/* client's root module handle (informational) */
	__u64 context;		/* unique per client file: caches are keyed by it */
	__u32 num_tensors;
	__u32 num_ops;
	__u32 flags;		/* the submit's flags */
	__u32 pad;
};

struct drm_flaxdrm_engine_tensor {
	struct drm_flaxdrm_tensor desc;
	__u32 bo;		/* handle in the engine's file, 0 for TEMP */
	__u32 writable;		/* 1 if the job may write it */
	__u64 offset;		/* bytes into the BO */
	__u64 size;		/* bytes of the tensor */
	__u64 var_id;		/* VARIABLE: unique id of the binding */
	__u64 var_generation;	/* VARIABLE: bumped on every rebind */
};

struct drm_flaxdrm_engine_fetch {
	__u32 timeout_ms;	/* in: how long to block for a job; 0 polls */
	__u32 flags;		/* in: must be zero */
	__u64 buffer;		/* in: pointer to the job buffer */
	__u32 buffer_size;	/* in: capacity; out: bytes written or needed */
	__u32 pad;		/* must be zero */
	__u64 job_id;		/* out: 0 when no job came before the timeout */
};

struct drm_flaxdrm_engine_complete {
	__u64 job_id;		/* in */
	__s32 status;		/* in: 0, or a negative errno (>= -4095) for the client */
	__u32 flags;		/* in: must be zero */
	__u64 exec_ns;		/* in: engine execution time */
	/* in: compute shader invocations (pipeline statistics), or 0 */
	__u64 shader_invocations;
	/*
	 * in: pointer to struct drm_flaxdrm_op_timing[num_op_timings], one
	 * per op of a CALL in program order (0 entries when the device has
	 * no timestamps); the kernel keeps them for JOB_QUERY. A count other
	 * than 0 or the job's op count, a pointer without a count, or an
	 * op_index out of range is EINVAL, a bad pointer EFAULT; a refused
	 * COMPLETE leaves the job with the engine.
	 */
	__u64 op_timings;
	__u32 num_op_timings;	/* in: 0 or the program's op count */
	__u32 pad;		/* must be zero */
	__u64 reserved;		/* must be zero */
};

#define DRM_IOCTL_FLAXDRM_GET_PARAM \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_FLAXDRM_GET_PARAM, struct drm_flaxdrm_get_param)
#define DRM_IOCTL_FLAXDRM_BO_CREATE \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_FLAXDRM_BO_CREATE, struct drm_flaxdrm_bo_create)
#define DRM_IOCTL_FLAXDRM_BO_MMAP_OFFSET \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_FLAXDRM_BO_MMAP_OFFSET, struct drm_flaxdrm_bo_mmap_offset)
#define DRM_IOCTL_FLAXDRM_MODULE_CREATE \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_FLAXDRM_MODULE_CREATE, struct drm_flaxdrm_module_create)
#define DRM_IOCTL_FLAXDRM_MODULE_DESTROY \
	DRM_IOW(DRM_COMMAND_BASE + DRM_FLAXDRM_MODULE_DESTROY, struct drm_flaxdrm_module_destroy)
#define DRM_IOCTL_FLAXDRM_MODULE_QUERY \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_FLAXDRM_MODULE_QUERY, struct drm_flaxdrm_module_query)
#define DRM_IOCTL_FLAXDRM_JOB_QUERY \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_FLAXDRM_JOB_QUERY, struct drm_flaxdrm_job_query)
#define DRM_IOCTL_FLAXDRM_PERFMON_CREATE \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_FLAXDRM_PERFMON_CREATE, struct drm_flaxdrm_perfmon_create)
#define DRM_IOCTL_FLAXDRM_PERFMON_DESTROY \
	DRM_IOW(DRM_COMMAND_BASE + DRM_FLAXDRM_PERFMON_DESTROY, struct drm_flaxdrm_perfmon_destroy)
#define DRM_IOCTL_FLAXDRM_PERFMON_GET_VALUES \
	DRM_IOW(DRM_COMMAND_BASE + DRM_FLAXDRM_PERFMON_GET_VALUES, \
		struct drm_flaxdrm_perfmon_get_values)
#define DRM_IOCTL_FLAXDRM_COUNTER_QUERY \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_FLAXDRM_COUNTER_QUERY, struct drm_flaxdrm_counter_query)
#define DRM_IOCTL_FLAXDRM_VAR_BIND \
	DRM_IOW(DRM_COMMAND_BASE + DRM_FLAXDRM_VAR_BIND, struct drm_flaxdrm_var_bind)
#define DRM_IOCTL_FLAXDRM_PROGRAM_CREATE \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_FLAXDRM_PROGRAM_CREATE, struct drm_flaxdrm_program_create)
#define DRM_IOCTL_FLAXDRM_PROGRAM_DESTROY \
	DRM_IOW(DRM_COMMAND_BASE + DRM_FLAXDRM_PROGRAM_DESTROY, struct drm_flaxdrm_program_destroy)
#define DRM_IOCTL_FLAXDRM_SUBMIT \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_FLAXDRM_SUBMIT, struct drm_flaxdrm_submit)
#define DRM_IOCTL_FLAXDRM_ENGINE_ATTACH \
	DRM_IOW(DRM_COMMAND_BASE + DRM_FLAXDRM_ENGINE_ATTACH, struct drm_flaxdrm_engine_attach)
#define DRM_IOCTL_FLAXDRM_ENGINE_FETCH \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_FLAXDRM_ENGINE_FETCH, struct drm_flaxdrm_engine_fetch)
#define DRM_IOCTL_FLAXDRM_ENGINE_COMPLETE \
	DRM_IOW(DRM_COMMAND_BASE + DRM_FLAXDRM_ENGINE_COMPLETE, struct drm_flaxdrm_engine_complete)

#if defined(__cplusplus)
}
#endif

#endif /* _UAPI_FLAXDRM_DRM_H_ */
