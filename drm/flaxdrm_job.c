// SPDX-License-Identifier: GPL-2.0
/*
 * flaxdrm jobs: SUBMIT builds a self-contained job (tensor table with BO
 * references, ops) and pushes it through the file's drm_sched entity, with
 * in-syncobjs as dependencies and the finished fence installed in the
 * out-syncobj. The scheduler hands it to the engine (flaxdrm_engine.c).
 */
#include <linux/dma-fence-chain.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include <drm/drm_syncobj.h>

#include "flaxdrm_drv.h"
#include "flaxdrm_rules.h"

struct flaxdrm_ctx *flaxdrm_ctx_create(void)
{
	struct flaxdrm_ctx *ctx = kzalloc(sizeof(*ctx), GFP_KERNEL);

	if (!ctx)
		return NULL;
	kref_init(&ctx->ref);
	ctx->fence_context = dma_fence_context_alloc(1);
	INIT_LIST_HEAD(&ctx->running);
	atomic64_set(&ctx->exec_ns, 0);
	atomic_set(&ctx->jobs, 0);
	atomic64_set(&ctx->jobs_completed, 0);
	atomic64_set(&ctx->jobs_failed, 0);
	mutex_init(&ctx->hist_lock);
	INIT_LIST_HEAD(&ctx->unfinished);
	return ctx;
}

void flaxdrm_ctx_get(struct flaxdrm_ctx *ctx)
{
	kref_get(&ctx->ref);
}

static void ctx_free(struct kref *ref)
{
	struct flaxdrm_ctx *ctx = container_of(ref, struct flaxdrm_ctx, ref);

	flaxdrm_ctx_history_free(ctx);
	mutex_destroy(&ctx->hist_lock);
	kfree(ctx);
}

void flaxdrm_ctx_put(struct flaxdrm_ctx *ctx)
{
	kref_put(&ctx->ref, ctx_free);
}

/* Frees what a job owns; the scheduler part is cleaned up by the caller. */
static void job_free(struct flaxdrm_job *job)
{
	u32 i;

	if (job->bos)
		for (i = 0; i < job->num_tensors; i++)
			if (job->bos[i])
				drm_gem_object_put(job->bos[i]);
	kvfree(job->bos);
	kvfree(job->tensors);
	kvfree(job->ops);
	kvfree(job->engine_handles);
	kvfree(job->op_timings);
	flaxdrm_perfmon_put(job->perfmon);
	if (job->hw_fence_init)
		dma_fence_put(job->hw_fence);
	else
		kfree(job->hw_fence);
	if (job->ctx) {
		atomic_dec(&job->ctx->jobs);
		flaxdrm_ctx_put(job->ctx);
	}
	kfree(job);
}

static struct dma_fence *flaxdrm_run_job(struct drm_sched_job *sched_job)
{
	return flaxdrm_engine_run(to_flaxdrm_job(sched_job));
}

static void flaxdrm_free_job(struct drm_sched_job *sched_job)
{
	struct flaxdrm_job *job = to_flaxdrm_job(sched_job);
	struct flaxdrm_device *fdev = job->fdev;

	cancel_delayed_work_sync(&job->timeout_work);
	/* a job the scheduler dropped without running it still counts */
	flaxdrm_job_account(job, job->base.s_fence->finished.error ?
			    job->base.s_fence->finished.error : -ECANCELED);
	drm_sched_job_cleanup(sched_job);
	job_free(job);

	spin_lock(&fdev->jobs_lock);
	if (!--fdev->live_jobs)
		wake_up(&fdev->jobs_wq);
	spin_unlock(&fdev->jobs_lock);
}

/*
 * The job timeout is a per-job timer started when the job is handed to the
 * engine (flaxdrm_engine_timeout_work), not the scheduler's TDR: the 6.1
 * scheduler can only recover from a timeout by resubmitting every pending
 * job, which is not what a lost engine job needs.
 */
static const struct drm_sched_backend_ops flaxdrm_sched_ops = {
	.run_job = flaxdrm_run_job,
	.free_job = flaxdrm_free_job,
};

