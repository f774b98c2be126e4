// The libflaxdrm sequences the kernel path needs, shared by the `drm`
// device (device_drm.cpp) and the Module API's drm backend
// (flax/backend.cpp): opening a render node with the ABI check, BOs with a
// CPU mapping, MODULE_CREATE, VAR_BIND, PROGRAM_CREATE and a job run
// through SUBMIT, a syncobj wait and the fence status. Errors are thrown
// as flaxdrm::Error "<node>: <what>: <errno text>"; callers say what.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "flaxdrm/flaxdrm.h"

namespace flaxdrm::detail {

// A BO with a CPU mapping (map is null once unmapped).
struct DrmBo {
	uint32_t handle = 0;
	uint64_t size = 0;
	void* map = nullptr;
};

class DrmConnection {
public:
	// Opens node, or the first flaxdrm render node when node is empty;
	// local_hint tells in the no-device error how to run without one.
	DrmConnection(const std::string& node, const std::string& local_hint);
	~DrmConnection();
	DrmConnection(const DrmConnection&) = delete;
	DrmConnection& operator=(const DrmConnection&) = delete;

	int fd() const { return fd_; }
	const std::string& node() const { return node_; }
	const flaxdrm_version& version() const { return version_; }

	[[noreturn]] void fail(const std::string& what, int err) const;
	bool engine_attached() const;

	// How long run_job waits: the kernel's job timeout plus 10 s unless set.
	int64_t job_wait_ms() const { return job_wait_ms_; }
	void set_job_wait_ms(int64_t ms) { job_wait_ms_ = ms; }

	// what names the BO in errors, article included: "the input", "a variable".
	void create_bo(DrmBo& bo, uint64_t size, const std::string& what) const;
	void close_bo(DrmBo& bo) const noexcept;

	uint32_t create_syncobj() const;
	void destroy_syncobj(uint32_t syncobj) const noexcept;

	// MODULE_CREATE; *chosen gets the kernel's name. what() is the error's
	// "what" (evaluated only on failure).
	uint32_t create_module(uint32_t parent, uint32_t kind, const std::string& name, const std::string& class_name,
			       std::span<const char> config, std::string* chosen,
			       const std::function<std::string()>& what) const;
	void bind_variable(uint32_t module, const std::string& collection, const std::string& name, uint32_t bo,
			   uint64_t offset, uint32_t dtype, uint32_t rank, const uint32_t* dims,
			   const std::function<std::string()>& what) const;
	// PROGRAM_CREATE; a refusal throws what + ": " + where(bad_op,
	// bad_tensor) when where names something.
	uint32_t create_program(uint32_t root, std::span<const drm_flaxdrm_tensor> tensors,
				std::span<const drm_flaxdrm_op> ops, const std::string& what,
				const std::function<std::string(uint32_t, uint32_t)>& where) const;

	// Submits s (out_sync: syncobj), waits up to job_wait_ms() and checks
	// the fence's status; s.job_id is set. job names the job ("setup");
	// owner, when not empty, the model it belongs to. Returns the wall time
	// in ns. FLAXDRM_DEBUG=1 logs every job to stderr.
	uint64_t run_job(const char* job, const std::string& owner, uint32_t syncobj, drm_flaxdrm_submit& s) const;

private:
	int fd_ = -1;
	std::string node_;
	flaxdrm_version version_{};
	int64_t job_wait_ms_ = 0;
};

} // namespace flaxdrm::detail
