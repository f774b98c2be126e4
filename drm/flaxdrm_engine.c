// SPDX-License-Identifier: GPL-2.0
/*
 * flaxdrm engine link. One trusted engine daemon attaches through the
 * primary node (CAP_SYS_ADMIN), fetches the jobs the scheduler runs and
 * completes them. Every job handed over has a hardware fence and a timer;
 * the fence is signalled by ENGINE_COMPLETE, by the timer (-ETIMEDOUT) or by
 * the engine's death (-ENODEV). Fences of one client context signal in
 * submission order: a job completed early waits for its predecessors.
 */
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include <drm/drm_print.h>

#include "flaxdrm_drv.h"

static const char *flaxdrm_fence_driver_name(struct dma_fence *fence)
{
	return FLAXDRM_DRIVER_NAME;
}

static const char *flaxdrm_fence_timeline_name(struct dma_fence *fence)
{
	return "flaxdrm-engine";
}

static const struct dma_fence_ops flaxdrm_fence_ops = {
	.get_driver_name = flaxdrm_fence_driver_name,
	.get_timeline_name = flaxdrm_fence_timeline_name,
};

bool flaxdrm_engine_attached(struct flaxdrm_device *fdev)
{
	return READ_ONCE(fdev->engine);
}

/* Signals, in order, the finished jobs at the head of a context. */
static void ctx_retire(struct flaxdrm_device *fdev, struct flaxdrm_ctx *ctx)
{
	struct flaxdrm_job *job;

	lockdep_assert_held(&fdev->engine_lock);
	flaxdrm_ctx_get(ctx);
	while ((job = list_first_entry_or_null(&ctx->running,
					       struct flaxdrm_job, ctx_link)) &&
	       job->state == FLAXDRM_JOB_DONE) {
		struct dma_fence *fence = dma_fence_get(job->hw_fence);

		list_del_init(&job->ctx_link);
		if (job->status) {
			dma_fence_set_error(fence, job->status);
			/* the 6.1 scheduler does not pass the error on */
			dma_fence_set_error(&job->base.s_fence->finished,
					    job->status);
		}
		/* the scheduler may free the job from here on */
		dma_fence_signal(fence);
		dma_fence_put(fence);
	}
	flaxdrm_ctx_put(ctx);
}

static void job_drop_engine_handles(struct flaxdrm_job *job)
{
	u32 i;

	for (i = 0; i < job->num_engine_handles; i++)
		drm_gem_handle_delete(job->engine_file, job->engine_handles[i]);
	kvfree(job->engine_handles);
	job->engine_handles = NULL;
	job->num_engine_handles = 0;
	job->engine_file = NULL;
}

/* Ends a job the engine has (or had queued) with a status. */
static void job_finish(struct flaxdrm_device *fdev, struct flaxdrm_job *job,
		       int status)
{
	struct flaxdrm_ctx *ctx = job->ctx;

	lockdep_assert_held(&fdev->engine_lock);
	list_del_init(&job->engine_link);
	job_drop_engine_handles(job);
	job->state = FLAXDRM_JOB_DONE;
	job->status = status;
	flaxdrm_job_account(job, status);
	ctx_retire(fdev, ctx);
}

static unsigned long job_timeout(void)
{
	return msecs_to_jiffies(READ_ONCE(flaxdrm_job_timeout_ms));
}

/* The engine did something: queued jobs may wait a timeout from now. */
static void engine_progress(struct flaxdrm_device *fdev)
{
	lockdep_assert_held(&fdev->engine_lock);
	fdev->engine_progress = jiffies;
	fdev->engine_stalled = false;
}

/* run_job: hands the job to the engine, or fails it when there is none. */
struct dma_fence *flaxdrm_engine_run(struct flaxdrm_job *job)
{
	struct flaxdrm_device *fdev = job->fdev;
	struct flaxdrm_ctx *ctx = job->ctx;
	struct dma_fence *fence;
	int error;

