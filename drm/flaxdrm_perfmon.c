// SPDX-License-Identifier: GPL-2.0
/*
 * flaxdrm profiling: perf counters, perfmons and the per-file history of
 * finished jobs.
 *
 * A job is accounted exactly once, when its result is known (ENGINE_COMPLETE,
 * its timeout, the engine's death, a failure at run time, or, for a job the
 * scheduler dropped without running it, when it is freed): it then counts
 * in its perfmon, in the file's fdinfo totals and in the file's history ring
 * that JOB_QUERY reads. Perfmons live in a per-file idr (under
 * flaxdrm_file.lock) and are referenced by the jobs submitted with them.
 */
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "flaxdrm_drv.h"

struct flaxdrm_counter_desc {
	const char *name;
	const char *unit;
	const char *description;
};

static const struct flaxdrm_counter_desc flaxdrm_counters[] = {
	[FLAXDRM_COUNTER_JOBS_COMPLETED] = {
		"jobs-completed", "jobs", "jobs finished, failed ones included" },
	[FLAXDRM_COUNTER_QUEUE_WAIT_NS] = {
		"queue-wait", "ns", "submit until the engine fetched the job" },
	[FLAXDRM_COUNTER_ENGINE_EXEC_NS] = {
		"engine-exec", "ns", "execution time the engine reported" },
	[FLAXDRM_COUNTER_SHADER_INVOCATIONS] = {
		"shader-invocations", "invocations",
		"compute shader invocations the engine reported" },
	[FLAXDRM_COUNTER_BYTES_READ] = {
		"bytes-read", "bytes", "tensor bytes read by successful calls" },
	[FLAXDRM_COUNTER_BYTES_WRITTEN] = {
		"bytes-written", "bytes",
		"tensor bytes written by successful calls" },
	[FLAXDRM_COUNTER_FLOPS] = {
		"flops", "flop", "operations of successful calls, from shapes" },
	[FLAXDRM_COUNTER_ERRORS] = {
		"errors", "jobs", "jobs that finished with an error" },
	[FLAXDRM_COUNTER_OPS_EXECUTED] = {
		"ops-executed", "ops", "program ops of successful calls" },
};

static_assert(ARRAY_SIZE(flaxdrm_counters) == FLAXDRM_COUNTER_COUNT);

/* ------------------------------------------------------------ perfmons */

static void perfmon_free(struct kref *ref)
{
	kfree(container_of(ref, struct flaxdrm_perfmon, ref));
}

void flaxdrm_perfmon_put(struct flaxdrm_perfmon *perfmon)
{
	if (perfmon)
		kref_put(&perfmon->ref, perfmon_free);
}

/* Looks a perfmon up in a file and takes a reference; caller holds lock. */
struct flaxdrm_perfmon *flaxdrm_perfmon_find(struct flaxdrm_file *ffile,
					     u32 handle)
{
	struct flaxdrm_perfmon *perfmon;

	lockdep_assert_held(&ffile->lock);
	perfmon = idr_find(&ffile->perfmons, handle);
	if (perfmon)
		kref_get(&perfmon->ref);
	return perfmon;
}

static int perfmon_release_one(int id, void *p, void *data)
{
	flaxdrm_perfmon_put(p);
	return 0;
}

void flaxdrm_perfmons_release(struct flaxdrm_file *ffile)
{
	idr_for_each(&ffile->perfmons, perfmon_release_one, NULL);
}

int flaxdrm_ioctl_perfmon_create(struct drm_device *dev, void *data,
				 struct drm_file *file)
{
	struct flaxdrm_file *ffile = file->driver_priv;
	struct drm_flaxdrm_perfmon_create *args = data;
	struct flaxdrm_perfmon *perfmon;
	u32 ids[FLAXDRM_MAX_PERFMON_COUNTERS];
	u32 i, j;
	int ret;

	if (args->flags || args->pad)
		return -EINVAL;
	if (!args->num_counters ||
	    args->num_counters > FLAXDRM_MAX_PERFMON_COUNTERS)
		return -EINVAL;
	if (copy_from_user(ids, u64_to_user_ptr(args->counters),
			   args->num_counters * sizeof(ids[0])))
		return -EFAULT;
	/* known ids, each at most once */
	for (i = 0; i < args->num_counters; i++) {
		if (ids[i] >= FLAXDRM_COUNTER_COUNT)
			return -EINVAL;
		for (j = 0; j < i; j++)
			if (ids[j] == ids[i])
				return -EINVAL;
	}

