// SPDX-License-Identifier: MIT
/*
 * libflaxdrm: thin C wrappers over the flaxdrm ioctls (see flaxdrm.h).
 */
#define _GNU_SOURCE
#include "flaxdrm/flaxdrm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/sync_file.h>
#include <xf86drm.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static int do_ioctl(int fd, unsigned long request, void *arg)
{
	/* drmIoctl restarts on EINTR/EAGAIN */
	if (drmIoctl(fd, request, arg) == 0)
		return 0;
	return errno ? -errno : -EIO;
}

/* Copies a C string into a fixed field, zero-filled; -EINVAL if too long. */
static int copy_name(char *dst, size_t size, const char *src)
{
	size_t len = src ? strlen(src) : 0;

	memset(dst, 0, size);
	if (len >= size)
		return -EINVAL;
	if (len)
		memcpy(dst, src, len);
	return 0;
}

/* ------------------------------------------------------------ discovery */

static int is_flaxdrm_fd(int fd)
{
	drmVersionPtr v = drmGetVersion(fd);
	int ok;

	if (!v)
		return 0;
	ok = v->name && strcmp(v->name, FLAXDRM_DRIVER_NAME) == 0;
	drmFreeVersion(v);
	return ok;
}

static int is_flaxdrm_path(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	int ok;

	if (fd < 0)
		return 0;
	ok = is_flaxdrm_fd(fd);
	close(fd);
	return ok;
}

static int set_path(char *path, size_t path_size, const char *node)
{
	if (!path || !path_size)
		return 0;
	if (strlen(node) >= path_size)
		return -ENAMETOOLONG;
	strcpy(path, node);
	return 0;
}

/*
 * Checks the driver name through the render node when the device has one
 * (anyone may open it), else through the requested node itself.
 */
static int device_is_flaxdrm(drmDevicePtr dev, int node_type)
{
	if (dev->available_nodes & (1 << DRM_NODE_RENDER))
		return is_flaxdrm_path(dev->nodes[DRM_NODE_RENDER]);
	return is_flaxdrm_path(dev->nodes[node_type]);
}

int flaxdrm_find_node(int node_type, char *path, size_t path_size)
{
	drmDevicePtr devices[64];
	char node[FLAXDRM_PATH_MAX];
	int n, i, ret = -ENODEV;

	if (node_type != FLAXDRM_NODE_PRIMARY && node_type != FLAXDRM_NODE_RENDER)
		return -EINVAL;

	n = drmGetDevices2(0, devices, ARRAY_SIZE(devices));
	for (i = 0; i < n && ret == -ENODEV; i++) {
		if (!(devices[i]->available_nodes & (1 << node_type)))
			continue;
		if (device_is_flaxdrm(devices[i], node_type))
			ret = set_path(path, path_size, devices[i]->nodes[node_type]);
	}
	if (n > 0)
		drmFreeDevices(devices, n);
	if (ret != -ENODEV)
		return ret;

	/*
	 * Fallback: libdrm skips devices on buses it cannot parse (a virtual
	 * platform device without OF data, for one), so scan the nodes.
	 */
	for (i = 0; i < 64; i++) {
		if (node_type == FLAXDRM_NODE_RENDER)
			snprintf(node, sizeof(node), "%s/renderD%d", DRM_DIR_NAME, 128 + i);
		else
			snprintf(node, sizeof(node), "%s/card%d", DRM_DIR_NAME, i);
		if (access(node, F_OK) == 0 && is_flaxdrm_path(node))
			return set_path(path, path_size, node);
	}
	return -ENODEV;
}

int flaxdrm_open_path(const char *path, int *fd_out)
{
	int fd;

	if (!path || !fd_out)
		return -EINVAL;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (!is_flaxdrm_fd(fd)) {
		close(fd);
		return -ENODEV;
	}
	*fd_out = fd;
	return 0;
}