	mutex_lock(&fdev->engine_lock);
	dma_fence_init(job->hw_fence, &flaxdrm_fence_ops, &fdev->fence_lock,
		       ctx->fence_context, ++ctx->seqno);
	job->hw_fence_init = true;
	fence = dma_fence_get(job->hw_fence);
	list_add_tail(&job->ctx_link, &ctx->running);

	error = job->base.s_fence->finished.error;
	if (!fdev->engine)
		error = -ENODEV;
	else if (fdev->engine_stalled)
		error = -ETIMEDOUT;
	if (error) {
		job->state = FLAXDRM_JOB_DONE;
		job->status = error;
		flaxdrm_job_account(job, error);
		ctx_retire(fdev, ctx);
	} else {
		/* an idle engine's clock starts with its first job */
		if (list_empty(&fdev->queue))
			fdev->engine_progress = jiffies;
		job->state = FLAXDRM_JOB_QUEUED;
		list_add_tail(&job->engine_link, &fdev->queue);
		schedule_delayed_work(&job->timeout_work, job_timeout());
		wake_up_interruptible(&fdev->engine_wq);
	}
	mutex_unlock(&fdev->engine_lock);
	return fence;
}

void flaxdrm_engine_timeout_work(struct work_struct *work)
{
	struct flaxdrm_job *job = container_of(to_delayed_work(work),
					       struct flaxdrm_job,
					       timeout_work);
	struct flaxdrm_device *fdev = job->fdev;

	struct flaxdrm_job *tmp;
	unsigned long deadline;

	/* free_job cancels this work synchronously: the job is alive */
	mutex_lock(&fdev->engine_lock);
	switch (job->state) {
	case FLAXDRM_JOB_FETCHED:
		/* the timer was restarted by FETCH: the engine took too long */
		drm_dbg_driver(&fdev->drm, "job %llu timed out\n", job->job_id);
		job_finish(fdev, job, -ETIMEDOUT);
		break;
	case FLAXDRM_JOB_QUEUED:
		/* waiting is fine while the engine makes progress */
		deadline = fdev->engine_progress + job_timeout();
		if (time_before(jiffies, deadline)) {
			mod_delayed_work(system_wq, &job->timeout_work,
					 deadline - jiffies);
			break;
		}
		/* no FETCH or COMPLETE for a whole timeout: a stalled engine */
		drm_dbg_driver(&fdev->drm, "engine stalled at job %llu\n",
			       job->job_id);
		fdev->engine_stalled = true;
		/* tmp is not finished, so retiring cannot free it */
		list_for_each_entry_safe(job, tmp, &fdev->queue, engine_link)
			job_finish(fdev, job, -ETIMEDOUT);
		break;
	default:
		break;
	}
	mutex_unlock(&fdev->engine_lock);
}

/* The engine's file is closing: everything it had or would get fails. */
void flaxdrm_engine_detach(struct flaxdrm_device *fdev, struct drm_file *file)
{
	struct flaxdrm_job *job, *tmp;

	mutex_lock(&fdev->engine_lock);
	if (fdev->engine == file) {
		WRITE_ONCE(fdev->engine, NULL);
		/* tmp is not finished, so retiring cannot free it */
		list_for_each_entry_safe(job, tmp, &fdev->inflight, engine_link)
			job_finish(fdev, job, -ENODEV);
		list_for_each_entry_safe(job, tmp, &fdev->queue, engine_link)
			job_finish(fdev, job, -ENODEV);
		wake_up_all(&fdev->engine_wq);
	}
	mutex_unlock(&fdev->engine_lock);
}

int flaxdrm_ioctl_engine_attach(struct drm_device *dev, void *data,
				struct drm_file *file)
{
	struct flaxdrm_device *fdev = to_flaxdrm(dev);
	struct drm_flaxdrm_engine_attach *args = data;
	int ret = 0;

	if (args->flags || args->pad)
		return -EINVAL;

