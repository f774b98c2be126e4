// SPDX-License-Identifier: GPL-2.0
/*
 * flaxdrm: Flax-style neural-network modules through a DRM render node.
 *
 * The device is a platform device without hardware: the kernel owns the
 * module trees, their variables (shmem GEM objects) and the programs, and
 * schedules jobs with drm_sched; a trusted engine daemon attached through
 * the primary node runs them and reports completion.
 */
#include <linux/dma-mapping.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/seq_file.h>
#include <linux/slab.h>

#include <drm/drm_drv.h>
#include <drm/drm_gem_shmem_helper.h>
#include <drm/drm_ioctl.h>
#include <drm/drm_prime.h>
#include <drm/drm_print.h>

#include "flaxdrm_drv.h"

unsigned int flaxdrm_job_timeout_ms = 10000;

/* job_timeout_ms may be changed at run time; it applies to jobs run later */
static int flaxdrm_set_timeout(const char *val, const struct kernel_param *kp)
{
	return param_set_uint_minmax(val, kp, 1, 3600 * 1000);
}

static const struct kernel_param_ops flaxdrm_timeout_ops = {
	.set = flaxdrm_set_timeout,
	.get = param_get_uint,
};

module_param_cb(job_timeout_ms, &flaxdrm_timeout_ops, &flaxdrm_job_timeout_ms,
		0644);
MODULE_PARM_DESC(job_timeout_ms,
		 "Time a job may take on the engine before it fails with -ETIMEDOUT (ms, 1..3600000, default 10000)");

static struct platform_device *flaxdrm_pdev;

/* A fixed char array holds a NUL-terminated name without '/', zero-filled. */
int flaxdrm_check_name(const char *s, u32 len, bool allow_empty)
{
	u32 n = strnlen(s, len);

	if (n == len || (!n && !allow_empty))
		return -EINVAL;
	if (memchr(s, '/', n))
		return -EINVAL;
	if (!flaxdrm_is_zero(s + n, len - n))
		return -EINVAL;
	return 0;
}

bool flaxdrm_is_zero(const void *p, size_t size)
{
	return !memchr_inv(p, 0, size);
}

static int flaxdrm_ioctl_get_param(struct drm_device *dev, void *data,
				   struct drm_file *file)
{
	struct flaxdrm_device *fdev = to_flaxdrm(dev);
	struct drm_flaxdrm_get_param *args = data;

	if (args->pad)
		return -EINVAL;

	switch (args->param) {
	case FLAXDRM_PARAM_VERSION:
		args->value = FLAXDRM_VERSION_MAJOR << 16 | FLAXDRM_VERSION_MINOR;
		return 0;
	case FLAXDRM_PARAM_ENGINE_ATTACHED:
		args->value = flaxdrm_engine_attached(fdev);
		return 0;
	case FLAXDRM_PARAM_JOB_TIMEOUT_MS:
		args->value = READ_ONCE(flaxdrm_job_timeout_ms);
		return 0;
	case FLAXDRM_PARAM_MAX_TENSORS:
		args->value = FLAXDRM_MAX_TENSORS;
		return 0;
	case FLAXDRM_PARAM_MAX_OPS:
		args->value = FLAXDRM_MAX_OPS;
		return 0;
	case FLAXDRM_PARAM_NUM_COUNTERS:
		args->value = FLAXDRM_COUNTER_COUNT;
		return 0;
	default:
		return -EINVAL;
	}
}

static int flaxdrm_open(struct drm_device *dev, struct drm_file *file)
{
	struct flaxdrm_device *fdev = to_flaxdrm(dev);
	struct drm_gpu_scheduler *sched = &fdev->sched;
	struct flaxdrm_file *ffile;
	int ret;

	ffile = kzalloc(sizeof(*ffile), GFP_KERNEL);
	if (!ffile)
		return -ENOMEM;

	ffile->fdev = fdev;
	mutex_init(&ffile->lock);
	idr_init_base(&ffile->modules, 1);
	idr_init_base(&ffile->programs, 1);
	idr_init_base(&ffile->perfmons, 1);

	ffile->ctx = flaxdrm_ctx_create();
	if (!ffile->ctx) {
		ret = -ENOMEM;
		goto err_free;
	}

	ret = drm_sched_entity_init(&ffile->entity, DRM_SCHED_PRIORITY_NORMAL,
				    &sched, 1, NULL);
	if (ret)
		goto err_ctx;

	file->driver_priv = ffile;
	return 0;

err_ctx:
	flaxdrm_ctx_put(ffile->ctx);
err_free:
	mutex_destroy(&ffile->lock);
	kfree(ffile);
	return ret;
}