int flaxdrm_open(int node_type, int *fd, char *path, size_t path_size)
{
	char node[FLAXDRM_PATH_MAX];
	int ret;

	ret = flaxdrm_find_node(node_type, node, sizeof(node));
	if (ret)
		return ret;
	ret = flaxdrm_open_path(node, fd);
	if (ret)
		return ret;
	ret = set_path(path, path_size, node);
	if (ret) {
		close(*fd);
		*fd = -1;
	}
	return ret;
}

int flaxdrm_close(int fd)
{
	return close(fd) ? -errno : 0;
}

static void copy_str(char *dst, size_t size, const char *src, int len)
{
	size_t n = 0;

	if (src && len > 0)
		n = (size_t)len < size - 1 ? (size_t)len : size - 1;
	if (n)
		memcpy(dst, src, n);
	dst[n] = 0;
}

int flaxdrm_get_version(int fd, struct flaxdrm_version *version)
{
	drmVersionPtr v;

	if (!version)
		return -EINVAL;
	v = drmGetVersion(fd);
	if (!v)
		return errno ? -errno : -EIO;
	memset(version, 0, sizeof(*version));
	version->major = v->version_major;
	version->minor = v->version_minor;
	version->patchlevel = v->version_patchlevel;
	copy_str(version->name, sizeof(version->name), v->name, v->name_len);
	copy_str(version->date, sizeof(version->date), v->date, v->date_len);
	copy_str(version->desc, sizeof(version->desc), v->desc, v->desc_len);
	drmFreeVersion(v);
	return 0;
}

int flaxdrm_get_param(int fd, uint32_t param, uint64_t *value)
{
	struct drm_flaxdrm_get_param args = { .param = param };
	int ret;

	if (!value)
		return -EINVAL;
	ret = do_ioctl(fd, DRM_IOCTL_FLAXDRM_GET_PARAM, &args);
	if (!ret)
		*value = args.value;
	return ret;
}

/* ------------------------------------------------------------------ BOs */

int flaxdrm_bo_create(int fd, uint64_t size, uint32_t *handle)
{
	struct drm_flaxdrm_bo_create args = { .size = size };
	int ret;

	if (!handle)
		return -EINVAL;
	ret = do_ioctl(fd, DRM_IOCTL_FLAXDRM_BO_CREATE, &args);
	if (!ret)
		*handle = args.handle;
	return ret;
}

int flaxdrm_bo_mmap(int fd, uint32_t handle, uint64_t size, void **ptr)
{
	struct drm_flaxdrm_bo_mmap_offset args = { .handle = handle };
	void *p;
	int ret;

	if (!ptr || !size || size > (uint64_t)SIZE_MAX)
		return -EINVAL;
	ret = do_ioctl(fd, DRM_IOCTL_FLAXDRM_BO_MMAP_OFFSET, &args);
	if (ret)
		return ret;
	if (args.offset > (uint64_t)INT64_MAX)
		return -EOVERFLOW;
	p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 (off_t)args.offset);
	if (p == MAP_FAILED)
		return -errno;
	*ptr = p;
	return 0;
}

int flaxdrm_bo_munmap(void *ptr, uint64_t size)
{
	if (!ptr || !size)
		return -EINVAL;
	return munmap(ptr, (size_t)size) ? -errno : 0;
}

int flaxdrm_bo_close(int fd, uint32_t handle)
{
	struct drm_gem_close args = { .handle = handle };

	return do_ioctl(fd, DRM_IOCTL_GEM_CLOSE, &args);
}

/* --------------------------------------------------------- module tree */

