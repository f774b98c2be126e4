/* SPDX-License-Identifier: GPL-2.0 */
/*
 * flaxdrm: Flax-style neural-network modules through a DRM render node.
 * Shared definitions of the kernel module.
 */
#ifndef FLAXDRM_DRV_H
#define FLAXDRM_DRV_H

#include <linux/dma-fence.h>
#include <linux/idr.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include <drm/drm_device.h>
#include <drm/drm_file.h>
#include <drm/drm_gem.h>
#include <drm/gpu_scheduler.h>

#include "flaxdrm_drm.h"
#include "flaxdrm_rules.h"

#define FLAXDRM_DRIVER_DESC	"Flax-style neural-network modules"
#define FLAXDRM_DRIVER_DATE	"20250101"

/* Internal bounds, beyond the ABI limits of flaxdrm_drm.h. */
#define FLAXDRM_MAX_MODULES	65536	/* modules per open file */
#define FLAXDRM_MAX_PROGRAMS	65536	/* programs per open file */
#define FLAXDRM_MAX_DEPTH	64	/* depth of a module tree */
#define FLAXDRM_MAX_VARS	1024	/* variables per module */
#define FLAXDRM_HW_JOBS		256	/* jobs handed to the engine at once */
#define FLAXDRM_MAX_FILE_JOBS	4096	/* unfinished jobs per open file */
#define FLAXDRM_MAX_PERFMONS	1024	/* perfmons per open file */

extern unsigned int flaxdrm_job_timeout_ms;

struct flaxdrm_job;

/* A finished job as JOB_QUERY reports it. */
struct flaxdrm_job_record {
	u64 job_id;		/* 0: an empty slot */
	u32 op;
	int status;
	u64 queue_ns;
	u64 exec_ns;
	u64 shader_invocations;
	u64 flops;
	u64 bytes_read;
	u64 bytes_written;
	u32 num_timings;
	struct drm_flaxdrm_op_timing *timings;	/* kvmalloc'd, or NULL */
};

struct flaxdrm_device {
	struct drm_device drm;
	struct drm_gpu_scheduler sched;

	/*
	 * engine_lock protects the attached engine, the queue of jobs waiting
	 * for ENGINE_FETCH, the jobs the engine holds (inflight), the state and
	 * engine handles of every job handed to the engine, and
	 * handle_drops. It is never held across an allocation, a user copy or
	 * a fence signal: the signalling paths (run_job, COMPLETE, the timer,
	 * the engine's death) take it.
	 */
	struct mutex engine_lock;
	struct drm_file *engine;
	struct list_head queue;
	struct list_head inflight;
	/* FETCH calls: a job put back at the head of the queue is still next */
	struct mutex fetch_lock;
	/*
	 * Timers deleting a timed-out job's handles in the engine's file after
	 * signalling; the engine's release waits for none to be left. Woken,
	 * like FETCH, on engine_wq.
	 */
	unsigned int handle_drops;
	wait_queue_head_t engine_wq;
	/*
	 * The engine's last sign of life (attach, FETCH, COMPLETE, or a job
	 * queued while none was), and whether it then let a queued job wait
	 * a whole timeout: until it fetches or completes again, new jobs
	 * fail at once.
	 */
	unsigned long engine_progress;
	bool engine_stalled;

	/*
	 * The lock of every hardware fence; also protects every context's
	 * running list, seqno and its jobs' retirable flags, so that fences
	 * are signalled in order with dma_fence_signal_locked().
	 */
	spinlock_t fence_lock;

	atomic64_t job_seq;
	atomic64_t var_seq;

	/* BOs created by BO_CREATE and not yet freed */
	atomic_t num_bos;

	/* jobs alive (submitted and not yet freed), for teardown */
	spinlock_t jobs_lock;
	unsigned int live_jobs;
	wait_queue_head_t jobs_wq;
};

/*
 * The execution context of one open file. Jobs hold a reference, so it
 * outlives the file while jobs of the file are still running. Fences of
 * one context signal in submission order.
 */
struct flaxdrm_ctx {
	struct kref ref;
	u64 fence_context;	/* also the engine's context id */
	u64 seqno;		/* fence_lock */
	struct list_head running;	/* fence_lock: jobs in run order */
	atomic64_t exec_ns;	/* engine time of the finished jobs */
	atomic_t jobs;		/* jobs submitted and not yet freed */
	atomic64_t jobs_completed;	/* finished jobs, failed ones included */
	atomic64_t jobs_failed;

	/*
	 * hist_lock protects the jobs submitted and not yet finished
	 * (unfinished, in submission order) and the ring of the last
	 * FLAXDRM_JOB_HISTORY finished ones, for JOB_QUERY. Taken after
	 * flaxdrm_file.lock, and in fence signalling sections: never held
	 * across an allocation or a user copy.
	 */
	struct mutex hist_lock;
	struct list_head unfinished;
	u32 history_next;
	struct flaxdrm_job_record history[FLAXDRM_JOB_HISTORY];
};

