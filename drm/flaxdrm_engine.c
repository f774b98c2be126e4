// SPDX-License-Identifier: GPL-2.0
/*
 * flaxdrm engine link. One trusted engine daemon attaches through the
 * primary node (CAP_SYS_ADMIN), fetches the jobs the scheduler runs and
 * completes them. Every job handed over has a hardware fence and a timer;
 * the fence is signalled by ENGINE_COMPLETE, by the timer (-ETIMEDOUT) or by
 * the engine's death (-ENODEV). Fences of one client context signal in
 * submission order: a job completed early waits for its predecessors.
 * No user copy, allocation or GEM handle work happens under engine_lock
 * or while a fence is being signalled.
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

/*
 * Ownership: the job lists and states are under engine_lock. Whoever takes
 * a job off the engine (COMPLETE, the timer, the engine's death, run_job
 * when there is no engine) marks it ENDED under the lock and from then on
 * owns it alone: it drops the lock, sets the status, accounts the job and
 * signals its fence. Signalling happens under fence_lock only, in a
 * dma_fence_begin/end_signalling() section; engine handles are deleted
 * after it, since deleting a GEM handle takes locks that are held across
 * allocations.
 */

/* Signals, in order, the retirable jobs at the head of a context. */
static void ctx_retire_locked(struct flaxdrm_device *fdev,
			      struct flaxdrm_ctx *ctx)
{
	struct flaxdrm_job *job;

	lockdep_assert_held(&fdev->fence_lock);
	while ((job = list_first_entry_or_null(&ctx->running,
					       struct flaxdrm_job, ctx_link)) &&
	       job->retirable) {
		struct dma_fence *fence = dma_fence_get(job->hw_fence);

		list_del_init(&job->ctx_link);
		if (job->status) {
			dma_fence_set_error(fence, job->status);
			/* the 6.1 scheduler does not pass the error on */
			dma_fence_set_error(&job->base.s_fence->finished,
					    job->status);
		}
		/* the scheduler may free the job from here on */
		dma_fence_signal_locked(fence);
		dma_fence_put(fence);
	}
}

/*
 * Ends a job its caller owns (state ENDED, off every engine list): counts
 * it, then signals it and the later jobs of its context that waited for
 * it. Called in a fence signalling section without engine_lock.
 */
static void job_end(struct flaxdrm_device *fdev, struct flaxdrm_job *job,
		    int status)
{
	struct flaxdrm_ctx *ctx = job->ctx;
	unsigned long flags;

	job->status = status;
	flaxdrm_job_account(job, status);
	/* signalling may free the job and with it the last context reference */
	flaxdrm_ctx_get(ctx);
	spin_lock_irqsave(&fdev->fence_lock, flags);
	job->retirable = true;
	ctx_retire_locked(fdev, ctx);
	spin_unlock_irqrestore(&fdev->fence_lock, flags);
	flaxdrm_ctx_put(ctx);
}

static void jobs_end(struct flaxdrm_device *fdev, struct list_head *jobs,
		     int status)
{
	struct flaxdrm_job *job, *tmp;

	/* tmp is owned by the caller too, so ending job cannot free it */
	list_for_each_entry_safe(job, tmp, jobs, engine_link) {
		list_del_init(&job->engine_link);
		job_end(fdev, job, status);
	}
}

/* Takes a job off the engine: the caller owns it and its engine handles. */
static void job_take(struct flaxdrm_device *fdev, struct flaxdrm_job *job,
		     struct list_head *jobs, struct list_head *handles)
{
	lockdep_assert_held(&fdev->engine_lock);
	list_move_tail(&job->engine_link, jobs);
	job->state = FLAXDRM_JOB_ENDED;
	if (job->engine_handles) {
		list_add_tail(&job->engine_handles->link, handles);
		job->engine_handles = NULL;
	}
}

/* Deletes handles in the engine's file; the file must be open. */
static void engine_handles_release(struct flaxdrm_engine_handles *handles)
{
	u32 i;

	for (i = 0; i < handles->count; i++)
		drm_gem_handle_delete(handles->file, handles->handles[i]);
	kvfree(handles);
}