int flaxdrm_module_create(int fd, uint32_t parent, uint32_t kind,
			  const char *name, const char *class_name,
			  const void *config, uint32_t config_size,
			  uint32_t *handle, char *name_out)
{
	struct drm_flaxdrm_module_create args;
	int ret;

	if (!handle || (config_size && !config))
		return -EINVAL;
	memset(&args, 0, sizeof(args));
	args.parent = parent;
	args.kind = kind;
	if (copy_name(args.name, sizeof(args.name), name) ||
	    copy_name(args.class_name, sizeof(args.class_name), class_name))
		return -EINVAL;
	args.config = (uintptr_t)config;
	args.config_size = config_size;
	ret = do_ioctl(fd, DRM_IOCTL_FLAXDRM_MODULE_CREATE, &args);
	if (ret)
		return ret;
	*handle = args.handle;
	if (name_out) {
		memcpy(name_out, args.name, FLAXDRM_NAME_LEN);
		name_out[FLAXDRM_NAME_LEN - 1] = 0;
	}
	return 0;
}

int flaxdrm_module_destroy(int fd, uint32_t handle)
{
	struct drm_flaxdrm_module_destroy args = { .handle = handle };

	return do_ioctl(fd, DRM_IOCTL_FLAXDRM_MODULE_DESTROY, &args);
}

int flaxdrm_module_query(int fd, uint32_t handle,
			 struct drm_flaxdrm_module_query *info,
			 char *path, uint32_t *path_size)
{
	struct drm_flaxdrm_module_query args;
	int ret;

	if (!info || (path && !path_size))
		return -EINVAL;
	memset(&args, 0, sizeof(args));
	args.handle = handle;
	if (path) {
		args.path = (uintptr_t)path;
		args.path_size = *path_size;
	}
	ret = do_ioctl(fd, DRM_IOCTL_FLAXDRM_MODULE_QUERY, &args);
	if (ret)
		return ret;
	*info = args;
	info->name[FLAXDRM_NAME_LEN - 1] = 0;
	if (path) {
		uint32_t cap = *path_size;

		*path_size = args.path_size;
		if (args.path_size > cap)
			return -ENOSPC;
	}
	return 0;
}

int flaxdrm_var_bind(int fd, uint32_t module, const char *collection,
		     const char *name, uint32_t bo, uint64_t offset,
		     uint32_t dtype, uint32_t rank, const uint32_t *dims)
{
	struct drm_flaxdrm_var_bind args;
	uint32_t i;

	if (rank > FLAXDRM_MAX_RANK || (rank && !dims))
		return -EINVAL;
	memset(&args, 0, sizeof(args));
	args.module = module;
	args.bo = bo;
	args.offset = offset;
	args.dtype = dtype;
	args.rank = rank;
	for (i = 0; i < rank; i++)
		args.dims[i] = dims[i];
	if (copy_name(args.collection, sizeof(args.collection), collection) ||
	    copy_name(args.name, sizeof(args.name), name))
		return -EINVAL;
	return do_ioctl(fd, DRM_IOCTL_FLAXDRM_VAR_BIND, &args);
}

/* ------------------------------------------------------------- programs */

int flaxdrm_program_create(int fd, uint32_t root,
			   const struct drm_flaxdrm_tensor *tensors,
			   uint32_t num_tensors,
			   const struct drm_flaxdrm_op *ops, uint32_t num_ops,
			   uint32_t *handle, uint32_t *error_op,
			   uint32_t *error_tensor)
{
	struct drm_flaxdrm_program_create args;
	int ret;

	if (error_op)
		*error_op = FLAXDRM_INDEX_NONE;
	if (error_tensor)
		*error_tensor = FLAXDRM_INDEX_NONE;
	if (!handle)
		return -EINVAL;
	memset(&args, 0, sizeof(args));
	args.root = root;
	args.tensors = (uintptr_t)tensors;
	args.ops = (uintptr_t)ops;
	args.num_tensors = num_tensors;
	args.num_ops = num_ops;
	args.error_op = FLAXDRM_INDEX_NONE;
	args.error_tensor = FLAXDRM_INDEX_NONE;
	ret = do_ioctl(fd, DRM_IOCTL_FLAXDRM_PROGRAM_CREATE, &args);
	if (ret == -EINVAL) {
		if (error_op)
			*error_op = args.error_op;
		if (error_tensor)
			*error_tensor = args.error_tensor;
	}
	if (!ret)
		*handle = args.handle;
	return ret;
}