/*
 * A perfmon: values[i] accumulates counter ids[i] over the jobs submitted
 * with it. Jobs hold a reference, so a destroyed perfmon lives on until
 * its last job is freed.
 */
struct flaxdrm_perfmon {
	struct kref ref;
	u32 num_counters;
	u32 ids[FLAXDRM_MAX_PERFMON_COUNTERS];
	atomic64_t values[FLAXDRM_MAX_PERFMON_COUNTERS];
};

struct flaxdrm_file {
	struct flaxdrm_device *fdev;
	/* protects modules, programs and the module trees of this file */
	struct mutex lock;
	struct idr modules;
	struct idr programs;
	struct idr perfmons;
	struct drm_sched_entity entity;
	struct flaxdrm_ctx *ctx;
};

/* A variable of a module: collection/name bound to a range of a BO. */
struct flaxdrm_var {
	struct list_head link;
	char collection[FLAXDRM_COLLECTION_LEN];
	char name[FLAXDRM_NAME_LEN];
	struct drm_gem_object *bo;
	u64 offset;
	u64 size;
	u32 dtype;
	u32 rank;
	u32 dims[FLAXDRM_MAX_RANK];
	u64 var_id;
	u64 generation;
};

/* Flax's auto-name counter of one class in a parent. */
struct flaxdrm_name_counter {
	struct list_head link;
	char class_name[FLAXDRM_NAME_LEN];
	u32 next;
};

struct flaxdrm_module {
	struct kref ref;
	u32 handle;
	u32 kind;
	u32 depth;
	bool dead;		/* destroyed; programs may still point here */
	char name[FLAXDRM_NAME_LEN];
	char class_name[FLAXDRM_NAME_LEN];
	void *config;
	u32 config_size;
	u32 num_children;
	u32 num_vars;
	struct flaxdrm_module *parent;
	struct list_head children;
	struct list_head sibling;
	struct list_head vars;
	struct list_head counters;
};

struct flaxdrm_program {
	u32 handle;
	u32 num_tensors;
	u32 num_ops;
	struct flaxdrm_module *root;
	struct drm_flaxdrm_tensor *tensors;
	struct drm_flaxdrm_op *ops;
	/* VARIABLE tensors: their module (referenced), else NULL */
	struct flaxdrm_module **tensor_modules;
	/* layer ops: their module (referenced), else NULL */
	struct flaxdrm_module **op_modules;
	/* per tensor: nonzero if some op writes it */
	u8 *written;
	/* work of one call, from the shapes: the same for every job */
	struct flaxdrm_cost cost;
};

/*
 * Where a job is on the engine side (engine_lock). Whoever moves a job to
 * ENDED owns it from then on: it sets the status and retires the job; no
 * one else touches it.
 */
enum flaxdrm_job_state {
	FLAXDRM_JOB_PENDING = 0,	/* in the scheduler */
	FLAXDRM_JOB_QUEUED,		/* waiting for ENGINE_FETCH */
	FLAXDRM_JOB_FETCHING,		/* off the queue, being copied out by FETCH */
	FLAXDRM_JOB_FETCHED,		/* held by the engine */
	FLAXDRM_JOB_ENDED,		/* taken off the engine by its owner */
};

/* GEM handles a fetched job has in the engine's file. */
struct flaxdrm_engine_handles {
	struct list_head link;	/* on its owner's list once taken off the job */
	struct drm_file *file;
	u32 count;
	u32 handles[];
};

struct flaxdrm_job {
	struct drm_sched_job base;
	struct flaxdrm_device *fdev;
	struct flaxdrm_ctx *ctx;

	u64 job_id;
	u32 op;
	u32 module;
	u32 flags;
	u32 num_tensors;
	u32 num_ops;
	struct drm_flaxdrm_engine_tensor *tensors;
	struct drm_gem_object **bos;	/* per tensor, NULL for TEMP */
	struct drm_flaxdrm_op *ops;

	/* hardware fence, initialised by run_job */
	struct dma_fence *hw_fence;
	bool hw_fence_init;

	/* engine_lock */
	enum flaxdrm_job_state state;
	struct list_head engine_link;	/* queue, inflight or the owner's list */
	struct flaxdrm_engine_handles *engine_handles;	/* FETCHED: kvmalloc'd */
	unsigned long deadline;	/* FETCHED: jiffies when it times out */

	/* set by the owner of an ENDED job */
	int status;
	u64 exec_ns;

	/* fence_lock */
	struct list_head ctx_link;	/* ctx->running */
	bool retirable;		/* status final: may be signalled in order */

	/* profiling: set at SUBMIT, FETCH and COMPLETE */
	struct flaxdrm_perfmon *perfmon;	/* referenced, or NULL */
	u64 submit_ns;
	u64 fetch_ns;		/* 0 until fetched */
	u64 shader_invocations;
	u64 flops;
	u64 bytes_read;
	u64 bytes_written;
	struct drm_flaxdrm_op_timing *op_timings;	/* kvmalloc'd, or NULL */
	u32 num_op_timings;
	/* ctx->hist_lock: on ctx->unfinished until accounted */
	struct list_head unfinished_link;
	bool accounted;

