/* SPDX-License-Identifier: MIT */
/*
 * libflaxdrm: C client library for the flaxdrm DRM driver.
 *
 * Every function returns 0 on success or a negative errno on failure
 * (-ENODEV when no flaxdrm device exists, -ETIME/-ETIMEDOUT on wait
 * timeouts, the ioctl's errno otherwise). Nothing here keeps global state;
 * all functions are thread-safe as far as the kernel's ioctls are.
 */
#ifndef FLAXDRM_FLAXDRM_H
#define FLAXDRM_FLAXDRM_H

#include <stddef.h>
#include <stdint.h>

#include "flaxdrm_drm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Node types, as libdrm's DRM_NODE_PRIMARY / DRM_NODE_RENDER. */
#define FLAXDRM_NODE_PRIMARY 0
#define FLAXDRM_NODE_RENDER 2

/* Largest device node path handled (libdrm's nodes are /dev/dri/...). */
#define FLAXDRM_PATH_MAX 256

/* ------------------------------------------------------------ discovery */

/*
 * Finds the first DRM device whose driver name is "flaxdrm" (checked with
 * drmGetVersion) and writes the path of its node of the given type
 * (FLAXDRM_NODE_RENDER for clients, FLAXDRM_NODE_PRIMARY for the engine).
 * Returns -ENODEV if there is none.
 */
int flaxdrm_find_node(int node_type, char *path, size_t path_size);

/*
 * Opens a node (O_RDWR | O_CLOEXEC) and checks its driver is flaxdrm
 * (-ENODEV otherwise). On success *fd is the open file descriptor.
 */
int flaxdrm_open_path(const char *path, int *fd);

/* flaxdrm_find_node() + flaxdrm_open_path(); path may be NULL. */
int flaxdrm_open(int node_type, int *fd, char *path, size_t path_size);

/* Closes a file descriptor opened by the functions above. */
int flaxdrm_close(int fd);

/* Driver name, version and date as drmGetVersion reports them. */
struct flaxdrm_version {
	int major, minor, patchlevel;
	char name[64];
	char date[64];
	char desc[128];
};
int flaxdrm_get_version(int fd, struct flaxdrm_version *version);

/* FLAXDRM_PARAM_* */
int flaxdrm_get_param(int fd, uint32_t param, uint64_t *value);

/* ------------------------------------------------------------------ BOs */

int flaxdrm_bo_create(int fd, uint64_t size, uint32_t *handle);
/* Maps size bytes of a BO from its start (PROT_READ | PROT_WRITE, shared). */
int flaxdrm_bo_mmap(int fd, uint32_t handle, uint64_t size, void **ptr);
int flaxdrm_bo_munmap(void *ptr, uint64_t size);
/* Drops the caller's handle (the object lives on while referenced). */
int flaxdrm_bo_close(int fd, uint32_t handle);

/* --------------------------------------------------------- module tree */

/*
 * Creates a module. name may be NULL or "" to ask for Flax's auto-name;
 * class_name is required for FLAXDRM_KIND_MODULE and must be NULL/"" for
 * the other kinds. If name_out is not NULL it receives the name the kernel
 * chose (FLAXDRM_NAME_LEN bytes).
 */
int flaxdrm_module_create(int fd, uint32_t parent, uint32_t kind,
			  const char *name, const char *class_name,
			  const void *config, uint32_t config_size,
			  uint32_t *handle, char *name_out);
int flaxdrm_module_destroy(int fd, uint32_t handle);

/*
 * Fills *info (kind, parent, counts, name). If path is not NULL the
 * '/'-joined path is written to it; *path_size is the buffer size in and
 * the bytes needed (NUL included) out. -ENOSPC if the buffer was too small.
 */
int flaxdrm_module_query(int fd, uint32_t handle,
			 struct drm_flaxdrm_module_query *info,
			 char *path, uint32_t *path_size);

int flaxdrm_var_bind(int fd, uint32_t module, const char *collection,
		     const char *name, uint32_t bo, uint64_t offset,
		     uint32_t dtype, uint32_t rank, const uint32_t *dims);

/* ------------------------------------------------------------- programs */

/*
 * Creates a program. On -EINVAL, *error_op and *error_tensor (if not NULL)
 * name the op and tensor the kernel found wrong, FLAXDRM_INDEX_NONE when
 * not applicable; on success or other errors they are FLAXDRM_INDEX_NONE.
 */
int flaxdrm_program_create(int fd, uint32_t root,
			   const struct drm_flaxdrm_tensor *tensors,
			   uint32_t num_tensors,
			   const struct drm_flaxdrm_op *ops, uint32_t num_ops,
			   uint32_t *handle, uint32_t *error_op,
			   uint32_t *error_tensor);
int flaxdrm_program_destroy(int fd, uint32_t handle);

/* ---------------------------------------------------------------- submit */

/* The raw SUBMIT ioctl; submit->job_id is written back. */
int flaxdrm_submit(int fd, struct drm_flaxdrm_submit *submit);

