// The `drm` device: the kernel path through libflaxdrm and the render node.
// DrmConnection (device_drm.hpp), its libflaxdrm sequences, is also what the
// Module API's drm backend (flax/backend.cpp) runs on.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>

#include "bound_common.hpp"
#include "device_drm.hpp"
#include "job_profile.hpp"
#include "flaxdrm/device.hpp"
#include "flaxdrm/error.hpp"
#include "flaxdrm/flaxdrm.h"
#include "flaxdrm/lowering.hpp"

namespace flaxdrm {
namespace detail {
namespace {

// FLAXDRM_DEBUG=1 logs every job to stderr.
bool debug()
{
	static const bool on = [] {
		const char* v = std::getenv("FLAXDRM_DEBUG");
		return v && *v && std::string(v) != "0";
	}();
	return on;
}

} // namespace

DrmConnection::DrmConnection(const std::string& node, const std::string& local_hint)
{
	int ret;
	if (node.empty()) {
		char path[FLAXDRM_PATH_MAX];
		ret = flaxdrm_open(FLAXDRM_NODE_RENDER, &fd_, path, sizeof(path));
		if (ret == -ENODEV)
			throw Error("no flaxdrm device: no DRM render node has driver \"flaxdrm\" (is flaxdrm.ko loaded? " +
					    local_hint + ")",
				    ret);
		if (ret)
			throw Error("cannot open the flaxdrm render node: " + errno_string(ret), ret);
		node_ = path;
	} else {
		node_ = node;
		ret = flaxdrm_open_path(node.c_str(), &fd_);
		if (ret == -ENODEV)
			throw Error(node + " is not a flaxdrm device", ret);
		if (ret)
			fail("cannot open", ret);
	}
	// the destructor does not run when the constructor throws
	try {
		ret = flaxdrm_get_version(fd_, &version_);
		if (ret)
			fail("DRM_IOCTL_VERSION failed", ret);
		uint64_t abi = 0;
		ret = flaxdrm_get_param(fd_, FLAXDRM_PARAM_VERSION, &abi);
		if (ret)
			fail("GET_PARAM VERSION failed", ret);
		if ((abi >> 16) != FLAXDRM_VERSION_MAJOR)
			throw Error(node_ + ": the kernel speaks flaxdrm ABI " + std::to_string(abi >> 16) + "." +
				    std::to_string(abi & 0xffff) + ", this client ABI " +
				    std::to_string(FLAXDRM_VERSION_MAJOR) + "." + std::to_string(FLAXDRM_VERSION_MINOR));
	} catch (...) {
		flaxdrm_close(fd_);
		throw;
	}
	uint64_t job_timeout = 0;
	if (flaxdrm_get_param(fd_, FLAXDRM_PARAM_JOB_TIMEOUT_MS, &job_timeout) || !job_timeout)
		job_timeout = 60000;
	job_wait_ms_ = static_cast<int64_t>(job_timeout) + 10000;
}

DrmConnection::~DrmConnection()
{
	if (fd_ >= 0)
		flaxdrm_close(fd_);
}

void DrmConnection::fail(const std::string& what, int err) const
{
	throw Error(node_ + ": " + what + ": " + errno_string(err), err);
}

bool DrmConnection::engine_attached() const
{
	uint64_t v = 0;
	return flaxdrm_get_param(fd_, FLAXDRM_PARAM_ENGINE_ATTACHED, &v) == 0 && v;
}

void DrmConnection::create_bo(DrmBo& bo, uint64_t size, const std::string& what) const
{
	int ret = flaxdrm_bo_create(fd_, size, &bo.handle);
	if (ret)
		fail("cannot create " + what + " BO of " + std::to_string(size) + " bytes", ret);
	bo.size = size;
	ret = flaxdrm_bo_mmap(fd_, bo.handle, size, &bo.map);
	if (ret) {
		flaxdrm_bo_close(fd_, bo.handle);
		bo = DrmBo{};
		fail("cannot map " + what + " BO", ret);
	}
}

void DrmConnection::close_bo(DrmBo& bo) const noexcept
{
	if (bo.map)
		flaxdrm_bo_munmap(bo.map, bo.size);
	if (bo.handle)
		flaxdrm_bo_close(fd_, bo.handle);
	bo = DrmBo{};
}

uint32_t DrmConnection::create_syncobj() const
{
	uint32_t syncobj = 0;
	int ret = flaxdrm_syncobj_create(fd_, 0, &syncobj);
	if (ret)
		fail("cannot create a syncobj", ret);
	return syncobj;
}

void DrmConnection::destroy_syncobj(uint32_t syncobj) const noexcept
{
	if (syncobj)
		flaxdrm_syncobj_destroy(fd_, syncobj);
}

uint32_t DrmConnection::create_module(uint32_t parent, uint32_t kind, const std::string& name,
				      const std::string& class_name, std::span<const char> config,
				      std::string* chosen, const std::function<std::string()>& what) const
{
	char out[FLAXDRM_NAME_LEN] = {};
	uint32_t handle = 0;
	int ret = flaxdrm_module_create(fd_, parent, kind, name.c_str(), class_name.c_str(), config.data(),
					static_cast<uint32_t>(config.size()), &handle, out);
	if (ret)
		fail(what(), ret);
	if (chosen)
		*chosen = out;
	return handle;
}

void DrmConnection::bind_variable(uint32_t module, const std::string& collection, const std::string& name,
				  uint32_t bo, uint64_t offset, uint32_t dtype, uint32_t rank, const uint32_t* dims,
				  const std::function<std::string()>& what) const
{
	int ret = flaxdrm_var_bind(fd_, module, collection.c_str(), name.c_str(), bo, offset, dtype, rank, dims);
	if (ret)
		fail(what(), ret);
}

uint32_t DrmConnection::create_program(uint32_t root, std::span<const drm_flaxdrm_tensor> tensors,
				       std::span<const drm_flaxdrm_op> ops, const std::string& what,
				       const std::function<std::string(uint32_t, uint32_t)>& where) const
{
	uint32_t handle = 0, bad_op = FLAXDRM_INDEX_NONE, bad_tensor = FLAXDRM_INDEX_NONE;
	int ret = flaxdrm_program_create(fd_, root, tensors.data(), static_cast<uint32_t>(tensors.size()), ops.data(),
					 static_cast<uint32_t>(ops.size()), &handle, &bad_op, &bad_tensor);
	if (ret) {
		std::string w = where ? where(bad_op, bad_tensor) : std::string();
		fail(what + (w.empty() ? "" : ": " + w), ret);
	}
	return handle;
}

uint64_t DrmConnection::run_job(const char* job, const std::string& owner, uint32_t syncobj,
				drm_flaxdrm_submit& s) const
{
	const std::string what(job);
	s.out_sync.handle = syncobj;
	uint64_t t0 = now_ns();
	int ret = flaxdrm_submit(fd_, &s);
	if (ret == -ENODEV)
		fail("cannot submit the " + what + " job: no engine attached (start flaxdrm-engine)", ret);
	if (ret)
		fail("cannot submit the " + what + " job" + (owner.empty() ? "" : " for " + owner), ret);
	const std::string id = std::to_string(s.job_id);
	ret = flaxdrm_syncobj_wait(fd_, syncobj, job_wait_ms_ * 1000000);
	if (ret == -ETIME || ret == -ETIMEDOUT)
		fail("the " + what + " job " + id + " did not finish in " + std::to_string(job_wait_ms_) +
			     " ms (engine attached: " + (engine_attached() ? "yes" : "no") + ")",
		     ret);
	if (ret)
		fail("waiting for the " + what + " job " + id + " failed", ret);
	int status = 0;
	ret = flaxdrm_syncobj_status(fd_, syncobj, &status);
	if (debug())
		std::fprintf(stderr, "flaxdrm: %s job %llu: %.3f ms, status %d (read: %d)\n", job,
			     static_cast<unsigned long long>(s.job_id), (now_ns() - t0) / 1e6, status, ret);
	if (ret)
		fail("cannot read the status of the " + what + " job", ret);
	if (status < 0)
		fail("the " + what + " job " + id + (owner.empty() ? "" : " of " + owner) + " failed", status);
	return now_ns() - t0;
}

} // namespace detail

namespace {

constexpr uint64_t kVarAlign = 256;

using detail::DrmBo;
using detail::DrmConnection;

class DrmBound final : public BoundModule {
public:
	DrmBound(std::shared_ptr<DrmConnection> conn, bool profile, const Model& model, const Shape& input_shape)
		: c_(std::move(conn)), profile_(profile), model_(model), bound_shape_(input_shape)
	{
	}

