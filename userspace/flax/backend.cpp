// Backends of the Module API: LocalBackend (rt::Executor in-process) and
// DrmBackend (the kernel's module tree and jobs with syncobjs, through the
// DrmConnection the `drm` device uses too).
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

#include "flaxdrm/error.hpp"
#include "flaxdrm/flax/backend.hpp"
#include "flaxdrm/flaxdrm.h"
#include "flaxdrm/runtime.hpp"

// the kernel path shared with the drm device (flaxdrm_client)
#include "../client/device_drm.hpp"

namespace flaxdrm::flax {
namespace {

std::string kind_class(uint32_t kind, const std::string& class_name)
{
	return kind == FLAXDRM_KIND_MODULE ? class_name : flaxdrm_kind_name(kind);
}

std::atomic<uint64_t> next_key{0x7f1a0000000001ull};

// ------------------------------------------------------------------ local
class LocalBackend final : public Backend {
public:
	LocalBackend()
	{
		try {
			device_ = rt::Device::create({});
			executor_ = rt::Executor::create(*device_);
		} catch (const rt::Error& e) {
			throw Error("cannot open the local Vulkan device: " + std::string(e.what()), e.status());
		}
	}
	~LocalBackend() override
	{
		executor_.reset();
		device_.reset();
	}

	std::string kind() const override { return "local"; }
	std::string description() const override { return "local (" + device_->info().name + ")"; }

	uint32_t create_module(uint32_t parent, uint32_t kind, const std::string& name, const std::string& class_name,
			       const std::string&, std::string* chosen) override
	{
		std::lock_guard lock(mutex_);
		if (parent && !mods_.count(parent))
			throw Error("local: MODULE_CREATE: unknown parent " + std::to_string(parent), -ENOENT);
		std::string n = name;
		if (parent) {
			Mod& p = mods_.at(parent);
			if (n.empty()) {
				const std::string cls = kind_class(kind, class_name);
				n = cls + "_" + std::to_string(p.counters[cls]++);
			}
			for (uint32_t c : p.children)
				if (mods_.at(c).name == n)
					throw Error("local: MODULE_CREATE: name \"" + n + "\" in use", -EEXIST);
		}
		const uint32_t h = next_handle_++;
		mods_[h] = Mod{parent, kind, n, {}, {}};
		if (parent)
			mods_.at(parent).children.push_back(h);
		counters_.module_creates++;
		if (chosen)
			*chosen = n;
		return h;
	}

	void destroy_module(uint32_t handle) override
	{
		std::lock_guard lock(mutex_);
		destroy_locked(handle);
	}

	std::string module_path(uint32_t handle) override
	{
		std::lock_guard lock(mutex_);
		std::string p;
		for (uint32_t h = handle; h && mods_.at(h).parent; h = mods_.at(h).parent)
			p = mods_.at(h).name + (p.empty() ? "" : "/" + p);
		return p;
	}

	void bind_variable(uint32_t module, const std::string& collection, const std::string& name,
			   const Tensor& value) override
	{
		std::lock_guard lock(mutex_);
		if (!mods_.count(module))
			throw Error("local: VAR_BIND: unknown module", -ENOENT);
		Var& v = vars_[{module, collection, name}];
		if (!v.key)
			v.key = next_key.fetch_add(1);
		v.generation++;
		v.data = value.data;
		v.shape = value.shape;
		counters_.var_binds++;
	}

	Tensor read_variable(uint32_t module, const std::string& collection, const std::string& name) override
	{
		std::lock_guard lock(mutex_);
		auto it = vars_.find({module, collection, name});
		if (it == vars_.end())
			throw Error("local: no variable " + collection + "/" + name, -ENOENT);
		return Tensor(it->second.shape, it->second.data);
	}

	uint32_t create_program(uint32_t, std::span<const drm_flaxdrm_tensor> tensors,
				std::span<const drm_flaxdrm_op> ops,
				const std::function<std::string(uint32_t, uint32_t)>&) override
	{
		std::lock_guard lock(mutex_);
		const uint32_t h = next_handle_++;
		progs_[h] = {{tensors.begin(), tensors.end()}, {ops.begin(), ops.end()}};
		counters_.program_creates++;
		return h;
	}

	void destroy_program(uint32_t handle) override
	{
		std::lock_guard lock(mutex_);
		progs_.erase(handle);
	}