	perfmon = kzalloc(sizeof(*perfmon), GFP_KERNEL_ACCOUNT);
	if (!perfmon)
		return -ENOMEM;
	kref_init(&perfmon->ref);
	perfmon->num_counters = args->num_counters;
	memcpy(perfmon->ids, ids, args->num_counters * sizeof(ids[0]));
	for (i = 0; i < args->num_counters; i++)
		atomic64_set(&perfmon->values[i], 0);

	mutex_lock(&ffile->lock);
	ret = idr_alloc(&ffile->perfmons, perfmon, 1, FLAXDRM_MAX_PERFMONS + 1,
			GFP_KERNEL);
	mutex_unlock(&ffile->lock);
	if (ret < 0) {
		flaxdrm_perfmon_put(perfmon);
		return ret;
	}
	args->handle = ret;
	return 0;
}

int flaxdrm_ioctl_perfmon_destroy(struct drm_device *dev, void *data,
				  struct drm_file *file)
{
	struct flaxdrm_file *ffile = file->driver_priv;
	struct drm_flaxdrm_perfmon_destroy *args = data;
	struct flaxdrm_perfmon *perfmon;

	if (args->pad)
		return -EINVAL;

	mutex_lock(&ffile->lock);
	perfmon = idr_remove(&ffile->perfmons, args->handle);
	mutex_unlock(&ffile->lock);
	if (!perfmon)
		return -ENOENT;
	/* jobs submitted with it keep their references */
	flaxdrm_perfmon_put(perfmon);
	return 0;
}

int flaxdrm_ioctl_perfmon_get_values(struct drm_device *dev, void *data,
				     struct drm_file *file)
{
	struct flaxdrm_file *ffile = file->driver_priv;
	struct drm_flaxdrm_perfmon_get_values *args = data;
	struct flaxdrm_perfmon *perfmon;
	u64 values[FLAXDRM_MAX_PERFMON_COUNTERS];
	u32 i, n;

	if (args->flags || args->pad)
		return -EINVAL;

	mutex_lock(&ffile->lock);
	perfmon = idr_find(&ffile->perfmons, args->handle);
	if (!perfmon) {
		mutex_unlock(&ffile->lock);
		return -ENOENT;
	}
	n = perfmon->num_counters;
	for (i = 0; i < n; i++)
		values[i] = atomic64_read(&perfmon->values[i]);
	mutex_unlock(&ffile->lock);

	if (args->num_values != n)
		return -EINVAL;
	if (copy_to_user(u64_to_user_ptr(args->values), values,
			 n * sizeof(values[0])))
		return -EFAULT;
	return 0;
}

int flaxdrm_ioctl_counter_query(struct drm_device *dev, void *data,
				struct drm_file *file)
{
	struct drm_flaxdrm_counter_query *args = data;
	const struct flaxdrm_counter_desc *desc;

	if (args->flags || args->id >= FLAXDRM_COUNTER_COUNT)
		return -EINVAL;
	desc = &flaxdrm_counters[args->id];
	/* strscpy_pad: NUL-terminated and zero-filled, nothing leaks */
	strscpy_pad(args->name, desc->name, sizeof(args->name));
	strscpy_pad(args->unit, desc->unit, sizeof(args->unit));
	strscpy_pad(args->description, desc->description,
		    sizeof(args->description));
	return 0;
}

/* -------------------------------------------------------- job accounting */

/* SUBMIT: the job is unfinished until accounted; before it is pushed. */
void flaxdrm_job_track(struct flaxdrm_job *job)
{
	struct flaxdrm_ctx *ctx = job->ctx;

	job->submit_ns = ktime_get_ns();
	mutex_lock(&ctx->hist_lock);
	list_add_tail(&job->unfinished_link, &ctx->unfinished);
	mutex_unlock(&ctx->hist_lock);
}

/*
 * Counts a finished job in its perfmon and its file's totals and moves it
 * to the file's history. Called once the job's status is known, by the
 * job's owner before it signals the fence (so no allocation here) or by
 * free_job; a second call does nothing.
 */