int flaxdrm_program_destroy(int fd, uint32_t handle)
{
	struct drm_flaxdrm_program_destroy args = { .handle = handle };

	return do_ioctl(fd, DRM_IOCTL_FLAXDRM_PROGRAM_DESTROY, &args);
}

/* ---------------------------------------------------------------- submit */

int flaxdrm_submit(int fd, struct drm_flaxdrm_submit *submit)
{
	if (!submit)
		return -EINVAL;
	return do_ioctl(fd, DRM_IOCTL_FLAXDRM_SUBMIT, submit);
}

int flaxdrm_submit_simple(int fd, uint32_t op, uint32_t module,
			  uint32_t program,
			  const struct drm_flaxdrm_binding *bindings,
			  uint32_t num_bindings, uint32_t out_syncobj,
			  uint64_t *job_id)
{
	return flaxdrm_submit_perfmon(fd, op, module, program, bindings,
				      num_bindings, out_syncobj, 0, job_id);
}

int flaxdrm_submit_perfmon(int fd, uint32_t op, uint32_t module,
			   uint32_t program,
			   const struct drm_flaxdrm_binding *bindings,
			   uint32_t num_bindings, uint32_t out_syncobj,
			   uint32_t perfmon, uint64_t *job_id)
{
	struct drm_flaxdrm_submit args;
	int ret;

	memset(&args, 0, sizeof(args));
	args.op = op;
	args.module = module;
	args.program = program;
	args.bindings = (uintptr_t)bindings;
	args.num_bindings = num_bindings;
	args.out_sync.handle = out_syncobj;
	args.perfmon = perfmon;
	ret = do_ioctl(fd, DRM_IOCTL_FLAXDRM_SUBMIT, &args);
	if (!ret && job_id)
		*job_id = args.job_id;
	return ret;
}

/* ---------------------------------------------------- profiling, counters */

int flaxdrm_job_query(int fd, uint64_t job_id,
		      struct drm_flaxdrm_job_query *info,
		      struct drm_flaxdrm_op_timing *timings, uint32_t capacity)
{
	struct drm_flaxdrm_job_query args;
	int ret;

	if (!info || (capacity && !timings))
		return -EINVAL;
	memset(&args, 0, sizeof(args));
	args.job_id = job_id;
	args.op_timings = capacity ? (uintptr_t)timings : 0;
	args.num_op_timings = capacity;
	ret = do_ioctl(fd, DRM_IOCTL_FLAXDRM_JOB_QUERY, &args);
	if (!ret)
		*info = args;
	return ret;
}

int flaxdrm_counter_query(int fd, uint32_t id,
			  struct drm_flaxdrm_counter_query *info)
{
	struct drm_flaxdrm_counter_query args;
	int ret;

	if (!info)
		return -EINVAL;
	memset(&args, 0, sizeof(args));
	args.id = id;
	ret = do_ioctl(fd, DRM_IOCTL_FLAXDRM_COUNTER_QUERY, &args);
	if (!ret) {
		/* the kernel NUL-terminates; do not trust it blindly */
		args.name[sizeof(args.name) - 1] = 0;
		args.unit[sizeof(args.unit) - 1] = 0;
		args.description[sizeof(args.description) - 1] = 0;
		*info = args;
	}
	return ret;
}

int flaxdrm_perfmon_create(int fd, const uint32_t *counters,
			   uint32_t num_counters, uint32_t *handle)
{
	struct drm_flaxdrm_perfmon_create args;
	int ret;

	if (!handle || (num_counters && !counters))
		return -EINVAL;
	memset(&args, 0, sizeof(args));
	args.counters = (uintptr_t)counters;
	args.num_counters = num_counters;
	ret = do_ioctl(fd, DRM_IOCTL_FLAXDRM_PERFMON_CREATE, &args);
	if (!ret)
		*handle = args.handle;
	return ret;
}