	mutex_lock(&fdev->engine_lock);
	if (fdev->engine) {
		ret = -EBUSY;
	} else {
		WRITE_ONCE(fdev->engine, file);
		engine_progress(fdev);
	}
	mutex_unlock(&fdev->engine_lock);
	return ret;
}

static size_t job_wire_size(const struct flaxdrm_job *job)
{
	/* both counts are at most 4096: this cannot overflow */
	return sizeof(struct drm_flaxdrm_engine_job) +
	       job->num_tensors * sizeof(struct drm_flaxdrm_engine_tensor) +
	       job->num_ops * sizeof(struct drm_flaxdrm_op);
}

/* Creates one handle per distinct BO in the engine's file. */
static int job_create_engine_handles(struct flaxdrm_job *job,
				     struct drm_file *file, u32 *tensor_handle)
{
	u32 i, j, n = 0;
	int ret;

	job->engine_handles = kvcalloc(job->num_tensors,
				       sizeof(*job->engine_handles),
				       GFP_KERNEL);
	if (job->num_tensors && !job->engine_handles)
		return -ENOMEM;
	job->engine_file = file;

	for (i = 0; i < job->num_tensors; i++) {
		tensor_handle[i] = 0;
		if (!job->bos[i])
			continue;
		for (j = 0; j < i; j++)
			if (job->bos[j] == job->bos[i])
				break;
		if (j < i) {
			tensor_handle[i] = tensor_handle[j];
			continue;
		}
		ret = drm_gem_handle_create(file, job->bos[i],
					    &job->engine_handles[n]);
		if (ret) {
			job->num_engine_handles = n;
			job_drop_engine_handles(job);
			return ret;
		}
		tensor_handle[i] = job->engine_handles[n++];
	}
	job->num_engine_handles = n;
	return 0;
}

static void job_serialize(const struct flaxdrm_job *job, void *buf,
			  const u32 *tensor_handle)
{
	struct drm_flaxdrm_engine_job *hdr = buf;
	struct drm_flaxdrm_engine_tensor *et = (void *)(hdr + 1);
	u32 i;

	hdr->job_id = job->job_id;
	hdr->op = job->op;
	hdr->module = job->module;
	hdr->context = job->ctx->fence_context;
	hdr->num_tensors = job->num_tensors;
	hdr->num_ops = job->num_ops;
	hdr->flags = job->flags;
	hdr->pad = 0;
	for (i = 0; i < job->num_tensors; i++) {
		et[i] = job->tensors[i];
		et[i].bo = tensor_handle[i];
	}
	if (job->num_ops)
		memcpy(et + job->num_tensors, job->ops,
		       job->num_ops * sizeof(*job->ops));
}

int flaxdrm_ioctl_engine_fetch(struct drm_device *dev, void *data,
			       struct drm_file *file)
{
	struct flaxdrm_device *fdev = to_flaxdrm(dev);
	struct drm_flaxdrm_engine_fetch *args = data;
	struct flaxdrm_job *job;
	u32 *tensor_handle = NULL;
	void *buf = NULL;
	size_t size;
	long wait;
	int ret;

	if (args->flags || args->pad)
		return -EINVAL;
	args->job_id = 0;
	if (READ_ONCE(fdev->engine) != file)
		return -EPERM;

	if (args->timeout_ms) {
		wait = wait_event_interruptible_timeout(fdev->engine_wq,
							!list_empty_careful(&fdev->queue) ||
							READ_ONCE(fdev->engine) != file,
							msecs_to_jiffies(args->timeout_ms));
		if (wait < 0)
			return wait;
	}

	mutex_lock(&fdev->engine_lock);
	if (fdev->engine != file) {
		ret = -EPERM;
		goto out_unlock;
	}
	/* an engine asking for work is alive, whether or not there is any */
	engine_progress(fdev);
	job = list_first_entry_or_null(&fdev->queue, struct flaxdrm_job,
				       engine_link);
	if (!job) {
		args->buffer_size = 0;
		ret = 0;
		goto out_unlock;
	}