void flaxdrm_job_account(struct flaxdrm_job *job, int status)
{
	struct flaxdrm_ctx *ctx = job->ctx;
	struct flaxdrm_perfmon *perfmon = job->perfmon;
	struct drm_flaxdrm_op_timing *old;
	struct flaxdrm_job_record *rec;
	u64 delta[FLAXDRM_COUNTER_COUNT] = {};
	u64 now = ktime_get_ns();
	u64 handed = job->fetch_ns ? job->fetch_ns : now;
	bool ok = !status;
	u32 i;

	if (job->accounted)
		return;
	job->accounted = true;

	delta[FLAXDRM_COUNTER_JOBS_COMPLETED] = 1;
	delta[FLAXDRM_COUNTER_QUEUE_WAIT_NS] =
		handed > job->submit_ns ? handed - job->submit_ns : 0;
	delta[FLAXDRM_COUNTER_ENGINE_EXEC_NS] = job->exec_ns;
	delta[FLAXDRM_COUNTER_SHADER_INVOCATIONS] = job->shader_invocations;
	delta[FLAXDRM_COUNTER_ERRORS] = !ok;
	if (ok) {
		delta[FLAXDRM_COUNTER_BYTES_READ] = job->bytes_read;
		delta[FLAXDRM_COUNTER_BYTES_WRITTEN] = job->bytes_written;
		delta[FLAXDRM_COUNTER_FLOPS] = job->flops;
		delta[FLAXDRM_COUNTER_OPS_EXECUTED] = job->num_ops;
	}
	if (perfmon)
		for (i = 0; i < perfmon->num_counters; i++)
			atomic64_add(delta[perfmon->ids[i]],
				     &perfmon->values[i]);
	atomic64_inc(&ctx->jobs_completed);
	if (!ok)
		atomic64_inc(&ctx->jobs_failed);

	mutex_lock(&ctx->hist_lock);
	list_del_init(&job->unfinished_link);
	rec = &ctx->history[ctx->history_next];
	ctx->history_next = (ctx->history_next + 1) % FLAXDRM_JOB_HISTORY;
	old = rec->timings;
	rec->job_id = job->job_id;
	rec->op = job->op;
	rec->status = status;
	rec->queue_ns = delta[FLAXDRM_COUNTER_QUEUE_WAIT_NS];
	rec->exec_ns = job->exec_ns;
	rec->shader_invocations = job->shader_invocations;
	rec->flops = job->flops;
	rec->bytes_read = job->bytes_read;
	rec->bytes_written = job->bytes_written;
	/* the record takes the job's timings */
	rec->timings = job->op_timings;
	rec->num_timings = job->num_op_timings;
	job->op_timings = NULL;
	job->num_op_timings = 0;
	mutex_unlock(&ctx->hist_lock);
	kvfree(old);
}

void flaxdrm_ctx_history_free(struct flaxdrm_ctx *ctx)
{
	u32 i;

	for (i = 0; i < FLAXDRM_JOB_HISTORY; i++)
		kvfree(ctx->history[i].timings);
}

int flaxdrm_ioctl_job_query(struct drm_device *dev, void *data,
			    struct drm_file *file)
{
	struct flaxdrm_file *ffile = file->driver_priv;
	struct flaxdrm_ctx *ctx = ffile->ctx;
	struct drm_flaxdrm_job_query *args = data;
	struct drm_flaxdrm_op_timing *timings = NULL;
	const struct flaxdrm_job_record *rec = NULL;
	struct flaxdrm_job *job;
	u32 cap = 0, n = 0, i;
	int ret = -ENOENT;

	if (args->flags)
		return -EINVAL;
	if (args->op_timings)
		cap = min_t(u32, args->num_op_timings, FLAXDRM_MAX_OPS);
	if (cap) {
		timings = kvmalloc_array(cap, sizeof(*timings), GFP_KERNEL);
		if (!timings)
			return -ENOMEM;
	}

	mutex_lock(&ctx->hist_lock);
	for (i = 0; args->job_id && i < FLAXDRM_JOB_HISTORY; i++) {
		if (ctx->history[i].job_id == args->job_id) {
			rec = &ctx->history[i];
			break;
		}
	}
	if (rec) {
		args->status = rec->status;
		args->op = rec->op;
		args->queue_ns = rec->queue_ns;
		args->exec_ns = rec->exec_ns;
		args->shader_invocations = rec->shader_invocations;
		args->flops = rec->flops;
		args->bytes_read = rec->bytes_read;
		args->bytes_written = rec->bytes_written;
		args->num_op_timings = rec->num_timings;
		n = min(cap, rec->num_timings);
		if (n)
			memcpy(timings, rec->timings, n * sizeof(*timings));
		ret = 0;
	} else {
		list_for_each_entry(job, &ctx->unfinished, unfinished_link) {
			if (job->job_id == args->job_id) {
				ret = -EBUSY;
				break;
			}
		}
	}
	mutex_unlock(&ctx->hist_lock);

	if (!ret && n && copy_to_user(u64_to_user_ptr(args->op_timings),
				      timings, n * sizeof(*timings)))
		ret = -EFAULT;
	kvfree(timings);
	return ret;
}