	void setup(uint32_t root) override
	{
		std::lock_guard lock(mutex_);
		counters_.setups++;
		try {
			for (auto& [k, v] : vars_)
				if (in_subtree(std::get<0>(k), root)) {
					drm_flaxdrm_tensor desc = describe(std::get<0>(k), std::get<1>(k), std::get<2>(k), v);
					executor_->load_variable(v.key, v.generation, desc, v.data.data());
				}
		} catch (const rt::Error& e) {
			throw Error("setup on the local device failed: " + std::string(e.what()), e.status());
		}
	}

	void call(uint32_t, uint32_t program, std::span<const IoBinding> io, const std::vector<std::string>& mut,
		  bool mutable_all) override
	{
		std::lock_guard lock(mutex_);
		auto pit = progs_.find(program);
		if (pit == progs_.end())
			throw Error("local: unknown program", -ENOENT);
		const Prog& p = pit->second;
		std::vector<rt::TensorMemory> mem(p.tensors.size());
		for (const IoBinding& b : io) {
			mem.at(b.tensor).host = b.host;
			mem.at(b.tensor).size = b.size;
		}
		std::vector<bool> written(p.tensors.size());
		for (const auto& op : p.ops)
			for (uint32_t i = 0; i < op.num_outputs; i++)
				written[op.outputs[i]] = true;
		for (std::size_t i = 0; i < p.tensors.size(); i++) {
			const auto& t = p.tensors[i];
			if (t.kind != FLAXDRM_TENSOR_VARIABLE)
				continue;
			auto it = vars_.find({t.module, t.collection, t.name});
			if (it == vars_.end())
				throw Error(std::string("local: call: variable ") + t.collection + "/" + t.name + " is not bound",
					    -ENOENT);
			if (written[i] && !mutable_all) {
				bool ok = false;
				for (const auto& c : mut)
					ok |= c == t.collection;
				if (!ok)
					throw Error(std::string("local: call writes ") + t.collection + "/" + t.name +
							    " whose collection is not mutable",
						    -EINVAL);
			}
			Var& v = it->second;
			mem[i].host = v.data.data();
			mem[i].size = v.data.size() * sizeof(float);
			mem[i].var_key = v.key;
			mem[i].var_generation = v.generation;
			mem[i].writable = written[i];
		}
		counters_.calls++;
		try {
			executor_->run(p.tensors, p.ops, mem);
		} catch (const rt::Error& e) {
			throw Error("call on the local device failed: " + std::string(e.what()), e.status());
		}
	}

	void cleanup(uint32_t root) override
	{
		std::lock_guard lock(mutex_);
		counters_.cleanups++;
		for (auto& [k, v] : vars_)
			if (in_subtree(std::get<0>(k), root))
				executor_->drop_variable(v.key);
	}

private:
	struct Mod {
		uint32_t parent = 0;
		uint32_t kind = 0;
		std::string name;
		std::map<std::string, uint32_t> counters;
		std::vector<uint32_t> children;
	};
	struct Var {
		Shape shape;
		std::vector<float> data;
		uint64_t key = 0;
		uint64_t generation = 0;
	};
	struct Prog {
		std::vector<drm_flaxdrm_tensor> tensors;
		std::vector<drm_flaxdrm_op> ops;
	};
	using VarKey = std::tuple<uint32_t, std::string, std::string>;

	bool in_subtree(uint32_t h, uint32_t root) const
	{
		for (; h; h = mods_.at(h).parent)
			if (h == root)
				return true;
		return false;
	}

	static drm_flaxdrm_tensor describe(uint32_t module, const std::string& col, const std::string& name,
					   const Var& v)
	{
		drm_flaxdrm_tensor t{};
		t.kind = FLAXDRM_TENSOR_VARIABLE;
		t.dtype = FLAXDRM_DTYPE_F32;
		t.rank = uint32_t(v.shape.size());
		for (std::size_t i = 0; i < v.shape.size(); i++)
			t.dims[i] = uint32_t(v.shape[i]);
		t.module = module;
		std::memcpy(t.collection, col.data(), std::min(col.size(), sizeof(t.collection) - 1));
		std::memcpy(t.name, name.data(), std::min(name.size(), sizeof(t.name) - 1));
		return t;
	}