	~DrmBound() override
	{
		try {
			close();
		} catch (...) {
		}
		release();
	}

	// Module tree, variables and the setup job.
	void setup(const Variables& variables)
	{
		syncobj_ = c_->create_syncobj();

		handles_.assign(model_.num_modules, 0);
		create_module(model_.root, nullptr);

		// all variables in one BO, each at an aligned offset; the kernel
		// program is created on the first apply, after the binds
		const Program p = lower(model_, bound_shape_, handles_);
		std::vector<uint64_t> offsets;
		uint64_t total = 0;
		for (const auto& v : p.variables) {
			offsets.push_back(total);
			uint64_t bytes = variables.at(v.path).value.data.size() * sizeof(float);
			total += (bytes + kVarAlign - 1) / kVarAlign * kVarAlign;
		}
		if (total) {
			c_->create_bo(var_bo_, total, "the variables");
			for (std::size_t i = 0; i < p.variables.size(); i++) {
				const auto& v = p.variables[i];
				const auto& data = variables.at(v.path).value.data;
				std::memcpy(static_cast<char*>(var_bo_.map) + offsets[i], data.data(),
					    data.size() * sizeof(float));
				const auto& t = p.tensors[v.tensor];
				c_->bind_variable(t.module, t.collection, t.name, var_bo_.handle, offsets[i], t.dtype, t.rank,
						  t.dims, [&] { return "VAR_BIND " + v.path + " failed"; });
			}
			// the data is in the BO; the mapping is not needed any more
			flaxdrm_bo_munmap(var_bo_.map, var_bo_.size);
			var_bo_.map = nullptr;
		}

		drm_flaxdrm_submit s{};
		s.op = FLAXDRM_JOB_SETUP;
		s.module = handles_[0];
		set_up_ = true;
		run_job("setup", s);
	}