/* Convenience: a job on module `module` with one binary out-syncobj (0: none). */
int flaxdrm_submit_simple(int fd, uint32_t op, uint32_t module,
			  uint32_t program,
			  const struct drm_flaxdrm_binding *bindings,
			  uint32_t num_bindings, uint32_t out_syncobj,
			  uint64_t *job_id);

/*
 * SUBMIT like flaxdrm_submit_simple, counted by a perfmon (0: none; a kernel
 * without perfmons refuses a non-zero one with -EINVAL).
 */
int flaxdrm_submit_perfmon(int fd, uint32_t op, uint32_t module,
			   uint32_t program,
			   const struct drm_flaxdrm_binding *bindings,
			   uint32_t num_bindings, uint32_t out_syncobj,
			   uint32_t perfmon, uint64_t *job_id);

/* ---------------------------------------------------- profiling, counters */

/*
 * The outcome of a job this file submitted (JOB_QUERY). *info is filled in
 * (status, op, queue_ns, exec_ns, shader_invocations, flops, bytes); up to
 * capacity op timings are written to timings (may be NULL with capacity 0)
 * and info->num_op_timings is the number of entries the job has (0 when
 * the engine reported none). -ENOENT for an unknown or forgotten job,
 * -EBUSY while it runs; a kernel without JOB_QUERY gives -EINVAL or -ENOTTY.
 */
int flaxdrm_job_query(int fd, uint64_t job_id,
		      struct drm_flaxdrm_job_query *info,
		      struct drm_flaxdrm_op_timing *timings, uint32_t capacity);

/* Name, unit and description of counter id (COUNTER_QUERY). */
int flaxdrm_counter_query(int fd, uint32_t id,
			  struct drm_flaxdrm_counter_query *info);

/* A perfmon counting counters[0..num_counters-1] over the jobs submitted with it. */
int flaxdrm_perfmon_create(int fd, const uint32_t *counters,
			   uint32_t num_counters, uint32_t *handle);
int flaxdrm_perfmon_destroy(int fd, uint32_t handle);
/* values[num_values]; num_values must equal the perfmon's counter count. */
int flaxdrm_perfmon_get_values(int fd, uint32_t handle, uint64_t *values,
			       uint32_t num_values);

/* ------------------------------------------------------------- syncobjs */

int flaxdrm_syncobj_create(int fd, uint32_t flags, uint32_t *handle);
int flaxdrm_syncobj_destroy(int fd, uint32_t handle);
int flaxdrm_syncobj_reset(int fd, uint32_t handle);
/*
 * Waits for a binary syncobj for at most timeout_ns (relative; < 0 waits
 * forever). Returns 0 once signalled, -ETIME on timeout. Waits for a fence
 * to be attached too (WAIT_FOR_SUBMIT).
 */
int flaxdrm_syncobj_wait(int fd, uint32_t handle, int64_t timeout_ns);
/* Same for a timeline syncobj point. */
int flaxdrm_syncobj_timeline_wait(int fd, uint32_t handle, uint64_t point,
				  int64_t timeout_ns);
/*
 * The status of a binary syncobj's fence: *status is 1 when signalled
 * without error, 0 while pending, a negative errno when the fence was
 * signalled with an error (the job failed). Read through a sync_file,
 * since DRM_IOCTL_SYNCOBJ_WAIT does not report fence errors.
 */
int flaxdrm_syncobj_status(int fd, uint32_t handle, int *status);

/* --------------------------------------------------------------- engine */

/* Primary node, CAP_SYS_ADMIN. */
int flaxdrm_engine_attach(int fd);
/*
 * Fetches a job into buffer (layout: see struct drm_flaxdrm_engine_job).
 * *buffer_size is the capacity in and the bytes written (or needed, with
 * -ENOSPC) out; *job_id is 0 when no job arrived within timeout_ms.
 */
int flaxdrm_engine_fetch(int fd, uint32_t timeout_ms, void *buffer,
			 uint32_t *buffer_size, uint64_t *job_id);
int flaxdrm_engine_complete(int fd, uint64_t job_id, int32_t status,
			    uint64_t exec_ns);
/*
 * ENGINE_COMPLETE with the profile of a CALL: compute shader invocations
 * (0: unknown) and one timing per op in program order (NULL/0: none). A
 * kernel that does not take these yet refuses non-zero ones with -EINVAL.
 */
int flaxdrm_engine_complete_profile(int fd, uint64_t job_id, int32_t status,
				    uint64_t exec_ns,
				    uint64_t shader_invocations,
				    const struct drm_flaxdrm_op_timing *timings,
				    uint32_t num_timings);

/* ---------------------------------------------------------------- misc */

/* Human-readable names, "unknown" for unknown values. */
const char *flaxdrm_kind_name(uint32_t kind);
const char *flaxdrm_job_op_name(uint32_t op);

#ifdef __cplusplus
}
#endif

#endif /* FLAXDRM_FLAXDRM_H */