int flaxdrm_perfmon_destroy(int fd, uint32_t handle)
{
	struct drm_flaxdrm_perfmon_destroy args;

	memset(&args, 0, sizeof(args));
	args.handle = handle;
	return do_ioctl(fd, DRM_IOCTL_FLAXDRM_PERFMON_DESTROY, &args);
}

int flaxdrm_perfmon_get_values(int fd, uint32_t handle, uint64_t *values,
			       uint32_t num_values)
{
	struct drm_flaxdrm_perfmon_get_values args;

	if (num_values && !values)
		return -EINVAL;
	memset(&args, 0, sizeof(args));
	args.handle = handle;
	args.values = (uintptr_t)values;
	args.num_values = num_values;
	return do_ioctl(fd, DRM_IOCTL_FLAXDRM_PERFMON_GET_VALUES, &args);
}

/* ------------------------------------------------------------- syncobjs */

int flaxdrm_syncobj_create(int fd, uint32_t flags, uint32_t *handle)
{
	struct drm_syncobj_create args = { .flags = flags };
	int ret;

	if (!handle)
		return -EINVAL;
	ret = do_ioctl(fd, DRM_IOCTL_SYNCOBJ_CREATE, &args);
	if (!ret)
		*handle = args.handle;
	return ret;
}

int flaxdrm_syncobj_destroy(int fd, uint32_t handle)
{
	struct drm_syncobj_destroy args = { .handle = handle };

	return do_ioctl(fd, DRM_IOCTL_SYNCOBJ_DESTROY, &args);
}

int flaxdrm_syncobj_reset(int fd, uint32_t handle)
{
	struct drm_syncobj_array args;

	memset(&args, 0, sizeof(args));
	args.handles = (uintptr_t)&handle;
	args.count_handles = 1;
	return do_ioctl(fd, DRM_IOCTL_SYNCOBJ_RESET, &args);
}

/* The syncobj ioctls take an absolute CLOCK_MONOTONIC deadline. */
static int64_t deadline(int64_t timeout_ns)
{
	struct timespec ts;
	int64_t now;

	if (timeout_ns < 0)
		return INT64_MAX;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
	if (timeout_ns > INT64_MAX - now)
		return INT64_MAX;
	return now + timeout_ns;
}

int flaxdrm_syncobj_wait(int fd, uint32_t handle, int64_t timeout_ns)
{
	struct drm_syncobj_wait args;

	memset(&args, 0, sizeof(args));
	args.handles = (uintptr_t)&handle;
	args.count_handles = 1;
	args.timeout_nsec = deadline(timeout_ns);
	args.flags = DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL |
		     DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT;
	return do_ioctl(fd, DRM_IOCTL_SYNCOBJ_WAIT, &args);
}

int flaxdrm_syncobj_timeline_wait(int fd, uint32_t handle, uint64_t point,
				  int64_t timeout_ns)
{
	struct drm_syncobj_timeline_wait args;

	memset(&args, 0, sizeof(args));
	args.handles = (uintptr_t)&handle;
	args.points = (uintptr_t)&point;
	args.count_handles = 1;
	args.timeout_nsec = deadline(timeout_ns);
	args.flags = DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL |
		     DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT;
	return do_ioctl(fd, DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT, &args);
}

int flaxdrm_syncobj_status(int fd, uint32_t handle, int *status)
{
	struct drm_syncobj_handle args;
	struct sync_file_info info;
	int ret;

	if (!status)
		return -EINVAL;
	memset(&args, 0, sizeof(args));
	args.handle = handle;
	args.flags = DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE;
	args.fd = -1;
	ret = do_ioctl(fd, DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD, &args);
	if (ret)
		return ret;
	memset(&info, 0, sizeof(info));
	if (ioctl(args.fd, SYNC_IOC_FILE_INFO, &info))
		ret = -errno;
	else
		*status = info.status;
	close(args.fd);
	return ret;
}