int flaxdrm_sched_init(struct flaxdrm_device *fdev)
{
#if defined(FLAXDRM_HAVE_SCHED_INIT_ARGS)
	const struct drm_sched_init_args args = {
		.ops = &flaxdrm_sched_ops,
#if defined(FLAXDRM_HAVE_SCHED_ARGS_NUM_RQS)
		.num_rqs = DRM_SCHED_PRIORITY_COUNT,
#endif
		.credit_limit = FLAXDRM_HW_JOBS,
		.hang_limit = 0,
		.timeout = MAX_SCHEDULE_TIMEOUT,
		.name = FLAXDRM_DRIVER_NAME,
		.dev = fdev->drm.dev,
	};

	return drm_sched_init(&fdev->sched, &args);
#elif defined(FLAXDRM_HAVE_SCHED_SUBMIT_WQ)
	return drm_sched_init(&fdev->sched, &flaxdrm_sched_ops, NULL,
			      DRM_SCHED_PRIORITY_COUNT, FLAXDRM_HW_JOBS, 0,
			      MAX_SCHEDULE_TIMEOUT, NULL, NULL,
			      FLAXDRM_DRIVER_NAME, fdev->drm.dev);
#else
	return drm_sched_init(&fdev->sched, &flaxdrm_sched_ops, FLAXDRM_HW_JOBS,
			      0, MAX_SCHEDULE_TIMEOUT, NULL, NULL,
			      FLAXDRM_DRIVER_NAME, fdev->drm.dev);
#endif
}

static bool jobs_idle(struct flaxdrm_device *fdev)
{
	bool idle;

	spin_lock(&fdev->jobs_lock);
	idle = !fdev->live_jobs;
	spin_unlock(&fdev->jobs_lock);
	return idle;
}

void flaxdrm_sched_fini(struct flaxdrm_device *fdev)
{
	/*
	 * Every file is closed, so no engine is attached and each remaining
	 * job fails as soon as it runs; the 6.1 scheduler does not free
	 * pending jobs in drm_sched_fini(), so wait for them here.
	 */
	wait_event(fdev->jobs_wq, jobs_idle(fdev));
	drm_sched_fini(&fdev->sched);
}

static void *copy_array(u64 uptr, u32 count, size_t elem)
{
	size_t bytes = array_size(count, elem);
	void *p;

	if (!count)
		return NULL;
	p = kvmalloc(bytes, GFP_KERNEL);
	if (!p)
		return ERR_PTR(-ENOMEM);
	if (copy_from_user(p, u64_to_user_ptr(uptr), bytes)) {
		kvfree(p);
		return ERR_PTR(-EFAULT);
	}
	return p;
}

static int job_alloc_tensors(struct flaxdrm_job *job, u32 num_tensors)
{
	job->num_tensors = num_tensors;
	job->tensors = kvcalloc(num_tensors, sizeof(*job->tensors),
				GFP_KERNEL_ACCOUNT);
	job->bos = kvcalloc(num_tensors, sizeof(*job->bos), GFP_KERNEL_ACCOUNT);
	if (!job->tensors || !job->bos)
		return -ENOMEM;
	return 0;
}

static void job_set_var(struct flaxdrm_job *job, u32 i,
			const struct flaxdrm_var *var)
{
	struct drm_flaxdrm_engine_tensor *et = &job->tensors[i];

	drm_gem_object_get(var->bo);
	job->bos[i] = var->bo;
	et->offset = var->offset;
	et->size = var->size;
	et->var_id = var->var_id;
	et->var_generation = var->generation;
}

static bool collection_listed(const char *name,
			      const struct drm_flaxdrm_collection *list,
			      u32 count)
{
	u32 i;

	for (i = 0; i < count; i++)
		if (!strcmp(list[i].name, name))
			return true;
	return false;
}

/* SETUP and CLEANUP: every variable of the subtree, no ops. */
static struct flaxdrm_module *subtree_next(struct flaxdrm_module *m,
					   struct flaxdrm_module *top)
{
	if (!list_empty(&m->children))
		return list_first_entry(&m->children, struct flaxdrm_module,
					sibling);
	for (; m != top; m = m->parent)
		if (!list_is_last(&m->sibling, &m->parent->children))
			return list_next_entry(m, sibling);
	return NULL;
}

static int job_build_vars(struct flaxdrm_job *job, struct flaxdrm_module *top)
{
	struct flaxdrm_module *m;
	struct flaxdrm_var *var;
	u32 count = 0, i = 0;
	int ret;

	for (m = top; m; m = subtree_next(m, top)) {
		count += m->num_vars;
		if (count > FLAXDRM_MAX_TENSORS)
			return -EINVAL;
	}
	ret = job_alloc_tensors(job, count);
	if (ret)
		return ret;

	for (m = top; m; m = subtree_next(m, top)) {
		list_for_each_entry(var, &m->vars, link) {
			struct drm_flaxdrm_tensor *desc = &job->tensors[i].desc;

			desc->kind = FLAXDRM_TENSOR_VARIABLE;
			desc->dtype = var->dtype;
			desc->rank = var->rank;
			desc->module = m->handle;
			memcpy(desc->dims, var->dims, sizeof(desc->dims));
			memcpy(desc->collection, var->collection,
			       sizeof(desc->collection));
			memcpy(desc->name, var->name, sizeof(desc->name));
			job_set_var(job, i, var);
			i++;
		}
	}
	return 0;
}

