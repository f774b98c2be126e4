// SPDX-License-Identifier: GPL-2.0
/*
 * flaxdrm buffer objects: shmem GEM objects, created by size and mapped
 * through the fake mmap offset of the same file.
 */
#include <linux/mm.h>
#include <linux/slab.h>

#include <drm/drm_gem_shmem_helper.h>
#include <drm/drm_vma_manager.h>

#include "flaxdrm_drv.h"

/*
 * The shmem helper's objects, counted so that unloading can tell whether
 * a reference to a BO was lost.
 */
struct flaxdrm_bo {
	struct drm_gem_shmem_object shmem;
	bool counted;
};

static void flaxdrm_gem_free(struct drm_gem_object *obj)
{
	struct flaxdrm_bo *bo = container_of(to_drm_gem_shmem_obj(obj),
					     struct flaxdrm_bo, shmem);
	struct flaxdrm_device *fdev = to_flaxdrm(obj->dev);

	if (bo->counted)
		atomic_dec(&fdev->num_bos);
	/* frees bo: shmem is its first member */
	drm_gem_shmem_object_free(obj);
}

static const struct drm_gem_object_funcs flaxdrm_gem_funcs = {
	.free = flaxdrm_gem_free,
	.print_info = drm_gem_shmem_object_print_info,
	.pin = drm_gem_shmem_object_pin,
	.unpin = drm_gem_shmem_object_unpin,
	.get_sg_table = drm_gem_shmem_object_get_sg_table,
	.vmap = drm_gem_shmem_object_vmap,
	.vunmap = drm_gem_shmem_object_vunmap,
	.mmap = drm_gem_shmem_object_mmap,
	.vm_ops = &drm_gem_shmem_vm_ops,
};

struct drm_gem_object *flaxdrm_gem_create_object(struct drm_device *dev,
						 size_t size)
{
	struct flaxdrm_bo *bo = kzalloc(sizeof(*bo), GFP_KERNEL_ACCOUNT);

	if (!bo)
		return ERR_PTR(-ENOMEM);
	bo->shmem.base.funcs = &flaxdrm_gem_funcs;
	return &bo->shmem.base;
}

int flaxdrm_ioctl_bo_create(struct drm_device *dev, void *data,
			    struct drm_file *file)
{
	struct drm_flaxdrm_bo_create *args = data;
	struct drm_gem_shmem_object *shmem;
	u32 handle;
	int ret;

	if (args->flags)
		return -EINVAL;
	if (!args->size || args->size > FLAXDRM_MAX_BO_SIZE)
		return -EINVAL;

	/* FLAXDRM_MAX_BO_SIZE is page aligned, so this cannot overflow */
	shmem = drm_gem_shmem_create(dev, PAGE_ALIGN(args->size));
	if (IS_ERR(shmem))
		return PTR_ERR(shmem);
	container_of(shmem, struct flaxdrm_bo, shmem)->counted = true;
	atomic_inc(&to_flaxdrm(dev)->num_bos);

	ret = drm_gem_handle_create(file, &shmem->base, &handle);
	/* the handle holds the only reference now (or none on failure) */
	drm_gem_object_put(&shmem->base);
	if (ret)
		return ret;

	args->handle = handle;
	return 0;
}

int flaxdrm_ioctl_bo_mmap_offset(struct drm_device *dev, void *data,
				 struct drm_file *file)
{
	struct drm_flaxdrm_bo_mmap_offset *args = data;
	struct drm_gem_object *obj;
	int ret;

	if (args->flags)
		return -EINVAL;

	obj = drm_gem_object_lookup(file, args->handle);
	if (!obj)
		return -ENOENT;

	ret = drm_gem_create_mmap_offset(obj);
	if (!ret)
		args->offset = drm_vma_node_offset_addr(&obj->vma_node);
	drm_gem_object_put(obj);
	return ret;
}