	Tensor apply(const Tensor& input) override
	{
		if (!set_up_)
			throw Error("apply on a closed module");
		detail::check_input(model_, bound_shape_, input);
		const Compiled& cp = program(input.shape);
		const Program& p = cp.program;
		uint64_t in_bytes = input.data.size() * sizeof(float);
		uint64_t out_bytes = num_elements(p.output_shape) * sizeof(float);
		ensure_bo(in_bo_, in_bytes, "the input");
		ensure_bo(out_bo_, out_bytes, "the output");
		std::memcpy(in_bo_.map, input.data.data(), in_bytes);

		drm_flaxdrm_binding bindings[2] = {{p.input, in_bo_.handle, 0}, {p.output, out_bo_.handle, 0}};
		drm_flaxdrm_submit s{};
		s.op = FLAXDRM_JOB_CALL;
		s.module = handles_[0];
		s.program = cp.handle;
		s.bindings = reinterpret_cast<uintptr_t>(bindings);
		s.num_bindings = 2;
		run_job("call", s);

		Tensor out(p.output_shape);
		std::memcpy(out.data.data(), out_bo_.map, out_bytes);
		return out;
	}

	void close() override
	{
		if (!set_up_)
			return;
		set_up_ = false;
		drm_flaxdrm_submit s{};
		s.op = FLAXDRM_JOB_CLEANUP;
		s.module = handles_[0];
		run_job("cleanup", s);
	}

private:
	struct Compiled {
		Program program;
		uint32_t handle = 0;
	};

	void create_module(const Module& m, const Module* parent)
	{
		uint32_t kind = FLAXDRM_KIND_MODULE;
		std::string class_name;
		switch (m.kind) {
		case ModuleKind::Compact:
			kind = FLAXDRM_KIND_MODULE;
			class_name = m.class_name;
			break;
		case ModuleKind::Sequential: kind = FLAXDRM_KIND_SEQUENTIAL; break;
		case ModuleKind::Dense: kind = FLAXDRM_KIND_DENSE; break;
		case ModuleKind::DenseGeneral: kind = FLAXDRM_KIND_DENSE_GENERAL; break;
		case ModuleKind::Conv: kind = FLAXDRM_KIND_CONV; break;
		case ModuleKind::ConvTranspose: kind = FLAXDRM_KIND_CONV_TRANSPOSE; break;
		case ModuleKind::LayerNorm: kind = FLAXDRM_KIND_LAYER_NORM; break;
		case ModuleKind::RMSNorm: kind = FLAXDRM_KIND_RMS_NORM; break;
		case ModuleKind::GroupNorm: kind = FLAXDRM_KIND_GROUP_NORM; break;
		case ModuleKind::BatchNorm: kind = FLAXDRM_KIND_BATCH_NORM; break;
		case ModuleKind::Embed: kind = FLAXDRM_KIND_EMBED; break;
		case ModuleKind::Attention: kind = FLAXDRM_KIND_ATTENTION; break;
		case ModuleKind::Dropout: kind = FLAXDRM_KIND_DROPOUT; break;
		case ModuleKind::Function: return; // functions are not modules
		}
		// Compact auto-names come from the kernel and must agree with ours
		bool kernel_names = parent && parent->kind == ModuleKind::Compact && m.auto_named;
		std::string name = parent && !kernel_names ? m.name : std::string();
		std::string chosen;
		uint32_t handle = c_->create_module(parent ? handles_[parent->index] : 0, kind, name, class_name, m.config,
						    &chosen, [&] {
							    return "MODULE_CREATE " + m.class_name + " at " +
								   m.display_path() + " failed";
						    });
		handles_[m.index] = handle;
		if (!parent)
			root_created_ = true;
		if (parent && chosen != m.name)
			throw Error(c_->node() + ": the kernel named the " + m.class_name + " at " + m.display_path() +
				    " \"" + chosen + "\", Flax's name is \"" + m.name + "\"");
		for (const Module& child : m.layers)
			create_module(child, &m);
	}