static void engine_handles_release_all(struct list_head *list)
{
	struct flaxdrm_engine_handles *handles, *tmp;

	list_for_each_entry_safe(handles, tmp, list, link)
		engine_handles_release(handles);
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
	unsigned long flags;
	bool cookie;
	int error;

	/* every fence of the scheduler waits for run_job */
	cookie = dma_fence_begin_signalling();
	spin_lock_irqsave(&fdev->fence_lock, flags);
	dma_fence_init(job->hw_fence, &flaxdrm_fence_ops, &fdev->fence_lock,
		       ctx->fence_context, ++ctx->seqno);
	list_add_tail(&job->ctx_link, &ctx->running);
	spin_unlock_irqrestore(&fdev->fence_lock, flags);
	job->hw_fence_init = true;
	fence = dma_fence_get(job->hw_fence);

	mutex_lock(&fdev->engine_lock);
	error = job->base.s_fence->finished.error;
	if (!fdev->engine)
		error = -ENODEV;
	else if (fdev->engine_stalled)
		error = -ETIMEDOUT;
	if (error) {
		job->state = FLAXDRM_JOB_ENDED;
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

	if (error)
		job_end(fdev, job, error);
	dma_fence_end_signalling(cookie);
	return fence;
}

void flaxdrm_engine_timeout_work(struct work_struct *work)
{
	struct flaxdrm_job *job = container_of(to_delayed_work(work),
					       struct flaxdrm_job,
					       timeout_work);
	struct flaxdrm_device *fdev = job->fdev;
	struct flaxdrm_job *queued, *tmp;
	unsigned long deadline;
	LIST_HEAD(handles);
	LIST_HEAD(ended);
	bool cookie;

	cookie = dma_fence_begin_signalling();
	/* free_job cancels this work synchronously: the job is alive */
	mutex_lock(&fdev->engine_lock);
	switch (job->state) {
	case FLAXDRM_JOB_FETCHED:
		/* a run of this work queued before FETCH may come late */
		if (time_before(jiffies, job->deadline)) {
			mod_delayed_work(system_wq, &job->timeout_work,
					 job->deadline - jiffies);
			break;
		}
		/* the engine took too long */
		drm_dbg_driver(&fdev->drm, "job %llu timed out\n", job->job_id);
		job_take(fdev, job, &ended, &handles);
		/* engine_detach waits for these handles to be deleted */
		if (!list_empty(&handles))
			WRITE_ONCE(fdev->handle_drops, fdev->handle_drops + 1);
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
		list_for_each_entry_safe(queued, tmp, &fdev->queue, engine_link)
			job_take(fdev, queued, &ended, &handles);
		break;
	default:
		/* FETCHING: the FETCH rearms the timer; ENDED: not ours */
		break;
	}
	mutex_unlock(&fdev->engine_lock);
	jobs_end(fdev, &ended, -ETIMEDOUT);
	dma_fence_end_signalling(cookie);

	if (!list_empty(&handles)) {
		engine_handles_release_all(&handles);
		mutex_lock(&fdev->engine_lock);
		WRITE_ONCE(fdev->handle_drops, fdev->handle_drops - 1);
		if (!fdev->handle_drops)
			wake_up_all(&fdev->engine_wq);
		mutex_unlock(&fdev->engine_lock);
	}
}

/*
 * The engine's file is closing: everything it had or would get fails. It
 * cannot be in FETCH or COMPLETE now (release waits for its ioctls), so
 * every job it holds is queued or in flight.
 */
void flaxdrm_engine_detach(struct flaxdrm_device *fdev, struct drm_file *file)
{
	struct flaxdrm_job *job, *tmp;
	LIST_HEAD(handles);
	LIST_HEAD(ended);
	bool cookie;

	mutex_lock(&fdev->engine_lock);
	if (fdev->engine != file) {
		mutex_unlock(&fdev->engine_lock);
		return;
	}
	WRITE_ONCE(fdev->engine, NULL);
	list_for_each_entry_safe(job, tmp, &fdev->inflight, engine_link)
		job_take(fdev, job, &ended, &handles);
	list_for_each_entry_safe(job, tmp, &fdev->queue, engine_link)
		job_take(fdev, job, &ended, &handles);
	wake_up_all(&fdev->engine_wq);
	mutex_unlock(&fdev->engine_lock);

	cookie = dma_fence_begin_signalling();
	jobs_end(fdev, &ended, -ENODEV);
	dma_fence_end_signalling(cookie);
	engine_handles_release_all(&handles);
	/* DRM frees the file after this: timers must be done with its handles */
	wait_event(fdev->engine_wq, !READ_ONCE(fdev->handle_drops));
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
static struct flaxdrm_engine_handles *
job_create_engine_handles(const struct flaxdrm_job *job, struct drm_file *file,
			  u32 *tensor_handle)
{
	struct flaxdrm_engine_handles *handles;
	u32 i, j;
	int ret;

	handles = kvmalloc(struct_size(handles, handles, job->num_tensors),
			   GFP_KERNEL);
	if (!handles)
		return ERR_PTR(-ENOMEM);
	INIT_LIST_HEAD(&handles->link);
	handles->file = file;
	handles->count = 0;

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
					    &handles->handles[handles->count]);
		if (ret) {
			engine_handles_release(handles);
			return ERR_PTR(ret);
		}
		tensor_handle[i] = handles->handles[handles->count++];
	}
	return handles;
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

/*
 * Writes a job the caller owns to the engine's buffer, with handles in the
 * engine's file; on failure nothing is left behind.
 */
static struct flaxdrm_engine_handles *
job_copy_out(const struct flaxdrm_job *job, struct drm_file *file,
	     void __user *ubuf, size_t size)
{
	struct flaxdrm_engine_handles *handles;
	u32 *tensor_handle;
	void *buf;

	buf = kvzalloc(size, GFP_KERNEL);
	tensor_handle = kvcalloc(job->num_tensors, sizeof(*tensor_handle),
				 GFP_KERNEL);
	if (!buf || (job->num_tensors && !tensor_handle)) {
		handles = ERR_PTR(-ENOMEM);
		goto out;
	}
	handles = job_create_engine_handles(job, file, tensor_handle);
	if (IS_ERR(handles))
		goto out;
	job_serialize(job, buf, tensor_handle);
	if (copy_to_user(ubuf, buf, size)) {
		engine_handles_release(handles);
		handles = ERR_PTR(-EFAULT);
	}
out:
	kvfree(tensor_handle);
	kvfree(buf);
	return handles;
}

int flaxdrm_ioctl_engine_fetch(struct drm_device *dev, void *data,
			       struct drm_file *file)
{
	struct flaxdrm_device *fdev = to_flaxdrm(dev);
	struct drm_flaxdrm_engine_fetch *args = data;
	struct flaxdrm_engine_handles *handles;
	struct flaxdrm_job *job;
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

	ret = mutex_lock_interruptible(&fdev->fetch_lock);
	if (ret)
		return ret;
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

	/*
	 * This call owns the job while it allocates, creates handles and
	 * copies it out without engine_lock; the engine cannot detach before
	 * the call returns, and the timer leaves a FETCHING job alone.
	 */
	list_del_init(&job->engine_link);
	job->state = FLAXDRM_JOB_FETCHING;
	mutex_unlock(&fdev->engine_lock);

	handles = job_copy_out(job, file, u64_to_user_ptr(args->buffer), size);

	mutex_lock(&fdev->engine_lock);
	if (IS_ERR(handles)) {
		/*
		 * A bad buffer (EFAULT) or no memory: the job goes back to
		 * the head of the queue, next again since FETCHes are
		 * serialized, and waits as a queued job does.
		 */
		ret = PTR_ERR(handles);
		job->state = FLAXDRM_JOB_QUEUED;
		list_add(&job->engine_link, &fdev->queue);
		mod_delayed_work(system_wq, &job->timeout_work, job_timeout());
		goto out_unlock;
	}
	job->state = FLAXDRM_JOB_FETCHED;
	job->engine_handles = handles;
	job->fetch_ns = ktime_get_ns();
	list_add_tail(&job->engine_link, &fdev->inflight);
	/* from now on the engine has the job's whole timeout for it */
	job->deadline = jiffies + job_timeout();
	mod_delayed_work(system_wq, &job->timeout_work,
			 job->deadline - jiffies);
	args->buffer_size = size;
	args->job_id = job->job_id;
	ret = 0;

out_unlock:
	mutex_unlock(&fdev->engine_lock);
	mutex_unlock(&fdev->fetch_lock);
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
	struct flaxdrm_job *job, *found = NULL;
	u32 n = args->num_op_timings;
	LIST_HEAD(handles);
	LIST_HEAD(ended);
	int ret = -ENOENT;
	bool cookie;

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
	/* a job the timer took first is no longer in flight: ENOENT */
	list_for_each_entry(job, &fdev->inflight, engine_link) {
		if (job->job_id != args->job_id)
			continue;
		ret = check_op_timings(job, timings, n);
		if (!ret) {
			engine_progress(fdev);
			job_take(fdev, job, &ended, &handles);
			found = job;
		}
		break;
	}
out_unlock:
	mutex_unlock(&fdev->engine_lock);

	if (found) {
		found->exec_ns = args->exec_ns;
		found->shader_invocations = args->shader_invocations;
		found->op_timings = timings;
		found->num_op_timings = n;
		timings = NULL;
		atomic64_add(args->exec_ns, &found->ctx->exec_ns);
		cookie = dma_fence_begin_signalling();
		jobs_end(fdev, &ended, args->status);
		dma_fence_end_signalling(cookie);
		engine_handles_release_all(&handles);
	}
	kvfree(timings);
	return ret;
}