	struct delayed_work timeout_work;
};

static inline struct flaxdrm_device *to_flaxdrm(struct drm_device *drm)
{
	return container_of(drm, struct flaxdrm_device, drm);
}

static inline struct flaxdrm_job *to_flaxdrm_job(struct drm_sched_job *job)
{
	return container_of(job, struct flaxdrm_job, base);
}

/* flaxdrm_drv.c */
int flaxdrm_check_name(const char *s, u32 len, bool allow_empty);
bool flaxdrm_is_zero(const void *p, size_t size);

/* flaxdrm_gem.c */
int flaxdrm_ioctl_bo_create(struct drm_device *dev, void *data,
			    struct drm_file *file);
int flaxdrm_ioctl_bo_mmap_offset(struct drm_device *dev, void *data,
				 struct drm_file *file);
struct drm_gem_object *flaxdrm_gem_create_object(struct drm_device *dev,
						 size_t size);

/* flaxdrm_module.c */
int flaxdrm_ioctl_module_create(struct drm_device *dev, void *data,
				struct drm_file *file);
int flaxdrm_ioctl_module_destroy(struct drm_device *dev, void *data,
				 struct drm_file *file);
int flaxdrm_ioctl_module_query(struct drm_device *dev, void *data,
			       struct drm_file *file);
int flaxdrm_ioctl_var_bind(struct drm_device *dev, void *data,
			   struct drm_file *file);
struct flaxdrm_module *flaxdrm_module_lookup(struct flaxdrm_file *ffile,
					     u32 handle);
bool flaxdrm_module_is_under(const struct flaxdrm_module *m,
			     const struct flaxdrm_module *root);
struct flaxdrm_var *flaxdrm_module_find_var(struct flaxdrm_module *m,
					    const char *collection,
					    const char *name);
void flaxdrm_module_get(struct flaxdrm_module *m);
void flaxdrm_module_put(struct flaxdrm_module *m);
void flaxdrm_modules_release(struct flaxdrm_file *ffile);

/* flaxdrm_program.c */
int flaxdrm_ioctl_program_create(struct drm_device *dev, void *data,
				 struct drm_file *file);
int flaxdrm_ioctl_program_destroy(struct drm_device *dev, void *data,
				  struct drm_file *file);
void flaxdrm_programs_release(struct flaxdrm_file *ffile);

/* flaxdrm_job.c */
int flaxdrm_ioctl_submit(struct drm_device *dev, void *data,
			 struct drm_file *file);
int flaxdrm_sched_init(struct flaxdrm_device *fdev);
void flaxdrm_sched_fini(struct flaxdrm_device *fdev);
struct flaxdrm_ctx *flaxdrm_ctx_create(void);
void flaxdrm_ctx_get(struct flaxdrm_ctx *ctx);
void flaxdrm_ctx_put(struct flaxdrm_ctx *ctx);

/* flaxdrm_perfmon.c */
int flaxdrm_ioctl_perfmon_create(struct drm_device *dev, void *data,
				 struct drm_file *file);
int flaxdrm_ioctl_perfmon_destroy(struct drm_device *dev, void *data,
				  struct drm_file *file);
int flaxdrm_ioctl_perfmon_get_values(struct drm_device *dev, void *data,
				     struct drm_file *file);
int flaxdrm_ioctl_counter_query(struct drm_device *dev, void *data,
				struct drm_file *file);
int flaxdrm_ioctl_job_query(struct drm_device *dev, void *data,
			    struct drm_file *file);
struct flaxdrm_perfmon *flaxdrm_perfmon_find(struct flaxdrm_file *ffile,
					     u32 handle);
void flaxdrm_perfmon_put(struct flaxdrm_perfmon *perfmon);
void flaxdrm_perfmons_release(struct flaxdrm_file *ffile);
void flaxdrm_job_track(struct flaxdrm_job *job);
void flaxdrm_job_account(struct flaxdrm_job *job, int status);
void flaxdrm_ctx_history_free(struct flaxdrm_ctx *ctx);

/* flaxdrm_engine.c */
int flaxdrm_ioctl_engine_attach(struct drm_device *dev, void *data,
				struct drm_file *file);
int flaxdrm_ioctl_engine_fetch(struct drm_device *dev, void *data,
			       struct drm_file *file);
int flaxdrm_ioctl_engine_complete(struct drm_device *dev, void *data,
				  struct drm_file *file);
bool flaxdrm_engine_attached(struct flaxdrm_device *fdev);
void flaxdrm_engine_detach(struct flaxdrm_device *fdev, struct drm_file *file);
struct dma_fence *flaxdrm_engine_run(struct flaxdrm_job *job);
void flaxdrm_engine_timeout_work(struct work_struct *work);

#endif /* FLAXDRM_DRV_H */