	size = job_wire_size(job);
	if (args->buffer_size < size) {
		/* the job stays queued for a retry with a larger buffer */
		args->buffer_size = size;
		ret = -ENOSPC;
		goto out_unlock;
	}

	buf = kvzalloc(size, GFP_KERNEL);
	tensor_handle = kvcalloc(job->num_tensors, sizeof(*tensor_handle),
				 GFP_KERNEL);
	if (!buf || (job->num_tensors && !tensor_handle)) {
		ret = -ENOMEM;
		goto out_unlock;
	}
	ret = job_create_engine_handles(job, file, tensor_handle);
	if (ret)
		goto out_unlock;
	job_serialize(job, buf, tensor_handle);
	if (copy_to_user(u64_to_user_ptr(args->buffer), buf, size)) {
		job_drop_engine_handles(job);
		ret = -EFAULT;
		goto out_unlock;
	}

	job->state = FLAXDRM_JOB_FETCHED;
	job->fetch_ns = ktime_get_ns();
	list_move_tail(&job->engine_link, &fdev->inflight);
	/* from now on the engine has the job's whole timeout for it */
	mod_delayed_work(system_wq, &job->timeout_work, job_timeout());
	args->buffer_size = size;
	args->job_id = job->job_id;
	ret = 0;

out_unlock:
	mutex_unlock(&fdev->engine_lock);
	kvfree(tensor_handle);
	kvfree(buf);
	return ret;
}

/* COMPLETE's op timings: one per op of the job, each naming one of them. */
static int check_op_timings(const struct flaxdrm_job *job,
			    const struct drm_flaxdrm_op_timing *timings, u32 n)
{
	u32 i;

	if (n && n != job->num_ops)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (timings[i].op_index >= job->num_ops)
			return -EINVAL;
	return 0;
}

int flaxdrm_ioctl_engine_complete(struct drm_device *dev, void *data,
				  struct drm_file *file)
{
	struct flaxdrm_device *fdev = to_flaxdrm(dev);
	struct drm_flaxdrm_engine_complete *args = data;
	struct drm_flaxdrm_op_timing *timings = NULL;
	struct flaxdrm_job *job;
	u32 n = args->num_op_timings;
	int ret = -ENOENT;

	if (args->flags || args->pad || args->reserved)
		return -EINVAL;
	if (args->status > 0 || args->status < -MAX_ERRNO)
		return -EINVAL;
	/* a pointer goes with a count, bounded by the largest program */
	if (n > FLAXDRM_MAX_OPS || (!n && args->op_timings))
		return -EINVAL;
	if (READ_ONCE(fdev->engine) != file)
		return -EPERM;

	/* copied in first: no user access under engine_lock */
	if (n) {
		timings = kvmalloc_array(n, sizeof(*timings), GFP_KERNEL);
		if (!timings)
			return -ENOMEM;
		if (copy_from_user(timings, u64_to_user_ptr(args->op_timings),
				   array_size(n, sizeof(*timings)))) {
			kvfree(timings);
			return -EFAULT;
		}
	}

	mutex_lock(&fdev->engine_lock);
	if (fdev->engine != file) {
		ret = -EPERM;
		goto out_unlock;
	}
	list_for_each_entry(job, &fdev->inflight, engine_link) {
		if (job->job_id != args->job_id)
			continue;
		ret = check_op_timings(job, timings, n);
		if (ret)
			break;
		job->exec_ns = args->exec_ns;
		job->shader_invocations = args->shader_invocations;
		job->op_timings = timings;
		job->num_op_timings = n;
		timings = NULL;
		atomic64_add(args->exec_ns, &job->ctx->exec_ns);
		engine_progress(fdev);
		job_finish(fdev, job, args->status);
		break;
	}
out_unlock:
	mutex_unlock(&fdev->engine_lock);
	kvfree(timings);
	return ret;
}