	void destroy_locked(uint32_t handle)
	{
		auto it = mods_.find(handle);
		if (it == mods_.end())
			return;
		for (uint32_t c : std::vector<uint32_t>(it->second.children))
			destroy_locked(c);
		for (auto v = vars_.begin(); v != vars_.end();) {
			if (std::get<0>(v->first) == handle) {
				executor_->drop_variable(v->second.key);
				v = vars_.erase(v);
			} else {
				++v;
			}
		}
		const uint32_t parent = it->second.parent;
		if (parent && mods_.count(parent)) {
			auto& ch = mods_.at(parent).children;
			ch.erase(std::remove(ch.begin(), ch.end(), handle), ch.end());
		}
		mods_.erase(handle);
	}

	std::unique_ptr<rt::Device> device_;
	std::unique_ptr<rt::Executor> executor_;
	std::mutex mutex_;
	uint32_t next_handle_ = 1;
	std::map<uint32_t, Mod> mods_;
	std::map<VarKey, Var> vars_;
	std::map<uint32_t, Prog> progs_;
};

// -------------------------------------------------------------------- drm
// The kernel calls and their errors are the drm device's (DrmConnection).
class DrmBackend final : public Backend {
public:
	explicit DrmBackend(const std::string& node)
		: c_(node, "the local backend runs in-process instead"), syncobj_(c_.create_syncobj())
	{
	}

	~DrmBackend() override
	{
		for (auto& [k, vb] : var_bos_)
			c_.close_bo(vb.bo);
		for (auto& bo : io_bos_)
			c_.close_bo(bo);
		c_.destroy_syncobj(syncobj_);
	}

	std::string kind() const override { return "drm"; }
	std::string description() const override { return "drm " + c_.node(); }

	uint32_t create_module(uint32_t parent, uint32_t kind, const std::string& name, const std::string& class_name,
			       const std::string& config, std::string* chosen) override
	{
		uint32_t h = c_.create_module(parent, kind, name, class_name, config, chosen, [&] {
			return "MODULE_CREATE " + kind_class(kind, class_name) + " \"" + name + "\" failed";
		});
		counters_.module_creates++;
		return h;
	}

	void destroy_module(uint32_t handle) override
	{
		int ret = flaxdrm_module_destroy(c_.fd(), handle);
		// the kernel dropped the subtree's variable references; drop ours
		for (auto it = var_bos_.begin(); it != var_bos_.end();) {
			if (std::get<0>(it->first) == handle || !module_alive(std::get<0>(it->first))) {
				c_.close_bo(it->second.bo);
				it = var_bos_.erase(it);
			} else {
				++it;
			}
		}
		if (ret)
			c_.fail("MODULE_DESTROY failed", ret);
	}

	std::string module_path(uint32_t handle) override
	{
		drm_flaxdrm_module_query q{};
		char buf[4096];
		uint32_t size = sizeof(buf);
		int ret = flaxdrm_module_query(c_.fd(), handle, &q, buf, &size);
		if (ret)
			c_.fail("MODULE_QUERY failed", ret);
		return buf;
	}

	void bind_variable(uint32_t module, const std::string& collection, const std::string& name,
			   const Tensor& value) override
	{
		detail::DrmBo bo;
		const uint64_t bytes = std::max<uint64_t>(4, value.data.size() * sizeof(float));
		c_.create_bo(bo, bytes, "a variable");
		std::memcpy(bo.map, value.data.data(), value.data.size() * sizeof(float));
		uint32_t dims[FLAXDRM_MAX_RANK] = {};
		for (std::size_t i = 0; i < value.shape.size() && i < FLAXDRM_MAX_RANK; i++)
			dims[i] = uint32_t(value.shape[i]);
		try {
			c_.bind_variable(module, collection, name, bo.handle, 0, FLAXDRM_DTYPE_F32,
					 uint32_t(value.shape.size()), dims,
					 [&] { return "VAR_BIND " + collection + "/" + name + " failed"; });
		} catch (...) {
			c_.close_bo(bo);
			throw;
		}
		counters_.var_binds++;
		auto& slot = var_bos_[{module, collection, name}];
		c_.close_bo(slot.bo);
		slot = {bo, value.shape};
	}

	Tensor read_variable(uint32_t module, const std::string& collection, const std::string& name) override
	{
		auto it = var_bos_.find({module, collection, name});
		if (it == var_bos_.end())
			throw Error("drm: no variable " + collection + "/" + name + " bound by this client", -ENOENT);
		Tensor t(it->second.shape);
		std::memcpy(t.data.data(), it->second.bo.map, t.data.size() * sizeof(float));
		return t;
	}