	const Compiled& program(const Shape& input_shape)
	{
		auto it = programs_.find(input_shape);
		if (it != programs_.end())
			return it->second;
		Compiled cp{lower(model_, input_shape, handles_), 0};
		cp.handle = c_->create_program(
			handles_[0], cp.program.tensors, cp.program.ops,
			"the kernel refused the program of " + model_.source + " for inputs of shape " +
				shape_str(input_shape),
			[&](uint32_t bad_op, uint32_t bad_tensor) {
				std::string where;
				for (const std::string& s :
				     {cp.program.describe_op(bad_op), cp.program.describe_tensor(bad_tensor)})
					if (!s.empty())
						where += (where.empty() ? "" : ", ") + s;
				return where;
			});
		return programs_.emplace(input_shape, std::move(cp)).first->second;
	}

	void ensure_bo(DrmBo& bo, uint64_t size, const char* what)
	{
		if (bo.handle && bo.size >= size)
			return;
		c_->close_bo(bo);
		c_->create_bo(bo, size, what);
	}

	void run_job(const char* what, drm_flaxdrm_submit& s)
	{
		uint64_t wall_ns = c_->run_job(what, model_.source, syncobj_, s);
		timings_.push_back({what, wall_ns});
		if (s.op == FLAXDRM_JOB_CALL) {
			last_call_ = CallProfile{};
			last_call_.job_id = s.job_id;
			last_call_.wall_ns = wall_ns;
			if (profile_)
				detail::query_call_profile(c_->fd(), last_call_);
		}
	}

	void release()
	{
		for (auto& [shape, cp] : programs_)
			if (cp.handle)
				flaxdrm_program_destroy(c_->fd(), cp.handle);
		programs_.clear();
		if (root_created_)
			flaxdrm_module_destroy(c_->fd(), handles_[0]);
		root_created_ = false;
		c_->close_bo(var_bo_);
		c_->close_bo(in_bo_);
		c_->close_bo(out_bo_);
		c_->destroy_syncobj(syncobj_);
		syncobj_ = 0;
	}

	std::shared_ptr<DrmConnection> c_;
	bool profile_ = false;
	Model model_;
	Shape bound_shape_;
	std::vector<uint32_t> handles_;
	std::map<Shape, Compiled> programs_;
	DrmBo var_bo_, in_bo_, out_bo_;
	uint32_t syncobj_ = 0;
	bool root_created_ = false;
	bool set_up_ = false;
};

class DrmDevice final : public Device {
public:
	explicit DrmDevice(const DeviceOptions& options)
		: c_(std::make_shared<DrmConnection>(options.node, "--device local runs in-process instead")),
		  profile_(options.profile)
	{
		if (options.timeout_ms)
			c_->set_job_wait_ms(options.timeout_ms);
	}

	std::string kind() const override { return "drm"; }
	std::string description() const override
	{
		const flaxdrm_version& v = c_->version();
		return "drm " + c_->node() + " (" + v.name + " " + std::to_string(v.major) + "." +
		       std::to_string(v.minor) + "." + std::to_string(v.patchlevel) + ")";
	}

	std::unique_ptr<BoundModule> bind(const Model& model, const Variables& variables,
					  const Shape& input_shape) override
	{
		check_variables(model, variables, input_shape);
		auto bound = std::make_unique<DrmBound>(c_, profile_, model, input_shape);
		bound->setup(variables);
		return bound;
	}

private:
	std::shared_ptr<DrmConnection> c_;
	bool profile_ = false;
};

} // namespace

std::unique_ptr<Device> Device::open_drm(const DeviceOptions& options)
{
	return std::make_unique<DrmDevice>(options);
}

} // namespace flaxdrm
