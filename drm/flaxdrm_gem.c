// SPDX-License-Identifier: GPL-2.0
/*
 * flaxdrm buffer objects: shmem GEM objects, created by size and mapped
 * through the fake mmap offset of the same file.
 */
#include <linux/mm.h>

#include <drm/drm_gem_shmem_helper.h>
#include <drm/drm_vma_manager.h>

#include "flaxdrm_drv.h"

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
