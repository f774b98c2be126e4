// SPDX-License-Identifier: GPL-2.0
/*
 * flaxdrm module trees: each module has a kind, an opaque constructor
 * config, a parent, children and variables. Names are unique in a parent;
 * unnamed children get Flax's auto-names (<Class>_<n>, one counter per
 * class in the parent). Everything here is under the file's lock.
 */
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "flaxdrm_drv.h"
#include "flaxdrm_rules.h"

static const char *const flaxdrm_kind_class[FLAXDRM_KIND_COUNT] = {
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

struct flaxdrm_module *flaxdrm_module_lookup(struct flaxdrm_file *ffile,
					     u32 handle)
{
	lockdep_assert_held(&ffile->lock);
	return idr_find(&ffile->modules, handle);
}

bool flaxdrm_module_is_under(const struct flaxdrm_module *m,
			     const struct flaxdrm_module *root)
{
	for (; m; m = m->parent)
		if (m == root)
			return true;
	return false;
}

struct flaxdrm_var *flaxdrm_module_find_var(struct flaxdrm_module *m,
					    const char *collection,
					    const char *name)
{
	struct flaxdrm_var *var;

	list_for_each_entry(var, &m->vars, link)
		if (!strcmp(var->collection, collection) &&
		    !strcmp(var->name, name))
			return var;
	return NULL;
}

static struct flaxdrm_module *find_child(struct flaxdrm_module *parent,
					 const char *name)
{
	struct flaxdrm_module *child;

	list_for_each_entry(child, &parent->children, sibling)
		if (!strcmp(child->name, name))
			return child;
	return NULL;
}

void flaxdrm_module_get(struct flaxdrm_module *m)
{
	kref_get(&m->ref);
}

static void module_free(struct kref *ref)
{
	struct flaxdrm_module *m = container_of(ref, struct flaxdrm_module,
						ref);

	kfree(m->config);
	kfree(m);
}

void flaxdrm_module_put(struct flaxdrm_module *m)
{
	kref_put(&m->ref, module_free);
}

/* Detaches one module whose children are gone; drops the tree's reference. */
static void module_destroy_one(struct flaxdrm_file *ffile,
			       struct flaxdrm_module *m)
{
	struct flaxdrm_name_counter *c, *ctmp;
	struct flaxdrm_var *var, *vtmp;

	idr_remove(&ffile->modules, m->handle);
	list_for_each_entry_safe(var, vtmp, &m->vars, link) {
		list_del(&var->link);
		drm_gem_object_put(var->bo);
		kfree(var);
	}
	list_for_each_entry_safe(c, ctmp, &m->counters, link) {
		list_del(&c->link);
		kfree(c);
	}
	if (m->parent) {
		list_del(&m->sibling);
		m->parent->num_children--;
		m->parent = NULL;
	}
	m->num_vars = 0;
	m->dead = true;
	flaxdrm_module_put(m);
}

/* Destroys a module and its subtree, children first, without recursion. */
static void module_destroy_tree(struct flaxdrm_file *ffile,
				struct flaxdrm_module *top)
{
	struct flaxdrm_module *m = top;

	for (;;) {
		struct flaxdrm_module *parent;

		while (!list_empty(&m->children))
			m = list_first_entry(&m->children,
					     struct flaxdrm_module, sibling);
		parent = m->parent;
		module_destroy_one(ffile, m);
		if (m == top)
			return;
		m = parent;
	}
}

void flaxdrm_modules_release(struct flaxdrm_file *ffile)
{
	struct flaxdrm_module *m;
	int id;

	lockdep_assert_held(&ffile->lock);
	/* destroying a root takes its whole tree out of the idr */
	idr_for_each_entry(&ffile->modules, m, id)
		if (!m->parent)
			module_destroy_tree(ffile, m);
}

/* Flax's auto-name: <class>_<n> with one counter per class in the parent. */
static int module_auto_name(struct flaxdrm_module *parent,
			    const char *class_name, char *name)
{
	struct flaxdrm_name_counter *c;
	bool taken;

	list_for_each_entry(c, &parent->counters, link)
		if (!strcmp(c->class_name, class_name))
			goto found;

	c = kzalloc(sizeof(*c), GFP_KERNEL_ACCOUNT);
	if (!c)
		return -ENOMEM;
	strscpy(c->class_name, class_name, sizeof(c->class_name));
	list_add_tail(&c->link, &parent->counters);
found:
	/* the class name is at most 63 bytes: "_<u32>" may not fit */
	if (snprintf(name, FLAXDRM_NAME_LEN, "%s_%u", class_name, c->next) >=
	    FLAXDRM_NAME_LEN)
		return -EINVAL;
	/* like Flax, a taken auto-name is an error that consumes the count */
	taken = find_child(parent, name);
	c->next++;
	return taken ? -EEXIST : 0;
}

int flaxdrm_ioctl_module_create(struct drm_device *dev, void *data,
				struct drm_file *file)
{
	struct flaxdrm_file *ffile = file->driver_priv;
	struct drm_flaxdrm_module_create *args = data;
	struct flaxdrm_module *parent = NULL, *m;
	char name[FLAXDRM_NAME_LEN];
	const char *class_name;
	int ret;

	if (args->flags || args->pad)
		return -EINVAL;
	if (args->kind >= FLAXDRM_KIND_COUNT)
		return -EINVAL;
	if (args->config_size > FLAXDRM_MAX_CONFIG_SIZE)
		return -EINVAL;
	if (flaxdrm_check_name(args->name, sizeof(args->name), true))
		return -EINVAL;
	if (flaxdrm_check_name(args->class_name, sizeof(args->class_name),
			       args->kind != FLAXDRM_KIND_MODULE))
		return -EINVAL;
	if (args->kind == FLAXDRM_KIND_MODULE) {
		class_name = args->class_name;
	} else {
		if (args->class_name[0])
			return -EINVAL;
		class_name = flaxdrm_kind_class[args->kind];
	}
	if (!args->parent && args->name[0])
		return -EINVAL;

	m = kzalloc(sizeof(*m), GFP_KERNEL_ACCOUNT);
	if (!m)
		return -ENOMEM;
	kref_init(&m->ref);
	INIT_LIST_HEAD(&m->children);
	INIT_LIST_HEAD(&m->vars);
	INIT_LIST_HEAD(&m->counters);
	m->kind = args->kind;
	strscpy(m->class_name, class_name, sizeof(m->class_name));
	if (args->config_size) {
		m->config = memdup_user(u64_to_user_ptr(args->config),
					args->config_size);
		if (IS_ERR(m->config)) {
			ret = PTR_ERR(m->config);
			m->config = NULL;
			goto err_free;
		}
		m->config_size = args->config_size;
	}

	mutex_lock(&ffile->lock);
	if (args->parent) {
		parent = flaxdrm_module_lookup(ffile, args->parent);
		if (!parent) {
			ret = -ENOENT;
			goto err_unlock;
		}
		if (parent->depth + 1 >= FLAXDRM_MAX_DEPTH) {
			ret = -EINVAL;
			goto err_unlock;
		}
		if (args->name[0]) {
			memcpy(name, args->name, sizeof(name));
			if (find_child(parent, name)) {
				ret = -EEXIST;
				goto err_unlock;
			}
		} else {
			memset(name, 0, sizeof(name));
			ret = module_auto_name(parent, class_name, name);
			if (ret)
				goto err_unlock;
		}
		memcpy(m->name, name, sizeof(m->name));
		m->depth = parent->depth + 1;
	}

	ret = idr_alloc_cyclic(&ffile->modules, m, 1, FLAXDRM_MAX_MODULES + 1,
			       GFP_KERNEL);
	if (ret < 0)
		goto err_unlock;
	m->handle = ret;
	if (parent) {
		m->parent = parent;
		list_add_tail(&m->sibling, &parent->children);
		parent->num_children++;
	}
	mutex_unlock(&ffile->lock);

	args->handle = m->handle;
	memcpy(args->name, m->name, sizeof(args->name));
	return 0;

err_unlock:
	mutex_unlock(&ffile->lock);
err_free:
	flaxdrm_module_put(m);
	return ret;
}

int flaxdrm_ioctl_module_destroy(struct drm_device *dev, void *data,
				 struct drm_file *file)
{
	struct flaxdrm_file *ffile = file->driver_priv;
	struct drm_flaxdrm_module_destroy *args = data;
	struct flaxdrm_module *m;
	int ret = 0;

	if (args->pad)
		return -EINVAL;

	mutex_lock(&ffile->lock);
	m = flaxdrm_module_lookup(ffile, args->handle);
	if (m)
		module_destroy_tree(ffile, m);
	else
		ret = -ENOENT;
	mutex_unlock(&ffile->lock);
	return ret;
}

/* Bytes of the '/'-joined path below the root, NUL included. */
static u32 module_path_size(const struct flaxdrm_module *m)
{
	u32 size = 1;

	for (; m->parent; m = m->parent)
		size += strlen(m->name) + (m->parent->parent ? 1 : 0);
	return size;
}

static void module_path(const struct flaxdrm_module *m, char *buf, u32 size)
{
	u32 end = size - 1;

	buf[end] = '\0';
	for (; m->parent; m = m->parent) {
		u32 len = strlen(m->name);

		end -= len;
		memcpy(buf + end, m->name, len);
		if (m->parent->parent)
			buf[--end] = '/';
	}
}

int flaxdrm_ioctl_module_query(struct drm_device *dev, void *data,
			       struct drm_file *file)
{
	struct flaxdrm_file *ffile = file->driver_priv;
	struct drm_flaxdrm_module_query *args = data;
	struct flaxdrm_module *m;
	char *path = NULL;
	u32 size;
	int ret = 0;

	if (args->pad || args->pad2)
		return -EINVAL;

	mutex_lock(&ffile->lock);
	m = flaxdrm_module_lookup(ffile, args->handle);
	if (!m) {
		mutex_unlock(&ffile->lock);
		return -ENOENT;
	}
	args->kind = m->kind;
	args->parent = m->parent ? m->parent->handle : 0;
	args->num_children = m->num_children;
	args->num_variables = m->num_vars;
	memcpy(args->name, m->name, sizeof(args->name));

	/* the depth bound keeps the path within a few KiB */
	size = module_path_size(m);
	if (args->path && args->path_size >= size) {
		path = kmalloc(size, GFP_KERNEL);
		if (path)
			module_path(m, path, size);
		else
			ret = -ENOMEM;
	} else if (args->path) {
		ret = -ENOSPC;
	}
	mutex_unlock(&ffile->lock);

	args->path_size = size;
	if (path && copy_to_user(u64_to_user_ptr(args->path), path, size))
		ret = -EFAULT;
	kfree(path);
	return ret;
}

int flaxdrm_ioctl_var_bind(struct drm_device *dev, void *data,
			   struct drm_file *file)
{
	struct flaxdrm_device *fdev = to_flaxdrm(dev);
	struct flaxdrm_file *ffile = file->driver_priv;
	struct drm_flaxdrm_var_bind *args = data;
	struct flaxdrm_var *var, *new_var = NULL;
	struct drm_gem_object *bo, *old_bo;
	struct flaxdrm_module *m;
	u64 size, end;
	int ret;

	if (args->flags || args->pad)
		return -EINVAL;
	if (flaxdrm_check_name(args->collection, sizeof(args->collection),
			       false) ||
	    flaxdrm_check_name(args->name, sizeof(args->name), false))
		return -EINVAL;
	size = flaxdrm_shape_bytes(args->dtype, args->rank, args->dims);
	if (!size)
		return -EINVAL;

	bo = drm_gem_object_lookup(file, args->bo);
	if (!bo)
		return -ENOENT;
	if (check_add_overflow(args->offset, size, &end) || end > bo->size) {
		ret = -EINVAL;
		goto err_put;
	}

	new_var = kzalloc(sizeof(*new_var), GFP_KERNEL_ACCOUNT);
	if (!new_var) {
		ret = -ENOMEM;
		goto err_put;
	}

	mutex_lock(&ffile->lock);
	m = flaxdrm_module_lookup(ffile, args->module);
	if (!m) {
		ret = -ENOENT;
		goto err_unlock;
	}
	var = flaxdrm_module_find_var(m, args->collection, args->name);
	if (!var) {
		if (m->num_vars >= FLAXDRM_MAX_VARS) {
			ret = -ENOSPC;
			goto err_unlock;
		}
		var = new_var;
		new_var = NULL;
		memcpy(var->collection, args->collection,
		       sizeof(var->collection));
		memcpy(var->name, args->name, sizeof(var->name));
		var->var_id = atomic64_inc_return(&fdev->var_seq);
		list_add_tail(&var->link, &m->vars);
		m->num_vars++;
	}
	old_bo = var->bo;
	var->bo = bo;
	var->offset = args->offset;
	var->size = size;
	var->dtype = args->dtype;
	var->rank = args->rank;
	memcpy(var->dims, args->dims, sizeof(var->dims));
	var->generation++;
	mutex_unlock(&ffile->lock);

	if (old_bo)
		drm_gem_object_put(old_bo);
	kfree(new_var);
	return 0;

err_unlock:
	mutex_unlock(&ffile->lock);
	kfree(new_var);
err_put:
	drm_gem_object_put(bo);
	return ret;
}
