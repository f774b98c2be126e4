// Program-running devices for the Module API: a module tree with bound
// variables, programs, and setup/call/cleanup jobs. LocalBackend runs on
// the in-process runtime (rt::Executor), DrmBackend through libflaxdrm and
// the flaxdrm render node (one kernel module per Flax module).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "flaxdrm/tensor.hpp"

extern "C" {
#include "flaxdrm_drm.h"
}

namespace flaxdrm::flax {

struct IoBinding {
	uint32_t tensor = 0; // INPUT or OUTPUT tensor index
	void* host = nullptr;
	uint64_t size = 0;   // bytes
	bool is_output = false;
};

struct BackendCounters {
	uint64_t module_creates = 0;
	uint64_t var_binds = 0;
	uint64_t program_creates = 0;
	uint64_t setups = 0;
	uint64_t calls = 0;
	uint64_t cleanups = 0;
};

class Backend {
public:
	// "local" or "drm"; node: drm device node (empty: find by driver name)
	static std::shared_ptr<Backend> open(const std::string& kind, const std::string& node = {});
	// the process's shared local backend (created on first use)
	static std::shared_ptr<Backend> default_backend();

	virtual ~Backend() = default;
	virtual std::string kind() const = 0;
	virtual std::string description() const = 0;

	// MODULE_CREATE. name empty: auto-name; *chosen receives the name used.
	virtual uint32_t create_module(uint32_t parent, uint32_t kind, const std::string& name,
				       const std::string& class_name, const std::string& config, std::string* chosen) = 0;
	virtual void destroy_module(uint32_t handle) = 0;
	// "Block_0/Dense_1" (MODULE_QUERY's path)
	virtual std::string module_path(uint32_t handle) = 0;
	// VAR_BIND of a float32 value (copied)
	virtual void bind_variable(uint32_t module, const std::string& collection, const std::string& name,
				   const Tensor& value) = 0;
	virtual Tensor read_variable(uint32_t module, const std::string& collection, const std::string& name) = 0;
	// PROGRAM_CREATE; `where` names ops/tensors in errors
	virtual uint32_t create_program(uint32_t root, std::span<const drm_flaxdrm_tensor> tensors,
					std::span<const drm_flaxdrm_op> ops,
					const std::function<std::string(uint32_t, uint32_t)>& where) = 0;
	virtual void destroy_program(uint32_t handle) = 0;
	virtual void setup(uint32_t root) = 0;
	virtual void call(uint32_t root, uint32_t program, std::span<const IoBinding> io,
			  const std::vector<std::string>& mutable_collections, bool mutable_all) = 0;
	virtual void cleanup(uint32_t root) = 0;

	const BackendCounters& counters() const { return counters_; }

protected:
	BackendCounters counters_;
};

} // namespace flaxdrm::flax