struct call_args {
	const struct drm_flaxdrm_binding *bindings;
	u32 num_bindings;
	const struct drm_flaxdrm_collection *mutables;
	u32 num_mutable;
	u32 flags;
};

static int job_bind(struct flaxdrm_job *job, struct drm_file *file,
		    const struct flaxdrm_program *prog,
		    const struct drm_flaxdrm_binding *b)
{
	struct drm_flaxdrm_engine_tensor *et;
	struct drm_gem_object *obj;
	u64 end;
	u32 kind;

	if (b->tensor >= prog->num_tensors)
		return -EINVAL;
	kind = prog->tensors[b->tensor].kind;
	if (kind != FLAXDRM_TENSOR_INPUT && kind != FLAXDRM_TENSOR_OUTPUT)
		return -EINVAL;
	/* each INPUT and OUTPUT exactly once */
	if (job->bos[b->tensor])
		return -EINVAL;

	et = &job->tensors[b->tensor];
	obj = drm_gem_object_lookup(file, b->bo);
	if (!obj)
		return -ENOENT;
	if (check_add_overflow(b->offset, et->size, &end) || end > obj->size) {
		drm_gem_object_put(obj);
		return -EINVAL;
	}
	job->bos[b->tensor] = obj;
	et->offset = b->offset;
	return 0;
}

static int job_build_call(struct flaxdrm_job *job, struct drm_file *file,
			  const struct flaxdrm_program *prog,
			  const struct call_args *ca)
{
	u32 i, num_io = 0;
	int ret;

	for (i = 0; i < prog->num_ops; i++)
		if (prog->op_modules[i] && prog->op_modules[i]->dead)
			return -ENOENT;

	ret = job_alloc_tensors(job, prog->num_tensors);
	if (ret)
		return ret;
	job->num_ops = prog->num_ops;
	job->ops = kvmalloc_array(prog->num_ops, sizeof(*prog->ops),
				  GFP_KERNEL_ACCOUNT);
	if (!job->ops)
		return -ENOMEM;
	memcpy(job->ops, prog->ops, array_size(prog->num_ops,
					       sizeof(*prog->ops)));
	job->flops = prog->cost.flops;
	job->bytes_read = prog->cost.bytes_read;
	job->bytes_written = prog->cost.bytes_written;

	for (i = 0; i < prog->num_tensors; i++) {
		const struct drm_flaxdrm_tensor *t = &prog->tensors[i];
		struct drm_flaxdrm_engine_tensor *et = &job->tensors[i];
		struct flaxdrm_module *m = prog->tensor_modules[i];
		struct flaxdrm_var *var;

		et->desc = *t;
		et->size = flaxdrm_tensor_bytes(t);
		switch (t->kind) {
		case FLAXDRM_TENSOR_INPUT:
			num_io++;
			break;
		case FLAXDRM_TENSOR_OUTPUT:
			et->writable = 1;
			num_io++;
			break;
		case FLAXDRM_TENSOR_TEMP:
			et->writable = 1;
			break;
		case FLAXDRM_TENSOR_VARIABLE:
			if (m->dead)
				return -ENOENT;
			/* a rebind may have changed the variable's shape */
			var = flaxdrm_module_find_var(m, t->collection,
						      t->name);
			if (!var || var->dtype != t->dtype ||
			    var->rank != t->rank ||
			    memcmp(var->dims, t->dims, sizeof(t->dims)))
				return -EINVAL;
			/* Flax raises when a call writes an immutable one */
			if (prog->written[i] &&
			    !(ca->flags & FLAXDRM_SUBMIT_MUTABLE_ALL) &&
			    !collection_listed(t->collection, ca->mutables,
					       ca->num_mutable))
				return -EINVAL;
			et->writable = prog->written[i];
			job_set_var(job, i, var);
			break;
		}
	}

	if (ca->num_bindings != num_io)
		return -EINVAL;
	for (i = 0; i < ca->num_bindings; i++) {
		ret = job_bind(job, file, prog, &ca->bindings[i]);
		if (ret)
			return ret;
	}
	return 0;
}