static void flaxdrm_postclose(struct drm_device *dev, struct drm_file *file)
{
	struct flaxdrm_file *ffile = file->driver_priv;

	/*
	 * Jobs already pushed keep their references and finish or time out;
	 * this waits until the entity has handed its queued jobs over.
	 */
	drm_sched_entity_destroy(&ffile->entity);

	mutex_lock(&ffile->lock);
	flaxdrm_programs_release(ffile);
	flaxdrm_modules_release(ffile);
	flaxdrm_perfmons_release(ffile);
	mutex_unlock(&ffile->lock);

	idr_destroy(&ffile->perfmons);
	idr_destroy(&ffile->programs);
	idr_destroy(&ffile->modules);
	flaxdrm_ctx_put(ffile->ctx);
	mutex_destroy(&ffile->lock);
	kfree(ffile);
}

/*
 * The engine's death is handled before DRM releases the file's GEM handles,
 * so that jobs holding handles in the engine's file can drop them first.
 */
static int flaxdrm_release(struct inode *inode, struct file *filp)
{
	struct drm_file *file = filp->private_data;

	flaxdrm_engine_detach(to_flaxdrm(file->minor->dev), file);
	return drm_release(inode, filp);
}

#if defined(FLAXDRM_HAVE_DRM_SHOW_FDINFO)
/* DRM usage stats: the core prints the driver, client id and memory */
static void flaxdrm_show_fdinfo(struct drm_printer *p, struct drm_file *file)
{
	struct flaxdrm_file *ffile = file->driver_priv;

	drm_printf(p, "drm-engine-compute:\t%llu ns\n",
		   (u64)atomic64_read(&ffile->ctx->exec_ns));
	drm_printf(p, "flaxdrm-jobs-completed:\t%llu\n",
		   (u64)atomic64_read(&ffile->ctx->jobs_completed));
	drm_printf(p, "flaxdrm-jobs-failed:\t%llu\n",
		   (u64)atomic64_read(&ffile->ctx->jobs_failed));
	drm_show_memory_stats(p, file);
}
#else
static int flaxdrm_bo_bytes(int id, void *ptr, void *data)
{
	struct drm_gem_object *obj = ptr;
	u64 *bytes = data;

	*bytes += obj->size;
	return 0;
}

/* DRM usage stats (Documentation/gpu/drm-usage-stats.rst). */
static void flaxdrm_show_fdinfo(struct seq_file *m, struct file *filp)
{
	struct drm_file *file = filp->private_data;
	struct flaxdrm_file *ffile = file->driver_priv;
	u64 bytes = 0;

	spin_lock(&file->table_lock);
	idr_for_each(&file->object_idr, flaxdrm_bo_bytes, &bytes);
	spin_unlock(&file->table_lock);

	seq_printf(m, "drm-driver:\t%s\n", FLAXDRM_DRIVER_NAME);
	seq_printf(m, "drm-client-id:\t%llu\n", ffile->ctx->fence_context);
	seq_printf(m, "drm-engine-compute:\t%llu ns\n",
		   (u64)atomic64_read(&ffile->ctx->exec_ns));
	seq_printf(m, "drm-memory-system:\t%llu KiB\n", bytes >> 10);
	seq_printf(m, "flaxdrm-jobs-completed:\t%llu\n",
		   (u64)atomic64_read(&ffile->ctx->jobs_completed));
	seq_printf(m, "flaxdrm-jobs-failed:\t%llu\n",
		   (u64)atomic64_read(&ffile->ctx->jobs_failed));
}
#endif

