// The `drm` device: the kernel path through libflaxdrm and the render node.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>

#include "bound_common.hpp"
#include "job_profile.hpp"
#include "flaxdrm/device.hpp"
#include "flaxdrm/error.hpp"
#include "flaxdrm/flaxdrm.h"
#include "flaxdrm/lowering.hpp"

namespace flaxdrm {
namespace {

constexpr uint64_t kVarAlign = 256;

// FLAXDRM_DEBUG=1 logs every job to stderr.
bool debug()
{
	static const bool on = [] {
		const char* v = std::getenv("FLAXDRM_DEBUG");
		return v && *v && std::string(v) != "0";
	}();
	return on;
}

struct DrmConn {
	int fd = -1;
	std::string node;
	flaxdrm_version version{};
	uint64_t abi = 0;
	int64_t timeout_ms = 0;
	bool profile = false;

	~DrmConn()
	{
		if (fd >= 0)
			flaxdrm_close(fd);
	}

	[[noreturn]] void fail(const std::string& what, int err) const
	{
		throw Error(node + ": " + what + ": " + errno_string(err), err);
	}

	bool engine_attached() const
	{
		uint64_t v = 0;
		return flaxdrm_get_param(fd, FLAXDRM_PARAM_ENGINE_ATTACHED, &v) == 0 && v;
	}
};

// A BO with an optional CPU mapping.
struct Bo {
	uint32_t handle = 0;
	uint64_t size = 0;
	void* map = nullptr;
};

class DrmBound final : public BoundModule {
public:
	DrmBound(std::shared_ptr<DrmConn> conn, const Model& model, const Shape& input_shape)
		: c_(std::move(conn)), model_(model), bound_shape_(input_shape)
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
		int ret = flaxdrm_syncobj_create(c_->fd, 0, &syncobj_);
		if (ret)
			c_->fail("cannot create a syncobj", ret);

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
			create_bo(var_bo_, total, "variables");
			for (std::size_t i = 0; i < p.variables.size(); i++) {
				const auto& v = p.variables[i];
				const auto& data = variables.at(v.path).value.data;
				std::memcpy(static_cast<char*>(var_bo_.map) + offsets[i], data.data(),
					    data.size() * sizeof(float));
				const auto& t = p.tensors[v.tensor];
				ret = flaxdrm_var_bind(c_->fd, t.module, t.collection, t.name, var_bo_.handle, offsets[i],
						       t.dtype, t.rank, t.dims);
				if (ret)
					c_->fail("VAR_BIND " + v.path + " failed", ret);
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
		ensure_bo(in_bo_, in_bytes, "input");
		ensure_bo(out_bo_, out_bytes, "output");
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
		char chosen[FLAXDRM_NAME_LEN] = {};
		uint32_t handle = 0;
		int ret = flaxdrm_module_create(c_->fd, parent ? handles_[parent->index] : 0, kind, name.c_str(),
						class_name.c_str(), m.config.data(),
						static_cast<uint32_t>(m.config.size()), &handle, chosen);
		if (ret)
			c_->fail("MODULE_CREATE " + m.class_name + " at " + m.display_path() + " failed", ret);
		handles_[m.index] = handle;
		if (!parent)
			root_created_ = true;
		if (parent && chosen != m.name)
			throw Error(c_->node + ": the kernel named the " + m.class_name + " at " + m.display_path() +
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
		uint32_t bad_op, bad_tensor;
		int ret = flaxdrm_program_create(c_->fd, handles_[0], cp.program.tensors.data(),
						 static_cast<uint32_t>(cp.program.tensors.size()), cp.program.ops.data(),
						 static_cast<uint32_t>(cp.program.ops.size()), &cp.handle, &bad_op,
						 &bad_tensor);
		if (ret) {
			std::string where;
			for (const std::string& s : {cp.program.describe_op(bad_op), cp.program.describe_tensor(bad_tensor)})
				if (!s.empty())
					where += (where.empty() ? ": " : ", ") + s;
			c_->fail("the kernel refused the program of " + model_.source + " for inputs of shape " +
					 shape_str(input_shape) + where,
				 ret);
		}
		return programs_.emplace(input_shape, std::move(cp)).first->second;
	}

	void create_bo(Bo& bo, uint64_t size, const char* what)
	{
		int ret = flaxdrm_bo_create(c_->fd, size, &bo.handle);
		if (ret)
			c_->fail(std::string("cannot create the ") + what + " BO of " + std::to_string(size) + " bytes",
				 ret);
		bo.size = size;
		ret = flaxdrm_bo_mmap(c_->fd, bo.handle, size, &bo.map);
		if (ret)
			c_->fail(std::string("cannot map the ") + what + " BO", ret);
	}

	void ensure_bo(Bo& bo, uint64_t size, const char* what)
	{
		if (bo.handle && bo.size >= size)
			return;
		close_bo(bo);
		create_bo(bo, size, what);
	}

	void close_bo(Bo& bo)
	{
		if (bo.map)
			flaxdrm_bo_munmap(bo.map, bo.size);
		if (bo.handle)
			flaxdrm_bo_close(c_->fd, bo.handle);
		bo = Bo{};
	}

	void run_job(const char* what, drm_flaxdrm_submit& s)
	{
		s.out_sync.handle = syncobj_;
		uint64_t t0 = detail::now_ns();
		int ret = flaxdrm_submit(c_->fd, &s);
		if (ret == -ENODEV)
			c_->fail(std::string("cannot submit the ") + what + " job: no engine attached (start flaxdrm-engine)",
				 ret);
		if (ret)
			c_->fail(std::string("cannot submit the ") + what + " job for " + model_.source, ret);
		ret = flaxdrm_syncobj_wait(c_->fd, syncobj_, c_->timeout_ms * 1000000);
		if (ret == -ETIME || ret == -ETIMEDOUT)
			c_->fail(std::string("the ") + what + " job " + std::to_string(s.job_id) + " did not finish in " +
					 std::to_string(c_->timeout_ms) + " ms (engine attached: " +
					 (c_->engine_attached() ? "yes" : "no") + ")",
				 ret);
		if (ret)
			c_->fail(std::string("waiting for the ") + what + " job failed", ret);
		int status = 0;
		ret = flaxdrm_syncobj_status(c_->fd, syncobj_, &status);
		if (debug())
			std::fprintf(stderr, "flaxdrm: %s job %llu: %.3f ms, status %d (read: %d)\n", what,
				     static_cast<unsigned long long>(s.job_id), (detail::now_ns() - t0) / 1e6, status, ret);
		if (ret)
			c_->fail(std::string("cannot read the status of the ") + what + " job", ret);
		if (status < 0)
			c_->fail(std::string("the ") + what + " job " + std::to_string(s.job_id) + " of " + model_.source +
					 " failed",
				 status);
		timings_.push_back({what, detail::now_ns() - t0});
		if (s.op == FLAXDRM_JOB_CALL) {
			last_call_ = CallProfile{};
			last_call_.job_id = s.job_id;
			last_call_.wall_ns = timings_.back().wall_ns;
			if (c_->profile)
				detail::query_call_profile(c_->fd, last_call_);
		}
	}

	void release()
	{
		for (auto& [shape, cp] : programs_)
			if (cp.handle)
				flaxdrm_program_destroy(c_->fd, cp.handle);
		programs_.clear();
		if (root_created_)
			flaxdrm_module_destroy(c_->fd, handles_[0]);
		root_created_ = false;
		close_bo(var_bo_);
		close_bo(in_bo_);
		close_bo(out_bo_);
		if (syncobj_)
			flaxdrm_syncobj_destroy(c_->fd, syncobj_);
		syncobj_ = 0;
	}

	std::shared_ptr<DrmConn> c_;
	Model model_;
	Shape bound_shape_;
	std::vector<uint32_t> handles_;
	std::map<Shape, Compiled> programs_;
	Bo var_bo_, in_bo_, out_bo_;
	uint32_t syncobj_ = 0;
	bool root_created_ = false;
	bool set_up_ = false;
};

class DrmDevice final : public Device {
public:
	explicit DrmDevice(const DeviceOptions& options) : c_(std::make_shared<DrmConn>())
	{
		int ret;
		if (options.node.empty()) {
			char path[FLAXDRM_PATH_MAX];
			ret = flaxdrm_open(FLAXDRM_NODE_RENDER, &c_->fd, path, sizeof(path));
			if (ret == -ENODEV)
				throw Error("no flaxdrm device: no DRM render node has driver \"flaxdrm\" "
					    "(is flaxdrm.ko loaded? --device local runs in-process instead)",
					    ret);
			if (ret)
				throw Error("cannot open the flaxdrm render node: " + errno_string(ret), ret);
			c_->node = path;
		} else {
			c_->node = options.node;
			ret = flaxdrm_open_path(options.node.c_str(), &c_->fd);
			if (ret == -ENODEV)
				throw Error(options.node + " is not a flaxdrm device", ret);
			if (ret)
				c_->fail("cannot open", ret);
		}
		ret = flaxdrm_get_version(c_->fd, &c_->version);
		if (ret)
			c_->fail("DRM_IOCTL_VERSION failed", ret);
		ret = flaxdrm_get_param(c_->fd, FLAXDRM_PARAM_VERSION, &c_->abi);
		if (ret)
			c_->fail("GET_PARAM VERSION failed", ret);
		if ((c_->abi >> 16) != FLAXDRM_VERSION_MAJOR)
			throw Error(c_->node + ": the kernel speaks flaxdrm ABI " + std::to_string(c_->abi >> 16) + "." +
				    std::to_string(c_->abi & 0xffff) + ", this client ABI " +
				    std::to_string(FLAXDRM_VERSION_MAJOR) + "." + std::to_string(FLAXDRM_VERSION_MINOR));
		c_->timeout_ms = options.timeout_ms;
		c_->profile = options.profile;
		if (!c_->timeout_ms) {
			uint64_t job_timeout = 0;
			if (flaxdrm_get_param(c_->fd, FLAXDRM_PARAM_JOB_TIMEOUT_MS, &job_timeout) || !job_timeout)
				job_timeout = 60000;
			c_->timeout_ms = static_cast<int64_t>(job_timeout) + 10000;
		}
	}

	std::string kind() const override { return "drm"; }
	std::string description() const override
	{
		return "drm " + c_->node + " (" + c_->version.name + " " + std::to_string(c_->version.major) + "." +
		       std::to_string(c_->version.minor) + "." + std::to_string(c_->version.patchlevel) + ")";
	}

	std::unique_ptr<BoundModule> bind(const Model& model, const Variables& variables,
					  const Shape& input_shape) override
	{
		check_variables(model, variables, input_shape);
		auto bound = std::make_unique<DrmBound>(c_, model, input_shape);
		bound->setup(variables);
		return bound;
	}

private:
	std::shared_ptr<DrmConn> c_;
};

} // namespace

std::unique_ptr<Device> Device::open_drm(const DeviceOptions& options)
{
	return std::make_unique<DrmDevice>(options);
}

} // namespace flaxdrm