	uint32_t create_program(uint32_t root, std::span<const drm_flaxdrm_tensor> tensors,
				std::span<const drm_flaxdrm_op> ops,
				const std::function<std::string(uint32_t, uint32_t)>& where) override
	{
		uint32_t h = c_.create_program(root, tensors, ops, "the kernel refused the traced program", where);
		counters_.program_creates++;
		return h;
	}

	void destroy_program(uint32_t handle) override { flaxdrm_program_destroy(c_.fd(), handle); }

	void setup(uint32_t root) override
	{
		drm_flaxdrm_submit s{};
		s.op = FLAXDRM_JOB_SETUP;
		s.module = root;
		c_.run_job("setup", {}, syncobj_, s);
		counters_.setups++;
	}

	void call(uint32_t root, uint32_t program, std::span<const IoBinding> io, const std::vector<std::string>& mut,
		  bool mutable_all) override
	{
		if (io_bos_.size() < io.size())
			io_bos_.resize(io.size());
		std::vector<drm_flaxdrm_binding> bindings;
		for (std::size_t i = 0; i < io.size(); i++) {
			detail::DrmBo& bo = io_bos_[i];
			if (!bo.handle || bo.size < io[i].size) {
				c_.close_bo(bo);
				c_.create_bo(bo, std::max<uint64_t>(io[i].size, 4), "an input/output");
			}
			if (!io[i].is_output)
				std::memcpy(bo.map, io[i].host, io[i].size);
			bindings.push_back({io[i].tensor, bo.handle, 0});
		}
		std::vector<drm_flaxdrm_collection> cols(mut.size());
		for (std::size_t i = 0; i < mut.size(); i++) {
			std::memset(&cols[i], 0, sizeof(cols[i]));
			std::memcpy(cols[i].name, mut[i].data(), std::min(mut[i].size(), sizeof(cols[i].name) - 1));
		}
		drm_flaxdrm_submit s{};
		s.op = FLAXDRM_JOB_CALL;
		s.module = root;
		s.program = program;
		s.flags = mutable_all ? FLAXDRM_SUBMIT_MUTABLE_ALL : 0;
		s.bindings = reinterpret_cast<uintptr_t>(bindings.data());
		s.num_bindings = uint32_t(bindings.size());
		s.mutable_collections = cols.empty() ? 0 : reinterpret_cast<uintptr_t>(cols.data());
		s.num_mutable = uint32_t(cols.size());
		c_.run_job("call", {}, syncobj_, s);
		counters_.calls++;
		for (std::size_t i = 0; i < io.size(); i++)
			if (io[i].is_output)
				std::memcpy(io[i].host, io_bos_[i].map, io[i].size);
	}

	void cleanup(uint32_t root) override
	{
		drm_flaxdrm_submit s{};
		s.op = FLAXDRM_JOB_CLEANUP;
		s.module = root;
		c_.run_job("cleanup", {}, syncobj_, s);
		counters_.cleanups++;
	}

private:
	struct VarBo {
		detail::DrmBo bo;
		Shape shape;
	};

	bool module_alive(uint32_t handle)
	{
		drm_flaxdrm_module_query q{};
		uint32_t size = 0;
		return flaxdrm_module_query(c_.fd(), handle, &q, nullptr, &size) == 0;
	}

	detail::DrmConnection c_;
	uint32_t syncobj_ = 0;
	std::map<std::tuple<uint32_t, std::string, std::string>, VarBo> var_bos_;
	std::vector<detail::DrmBo> io_bos_;
};

} // namespace

std::shared_ptr<Backend> Backend::open(const std::string& kind, const std::string& node)
{
	if (kind == "local")
		return std::make_shared<LocalBackend>();
	if (kind == "drm")
		return std::make_shared<DrmBackend>(node);
	throw Error("unknown backend \"" + kind + "\" (local or drm)");
}

std::shared_ptr<Backend> Backend::default_backend()
{
	static std::mutex m;
	// never destroyed: modules may release their state at exit
	static auto* backend = new std::shared_ptr<Backend>();
	std::lock_guard lock(m);
	if (!*backend)
		*backend = Backend::open("local");
	return *backend;
}

} // namespace flaxdrm::flax
