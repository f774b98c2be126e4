// SPDX-License-Identifier: GPL-2.0
/*
 * flaxdrm programs: the op list a module's __call__ becomes. The shared
 * rules (flaxdrm_rules.c) check ops, operand order and shapes; this file
 * resolves what only the kernel can: module handles of the caller's file,
 * that they lie under the program's root, and the variables they name.
 */
#include <linux/mm.h>
#include <linux/overflow.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include <drm/drm_print.h>

#include "flaxdrm_drv.h"
#include "flaxdrm_rules.h"

static void program_free(struct flaxdrm_program *prog)
{
	u32 i;

	if (prog->tensor_modules)
		for (i = 0; i < prog->num_tensors; i++)
			if (prog->tensor_modules[i])
				flaxdrm_module_put(prog->tensor_modules[i]);
	if (prog->op_modules)
		for (i = 0; i < prog->num_ops; i++)
			if (prog->op_modules[i])
				flaxdrm_module_put(prog->op_modules[i]);
	if (prog->root)
		flaxdrm_module_put(prog->root);
	kvfree(prog->tensor_modules);
	kvfree(prog->op_modules);
	kvfree(prog->written);
	kvfree(prog->tensors);
	kvfree(prog->ops);
	kfree(prog);
}

static void *copy_array(u64 uptr, u32 count, size_t elem)
{
	size_t bytes = array_size(count, elem);
	void *p;

	p = kvmalloc(bytes, GFP_KERNEL_ACCOUNT);
	if (!p)
		return ERR_PTR(-ENOMEM);
	if (copy_from_user(p, u64_to_user_ptr(uptr), bytes)) {
		kvfree(p);
		return ERR_PTR(-EFAULT);
	}
	return p;
}

static bool same_shape(const struct drm_flaxdrm_tensor *t,
		       const struct flaxdrm_var *var)
{
	return t->dtype == var->dtype && t->rank == var->rank &&
	       !memcmp(t->dims, var->dims, sizeof(t->dims));
}

/* Resolves module handles; called with the file's lock held. */
static int program_resolve(struct flaxdrm_file *ffile,
			   struct flaxdrm_program *prog,
			   u32 *bad_op, u32 *bad_tensor)
{
	struct flaxdrm_module *m;
	struct flaxdrm_var *var;
	u32 i;

	for (i = 0; i < prog->num_ops; i++) {
		const struct drm_flaxdrm_op *op = &prog->ops[i];

		if (!op->module)
			continue;
		m = flaxdrm_module_lookup(ffile, op->module);
		if (!m)
			return -ENOENT;
		/* under the root, and of a kind the op belongs to */
		if (!flaxdrm_module_is_under(m, prog->root) ||
		    !(flaxdrm_op_module_kinds(op->opcode) & (1u << m->kind))) {
			*bad_op = i;
			return -EINVAL;
		}
		flaxdrm_module_get(m);
		prog->op_modules[i] = m;
	}

	for (i = 0; i < prog->num_tensors; i++) {
		const struct drm_flaxdrm_tensor *t = &prog->tensors[i];

		if (t->kind != FLAXDRM_TENSOR_VARIABLE)
			continue;
		m = flaxdrm_module_lookup(ffile, t->module);
		if (!m)
			return -ENOENT;
		var = flaxdrm_module_find_var(m, t->collection, t->name);
		if (!flaxdrm_module_is_under(m, prog->root) || !var ||
		    !same_shape(t, var)) {
			*bad_tensor = i;
			return -EINVAL;
		}
		flaxdrm_module_get(m);
		prog->tensor_modules[i] = m;
	}
	return 0;
}

int flaxdrm_ioctl_program_create(struct drm_device *dev, void *data,
				 struct drm_file *file)
{
	struct flaxdrm_file *ffile = file->driver_priv;
	struct drm_flaxdrm_program_create *args = data;
	u32 bad_op = FLAXDRM_INDEX_NONE, bad_tensor = FLAXDRM_INDEX_NONE;
	struct flaxdrm_program *prog;
	u64 temp_bytes = 0;
	u8 *scratch;
	u32 i, j;
	int ret;

	args->error_op = FLAXDRM_INDEX_NONE;
	args->error_tensor = FLAXDRM_INDEX_NONE;
	if (args->flags || args->pad)
		return -EINVAL;
	if (!args->num_tensors || args->num_tensors > FLAXDRM_MAX_TENSORS ||
	    !args->num_ops || args->num_ops > FLAXDRM_MAX_OPS)
		return -EINVAL;