/* --------------------------------------------------------------- engine */

int flaxdrm_engine_attach(int fd)
{
	struct drm_flaxdrm_engine_attach args;

	memset(&args, 0, sizeof(args));
	return do_ioctl(fd, DRM_IOCTL_FLAXDRM_ENGINE_ATTACH, &args);
}

int flaxdrm_engine_fetch(int fd, uint32_t timeout_ms, void *buffer,
			 uint32_t *buffer_size, uint64_t *job_id)
{
	struct drm_flaxdrm_engine_fetch args;
	int ret;

	if (!buffer_size || !job_id || (*buffer_size && !buffer))
		return -EINVAL;
	memset(&args, 0, sizeof(args));
	args.timeout_ms = timeout_ms;
	args.buffer = (uintptr_t)buffer;
	args.buffer_size = *buffer_size;
	ret = do_ioctl(fd, DRM_IOCTL_FLAXDRM_ENGINE_FETCH, &args);
	*buffer_size = args.buffer_size;
	*job_id = ret ? 0 : args.job_id;
	return ret;
}

int flaxdrm_engine_complete(int fd, uint64_t job_id, int32_t status,
			    uint64_t exec_ns)
{
	return flaxdrm_engine_complete_profile(fd, job_id, status, exec_ns, 0,
					       NULL, 0);
}

int flaxdrm_engine_complete_profile(int fd, uint64_t job_id, int32_t status,
				    uint64_t exec_ns,
				    uint64_t shader_invocations,
				    const struct drm_flaxdrm_op_timing *timings,
				    uint32_t num_timings)
{
	struct drm_flaxdrm_engine_complete args;

	if (num_timings && !timings)
		return -EINVAL;
	memset(&args, 0, sizeof(args));
	args.job_id = job_id;
	args.status = status;
	args.exec_ns = exec_ns;
	args.shader_invocations = shader_invocations;
	args.op_timings = num_timings ? (uintptr_t)timings : 0;
	args.num_op_timings = num_timings;
	return do_ioctl(fd, DRM_IOCTL_FLAXDRM_ENGINE_COMPLETE, &args);
}

/* ---------------------------------------------------------------- misc */

const char *flaxdrm_kind_name(uint32_t kind)
{
	static const char *const names[FLAXDRM_KIND_COUNT] = {
		[FLAXDRM_KIND_MODULE] = "Module",
		[FLAXDRM_KIND_SEQUENTIAL] = "Sequential",
		[FLAXDRM_KIND_DENSE] = "Dense",
		[FLAXDRM_KIND_DENSE_GENERAL] = "DenseGeneral",
		[FLAXDRM_KIND_CONV] = "Conv",
		[FLAXDRM_KIND_CONV_TRANSPOSE] = "ConvTranspose",
		[FLAXDRM_KIND_LAYER_NORM] = "LayerNorm",
		[FLAXDRM_KIND_RMS_NORM] = "RMSNorm",
		[FLAXDRM_KIND_GROUP_NORM] = "GroupNorm",
		[FLAXDRM_KIND_BATCH_NORM] = "BatchNorm",
		[FLAXDRM_KIND_EMBED] = "Embed",
		[FLAXDRM_KIND_ATTENTION] = "MultiHeadDotProductAttention",
		[FLAXDRM_KIND_DROPOUT] = "Dropout",
	};

	return kind < FLAXDRM_KIND_COUNT && names[kind] ? names[kind] : "unknown";
}

const char *flaxdrm_job_op_name(uint32_t op)
{
	switch (op) {
	case FLAXDRM_JOB_SETUP:
		return "setup";
	case FLAXDRM_JOB_CALL:
		return "call";
	case FLAXDRM_JOB_CLEANUP:
		return "cleanup";
	default:
		return "unknown";
	}
}
