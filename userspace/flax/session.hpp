// Internal: per-root state shared by init/apply/bind (scopes, program cache,
// device state) and the per-run Context.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "flaxdrm/flax/backend.hpp"
#include "flaxdrm/flax/module.hpp"

namespace flaxdrm::flax {

struct ScopeInfo {
	uint32_t id = 0;
	uint32_t parent = 0; // 0 for the root
	std::string name, path, class_name, config;
	uint32_t kind = FLAXDRM_KIND_MODULE;
	bool auto_named = false;
};

struct Context {
	Variables vars;
	bool initializing = false;
	Mutable mut;
	Rngs rngs;
	std::map<std::string, uint32_t> rng_counters;
	Trace* trace = nullptr;
	Session* session = nullptr;
};

struct Session {
	struct DeviceState {
		std::shared_ptr<Backend> backend;
		std::map<uint32_t, uint32_t> handles; // scope id -> backend module handle
		std::map<std::string, Tensor> bound;  // variable path -> value bound
		bool setup_done = false;
	};
	struct Entry {
		std::shared_ptr<Trace> trace;
		Variables created; // variables initialised while tracing (mutable collections)
		std::map<Backend*, uint32_t> programs;
	};

	std::vector<ScopeInfo> scopes; // id = index + 1
	std::map<std::string, uint32_t> by_path;
	std::map<std::string, Entry> cache;
	std::map<Backend*, DeviceState> devices;
	Module::Stats stats;
	std::shared_ptr<Trace> last_trace;

	~Session() { release(); }
	uint32_t scope(const Module& m, uint32_t parent, bool auto_named);
	DeviceState& device(const std::shared_ptr<Backend>& backend);
	void release();
};

} // namespace flaxdrm::flax