static int job_add_in_syncs(struct flaxdrm_job *job, struct drm_file *file,
			    const struct drm_flaxdrm_sync *syncs, u32 count)
{
	struct dma_fence *fence;
	u32 i;
	int ret;

	for (i = 0; i < count; i++) {
		ret = drm_syncobj_find_fence(file, syncs[i].handle,
					     syncs[i].point, 0, &fence);
		if (ret)
			return ret;
		ret = drm_sched_job_add_dependency(&job->base, fence);
		if (ret)
			return ret;
	}
	return 0;
}

static int submit_check_args(const struct drm_flaxdrm_submit *args)
{
	if (args->pad || args->pad2 || args->reserved)
		return -EINVAL;
	if (args->flags & ~FLAXDRM_SUBMIT_FLAGS)
		return -EINVAL;
	switch (args->op) {
	case FLAXDRM_JOB_SETUP:
	case FLAXDRM_JOB_CLEANUP:
		if (args->program || args->num_bindings || args->num_mutable)
			return -EINVAL;
		break;
	case FLAXDRM_JOB_CALL:
		break;
	default:
		return -EINVAL;
	}
	if (args->num_bindings > FLAXDRM_MAX_BINDINGS ||
	    args->num_in_syncs > FLAXDRM_MAX_SYNCS ||
	    args->num_mutable > FLAXDRM_MAX_MUTABLE)
		return -EINVAL;
	if (args->out_sync.flags ||
	    (!args->out_sync.handle && args->out_sync.point))
		return -EINVAL;
	return 0;
}

int flaxdrm_ioctl_submit(struct drm_device *dev, void *data,
			 struct drm_file *file)
{
	struct flaxdrm_device *fdev = to_flaxdrm(dev);
	struct flaxdrm_file *ffile = file->driver_priv;
	struct drm_flaxdrm_submit *args = data;
	struct drm_flaxdrm_binding *bindings = NULL;
	struct drm_flaxdrm_sync *in_syncs = NULL;
	struct drm_flaxdrm_collection *mutables = NULL;
	struct drm_syncobj *out_syncobj = NULL;
	struct dma_fence_chain *chain = NULL;
	struct flaxdrm_program *prog = NULL;
	struct dma_fence *finished;
	struct flaxdrm_module *root;
	struct flaxdrm_job *job;
	struct call_args ca;
	bool sched_init = false;
	u64 job_id;
	u32 i;
	int ret;

	ret = submit_check_args(args);
	if (ret)
		return ret;

	bindings = copy_array(args->bindings, args->num_bindings,
			      sizeof(*bindings));
	in_syncs = copy_array(args->in_syncs, args->num_in_syncs,
			      sizeof(*in_syncs));
	mutables = copy_array(args->mutable_collections, args->num_mutable,
			      sizeof(*mutables));
	if (IS_ERR(bindings) || IS_ERR(in_syncs) || IS_ERR(mutables)) {
		ret = IS_ERR(bindings) ? PTR_ERR(bindings) :
		      IS_ERR(in_syncs) ? PTR_ERR(in_syncs) : PTR_ERR(mutables);
		goto err_arrays;
	}
	for (i = 0; i < args->num_in_syncs; i++)
		if (in_syncs[i].flags) {
			ret = -EINVAL;
			goto err_arrays;
		}
	for (i = 0; i < args->num_mutable; i++)
		if (flaxdrm_check_name(mutables[i].name,
				       sizeof(mutables[i].name), false)) {
			ret = -EINVAL;
			goto err_arrays;
		}

	job = kzalloc(sizeof(*job), GFP_KERNEL_ACCOUNT);
	if (!job) {
		ret = -ENOMEM;
		goto err_arrays;
	}
	job->fdev = fdev;
	job->op = args->op;
	job->module = args->module;
	job->flags = args->flags;
	INIT_LIST_HEAD(&job->engine_link);
	INIT_LIST_HEAD(&job->ctx_link);
	INIT_LIST_HEAD(&job->unfinished_link);
	INIT_DELAYED_WORK(&job->timeout_work, flaxdrm_engine_timeout_work);
	job->hw_fence = kzalloc(sizeof(*job->hw_fence), GFP_KERNEL);
	if (!job->hw_fence) {
		ret = -ENOMEM;
		goto err_job;
	}

#if defined(FLAXDRM_HAVE_SCHED_JOB_CLIENT_ID)
	ret = drm_sched_job_init(&job->base, &ffile->entity, 1, ffile,
				 file->client_id);
#elif defined(FLAXDRM_HAVE_SCHED_JOB_CREDITS)
	ret = drm_sched_job_init(&job->base, &ffile->entity, 1, ffile);
#else
	ret = drm_sched_job_init(&job->base, &ffile->entity, ffile);
#endif
	if (ret)
		goto err_job;
	sched_init = true;