	prog = kzalloc(sizeof(*prog), GFP_KERNEL_ACCOUNT);
	if (!prog)
		return -ENOMEM;
	prog->num_tensors = args->num_tensors;
	prog->num_ops = args->num_ops;

	prog->tensors = copy_array(args->tensors, args->num_tensors,
				   sizeof(*prog->tensors));
	if (IS_ERR(prog->tensors)) {
		ret = PTR_ERR(prog->tensors);
		prog->tensors = NULL;
		goto err_free;
	}
	prog->ops = copy_array(args->ops, args->num_ops, sizeof(*prog->ops));
	if (IS_ERR(prog->ops)) {
		ret = PTR_ERR(prog->ops);
		prog->ops = NULL;
		goto err_free;
	}

	scratch = kvmalloc(args->num_tensors, GFP_KERNEL);
	if (!scratch) {
		ret = -ENOMEM;
		goto err_free;
	}
	ret = flaxdrm_check_program(prog->tensors, prog->num_tensors,
				    prog->ops, prog->num_ops, scratch,
				    &bad_op, &bad_tensor);
	kvfree(scratch);
	if (ret)
		goto err_free;

	/* bound the memory the engine allocates for temporaries */
	for (i = 0; i < prog->num_tensors; i++) {
		if (prog->tensors[i].kind != FLAXDRM_TENSOR_TEMP)
			continue;
		temp_bytes += flaxdrm_tensor_bytes(&prog->tensors[i]);
		if (temp_bytes > FLAXDRM_MAX_BO_SIZE) {
			bad_tensor = i;
			ret = -EINVAL;
			goto err_free;
		}
	}

	prog->written = kvzalloc(prog->num_tensors, GFP_KERNEL_ACCOUNT);
	prog->tensor_modules = kvcalloc(prog->num_tensors,
					sizeof(*prog->tensor_modules),
					GFP_KERNEL_ACCOUNT);
	prog->op_modules = kvcalloc(prog->num_ops, sizeof(*prog->op_modules),
				    GFP_KERNEL_ACCOUNT);
	if (!prog->written || !prog->tensor_modules || !prog->op_modules) {
		ret = -ENOMEM;
		goto err_free;
	}
	for (i = 0; i < prog->num_ops; i++)
		for (j = 0; j < prog->ops[i].num_outputs; j++)
			prog->written[prog->ops[i].outputs[j]] = 1;
	flaxdrm_program_cost(prog->ops, prog->num_ops, prog->tensors,
			     prog->num_tensors, &prog->cost);

	mutex_lock(&ffile->lock);
	prog->root = flaxdrm_module_lookup(ffile, args->root);
	if (!prog->root) {
		ret = -ENOENT;
		goto err_unlock;
	}
	flaxdrm_module_get(prog->root);

	ret = program_resolve(ffile, prog, &bad_op, &bad_tensor);
	if (ret)
		goto err_unlock;

	ret = idr_alloc_cyclic(&ffile->programs, prog, 1,
			       FLAXDRM_MAX_PROGRAMS + 1, GFP_KERNEL);
	if (ret < 0)
		goto err_unlock;
	prog->handle = ret;
	mutex_unlock(&ffile->lock);

	args->handle = prog->handle;
	return 0;

err_unlock:
	mutex_unlock(&ffile->lock);
err_free:
	if (ret == -EINVAL) {
		args->error_op = bad_op;
		args->error_tensor = bad_tensor;
		drm_dbg_driver(dev, "program refused: op %d (%s), tensor %d\n",
			       (int)bad_op,
			       bad_op < prog->num_ops && prog->ops ?
			       flaxdrm_op_name(prog->ops[bad_op].opcode) : "-",
			       (int)bad_tensor);
	}
	program_free(prog);
	return ret;
}

int flaxdrm_ioctl_program_destroy(struct drm_device *dev, void *data,
				  struct drm_file *file)
{
	struct flaxdrm_file *ffile = file->driver_priv;
	struct drm_flaxdrm_program_destroy *args = data;
	struct flaxdrm_program *prog;

	if (args->pad)
		return -EINVAL;

	mutex_lock(&ffile->lock);
	prog = idr_remove(&ffile->programs, args->handle);
	if (prog)
		program_free(prog);
	mutex_unlock(&ffile->lock);
	return prog ? 0 : -ENOENT;
}

void flaxdrm_programs_release(struct flaxdrm_file *ffile)
{
	struct flaxdrm_program *prog;
	int id;

	lockdep_assert_held(&ffile->lock);
	idr_for_each_entry(&ffile->programs, prog, id) {
		idr_remove(&ffile->programs, id);
		program_free(prog);
	}
}