static const struct drm_ioctl_desc flaxdrm_ioctls[] = {
	DRM_IOCTL_DEF_DRV(FLAXDRM_GET_PARAM, flaxdrm_ioctl_get_param,
			  DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(FLAXDRM_BO_CREATE, flaxdrm_ioctl_bo_create,
			  DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(FLAXDRM_BO_MMAP_OFFSET, flaxdrm_ioctl_bo_mmap_offset,
			  DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(FLAXDRM_MODULE_CREATE, flaxdrm_ioctl_module_create,
			  DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(FLAXDRM_MODULE_DESTROY, flaxdrm_ioctl_module_destroy,
			  DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(FLAXDRM_VAR_BIND, flaxdrm_ioctl_var_bind,
			  DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(FLAXDRM_PROGRAM_CREATE, flaxdrm_ioctl_program_create,
			  DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(FLAXDRM_PROGRAM_DESTROY, flaxdrm_ioctl_program_destroy,
			  DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(FLAXDRM_SUBMIT, flaxdrm_ioctl_submit,
			  DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(FLAXDRM_MODULE_QUERY, flaxdrm_ioctl_module_query,
			  DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(FLAXDRM_JOB_QUERY, flaxdrm_ioctl_job_query,
			  DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(FLAXDRM_PERFMON_CREATE, flaxdrm_ioctl_perfmon_create,
			  DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(FLAXDRM_PERFMON_DESTROY, flaxdrm_ioctl_perfmon_destroy,
			  DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(FLAXDRM_PERFMON_GET_VALUES,
			  flaxdrm_ioctl_perfmon_get_values, DRM_RENDER_ALLOW),
	DRM_IOCTL_DEF_DRV(FLAXDRM_COUNTER_QUERY, flaxdrm_ioctl_counter_query,
			  DRM_RENDER_ALLOW),
	/* engine: primary node and CAP_SYS_ADMIN only */
	DRM_IOCTL_DEF_DRV(FLAXDRM_ENGINE_ATTACH, flaxdrm_ioctl_engine_attach,
			  DRM_ROOT_ONLY),
	DRM_IOCTL_DEF_DRV(FLAXDRM_ENGINE_FETCH, flaxdrm_ioctl_engine_fetch,
			  DRM_ROOT_ONLY),
	DRM_IOCTL_DEF_DRV(FLAXDRM_ENGINE_COMPLETE, flaxdrm_ioctl_engine_complete,
			  DRM_ROOT_ONLY),
};

static const struct file_operations flaxdrm_fops = {
	.owner = THIS_MODULE,
	.open = drm_open,
	.release = flaxdrm_release,
	.unlocked_ioctl = drm_ioctl,
	.compat_ioctl = drm_compat_ioctl,
	.poll = drm_poll,
	.read = drm_read,
	.llseek = noop_llseek,
	.mmap = drm_gem_mmap,
#ifdef FOP_UNSIGNED_OFFSET
	/* DRM's fake mmap offsets do not fit a signed loff_t */
	.fop_flags = FOP_UNSIGNED_OFFSET,
#endif
#if defined(FLAXDRM_HAVE_DRM_SHOW_FDINFO)
	.show_fdinfo = drm_show_fdinfo,
#else
	.show_fdinfo = flaxdrm_show_fdinfo,
#endif
};

static const struct drm_driver flaxdrm_driver = {
	.driver_features = DRIVER_GEM | DRIVER_RENDER | DRIVER_SYNCOBJ |
			   DRIVER_SYNCOBJ_TIMELINE,
	.open = flaxdrm_open,
	.postclose = flaxdrm_postclose,
	.ioctls = flaxdrm_ioctls,
	.num_ioctls = ARRAY_SIZE(flaxdrm_ioctls),
	.fops = &flaxdrm_fops,
	.gem_create_object = flaxdrm_gem_create_object,
	.gem_prime_import_sg_table = drm_gem_shmem_prime_import_sg_table,
#if defined(FLAXDRM_HAVE_GEM_PRIME_MMAP)
	.prime_handle_to_fd = drm_gem_prime_handle_to_fd,
	.prime_fd_to_handle = drm_gem_prime_fd_to_handle,
	.gem_prime_mmap = drm_gem_prime_mmap,
#endif
#if defined(FLAXDRM_HAVE_DRM_SHOW_FDINFO)
	.show_fdinfo = flaxdrm_show_fdinfo,
#endif
	.name = FLAXDRM_DRIVER_NAME,
	.desc = FLAXDRM_DRIVER_DESC,
	.date = FLAXDRM_DRIVER_DATE,
	.major = FLAXDRM_VERSION_MAJOR,
	.minor = FLAXDRM_VERSION_MINOR,
};

static int flaxdrm_probe(struct platform_device *pdev)
{
	struct flaxdrm_device *fdev;
	int ret;

	ret = dma_coerce_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(64));
	if (ret)
		return ret;

	fdev = devm_drm_dev_alloc(&pdev->dev, &flaxdrm_driver,
				  struct flaxdrm_device, drm);
	if (IS_ERR(fdev))
		return PTR_ERR(fdev);

	mutex_init(&fdev->engine_lock);
	mutex_init(&fdev->fetch_lock);
	INIT_LIST_HEAD(&fdev->queue);
	INIT_LIST_HEAD(&fdev->inflight);
	init_waitqueue_head(&fdev->engine_wq);
	spin_lock_init(&fdev->fence_lock);
	atomic64_set(&fdev->job_seq, 0);
	atomic64_set(&fdev->var_seq, 0);
	atomic_set(&fdev->num_bos, 0);
	spin_lock_init(&fdev->jobs_lock);
	fdev->live_jobs = 0;
	init_waitqueue_head(&fdev->jobs_wq);

	ret = flaxdrm_sched_init(fdev);
	if (ret)
		goto err_mutex;

	ret = drm_dev_register(&fdev->drm, 0);
	if (ret)
		goto err_sched;

	platform_set_drvdata(pdev, fdev);
	return 0;

err_sched:
	flaxdrm_sched_fini(fdev);
err_mutex:
	mutex_destroy(&fdev->fetch_lock);
	mutex_destroy(&fdev->engine_lock);
	return ret;
}

static void flaxdrm_remove(struct platform_device *pdev)
{
	struct flaxdrm_device *fdev = platform_get_drvdata(pdev);

	int bos;

	drm_dev_unregister(&fdev->drm);
	/* no file is open any more; wait for the last jobs to be freed */
	flaxdrm_sched_fini(fdev);
	mutex_destroy(&fdev->fetch_lock);
	mutex_destroy(&fdev->engine_lock);

	/* exported BOs hold the module: none may be left */
	bos = atomic_read(&fdev->num_bos);
	if (bos)
		drm_err(&fdev->drm, "%d buffer objects leaked\n", bos);
}

static struct platform_driver flaxdrm_platform_driver = {
	.probe = flaxdrm_probe,
	.remove_new = flaxdrm_remove,
	.driver = {
		.name = FLAXDRM_DRIVER_NAME,
		/* unbinding with files open would pull the device away */
		.suppress_bind_attrs = true,
	},
};

static int __init flaxdrm_init(void)
{
	int ret;

	ret = platform_driver_register(&flaxdrm_platform_driver);
	if (ret)
		return ret;

	flaxdrm_pdev = platform_device_register_simple(FLAXDRM_DRIVER_NAME, -1,
						       NULL, 0);
	if (IS_ERR(flaxdrm_pdev)) {
		ret = PTR_ERR(flaxdrm_pdev);
		goto err_driver;
	}
	/* probing is synchronous: no driver data means it failed */
	if (!platform_get_drvdata(flaxdrm_pdev)) {
		ret = -ENODEV;
		goto err_device;
	}
	return 0;

err_device:
	platform_device_unregister(flaxdrm_pdev);
err_driver:
	platform_driver_unregister(&flaxdrm_platform_driver);
	return ret;
}

static void __exit flaxdrm_exit(void)
{
	platform_device_unregister(flaxdrm_pdev);
	platform_driver_unregister(&flaxdrm_platform_driver);
}

module_init(flaxdrm_init);
module_exit(flaxdrm_exit);

MODULE_DESCRIPTION("flaxdrm: " FLAXDRM_DRIVER_DESC " through a DRM render node");
MODULE_LICENSE("GPL");