	ret = job_add_in_syncs(job, file, in_syncs, args->num_in_syncs);
	if (ret)
		goto err_job;

	if (args->out_sync.handle) {
		out_syncobj = drm_syncobj_find(file, args->out_sync.handle);
		if (!out_syncobj) {
			ret = -ENOENT;
			goto err_job;
		}
		if (args->out_sync.point) {
			chain = dma_fence_chain_alloc();
			if (!chain) {
				ret = -ENOMEM;
				goto err_job;
			}
		}
	}

	mutex_lock(&ffile->lock);
	root = flaxdrm_module_lookup(ffile, args->module);
	if (!root) {
		ret = -ENOENT;
		goto err_unlock;
	}
	if (args->perfmon) {
		job->perfmon = flaxdrm_perfmon_find(ffile, args->perfmon);
		if (!job->perfmon) {
			ret = -ENOENT;
			goto err_unlock;
		}
	}
	if (args->op == FLAXDRM_JOB_CALL) {
		prog = idr_find(&ffile->programs, args->program);
		if (!prog) {
			ret = -ENOENT;
			goto err_unlock;
		}
		if (prog->root->dead) {
			ret = -ENOENT;
			goto err_unlock;
		}
		/* the program's root must lie in the job's tree */
		if (!flaxdrm_module_is_under(prog->root, root)) {
			ret = -EINVAL;
			goto err_unlock;
		}
		ca.bindings = bindings;
		ca.num_bindings = args->num_bindings;
		ca.mutables = mutables;
		ca.num_mutable = args->num_mutable;
		ca.flags = args->flags;
		ret = job_build_call(job, file, prog, &ca);
	} else {
		ret = job_build_vars(job, root);
	}
	if (ret)
		goto err_unlock;

	if (!flaxdrm_engine_attached(fdev)) {
		ret = -ENODEV;
		goto err_unlock;
	}
	/*
	 * Bound the kernel memory one file can tie up in unfinished jobs
	 * (EBUSY: libdrm's drmIoctl() would spin on EAGAIN).
	 */
	if (atomic_inc_return(&ffile->ctx->jobs) > FLAXDRM_MAX_FILE_JOBS) {
		atomic_dec(&ffile->ctx->jobs);
		ret = -EBUSY;
		goto err_unlock;
	}

	job->ctx = ffile->ctx;
	flaxdrm_ctx_get(job->ctx);
	job_id = atomic64_inc_return(&fdev->job_seq);
	job->job_id = job_id;

	spin_lock(&fdev->jobs_lock);
	fdev->live_jobs++;
	spin_unlock(&fdev->jobs_lock);

	flaxdrm_job_track(job);
	drm_sched_job_arm(&job->base);
	finished = dma_fence_get(&job->base.s_fence->finished);
	/*
	 * A job of another file waiting on this one must wait until it is
	 * finished, not merely handed to the engine, which may run the jobs of
	 * different contexts concurrently.
	 */
	set_bit(DRM_SCHED_FENCE_DONT_PIPELINE, &finished->flags);
	drm_sched_entity_push_job(&job->base);
	/* the scheduler owns the job from here on */
	mutex_unlock(&ffile->lock);

	if (out_syncobj) {
		if (chain)
			drm_syncobj_add_point(out_syncobj, chain, finished,
					      args->out_sync.point);
		else
			drm_syncobj_replace_fence(out_syncobj, finished);
		drm_syncobj_put(out_syncobj);
	}
	dma_fence_put(finished);

	args->job_id = job_id;
	kvfree(bindings);
	kvfree(in_syncs);
	kvfree(mutables);
	return 0;

err_unlock:
	mutex_unlock(&ffile->lock);
err_job:
	dma_fence_chain_free(chain);
	if (out_syncobj)
		drm_syncobj_put(out_syncobj);
	if (sched_init)
		drm_sched_job_cleanup(&job->base);
	job_free(job);
err_arrays:
	if (!IS_ERR(bindings))
		kvfree(bindings);
	if (!IS_ERR(in_syncs))
		kvfree(in_syncs);
	if (!IS_ERR(mutables))
		kvfree(mutables);
	return ret;
}
