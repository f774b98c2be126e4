// The engine loop: ENGINE_FETCH, run, ENGINE_COMPLETE.
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "flaxdrm/engine.hpp"
#include "flaxdrm/flaxdrm.h"

namespace flaxdrm::engine {

bool verbose = false;

namespace {

void vlog(const char* level, const char* fmt, va_list ap)
{
	char buf[2048];
	std::vsnprintf(buf, sizeof(buf), fmt, ap);
	std::fprintf(stderr, "flaxdrm-engine: %s%s\n", level, buf);
}

constexpr uint32_t kFetchTimeoutMs = 500;
constexpr uint32_t kMaxBuffer = 64u << 20;

std::string job_name(const drm_flaxdrm_engine_job& h)
{
	return std::string(flaxdrm_job_op_name(h.op)) + " job " + std::to_string(h.job_id);
}

} // namespace

void log(const char* fmt, ...)
{
	if (!verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog("", fmt, ap);
	va_end(ap);
}

void error(const char* fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog("error: ", fmt, ap);
	va_end(ap);
}

int complete_job(int fd, uint64_t job_id, const JobResult& r, bool* kernel_takes_profile)
{
	const bool profile = !r.status && (!r.op_timings.empty() || r.shader_invocations);
	if (profile && (!kernel_takes_profile || *kernel_takes_profile)) {
		int ret = flaxdrm_engine_complete_profile(fd, job_id, r.status, r.exec_ns, r.shader_invocations,
							  r.op_timings.data(),
							  static_cast<uint32_t>(r.op_timings.size()));
		if (ret != -EINVAL)
			return ret;
		// A kernel without per-op timings refuses the fields; the job is
		// still pending, so complete it plainly. Remember only when the
		// plain COMPLETE works (so EINVAL was about the profile).
		ret = flaxdrm_engine_complete(fd, job_id, r.status, r.exec_ns);
		if (!ret && kernel_takes_profile) {
			*kernel_takes_profile = false;
			log("the kernel refuses op timings in ENGINE_COMPLETE (EINVAL): completing without them");
		}
		return ret;
	}
	return flaxdrm_engine_complete(fd, job_id, r.status, r.exec_ns);
}

int serve(int fd, rt::Executor& executor, const std::atomic<bool>& stop)
{
	bool kernel_takes_profile = true;
	std::vector<uint8_t> buffer(64 * 1024);
	int consecutive_errors = 0;

	while (!stop.load()) {
		uint32_t size = static_cast<uint32_t>(buffer.size());
		uint64_t job_id = 0;
		int ret = flaxdrm_engine_fetch(fd, kFetchTimeoutMs, buffer.data(), &size, &job_id);
		if (ret == -ENOSPC) {
			// the job stays queued; fetch it again with a buffer that fits
			uint32_t want = size > buffer.size() ? size : static_cast<uint32_t>(buffer.size() * 2);
			if (want > kMaxBuffer) {
				error("a job needs a %u-byte buffer, above the %u-byte limit", want, kMaxBuffer);
				return 1;
			}
			log("growing the job buffer to %u bytes", want);
			buffer.resize(want);
			continue;
		}
		if (ret == -EINTR || ret == -EAGAIN || ret == -ETIME || ret == -ETIMEDOUT)
			continue;
		if (ret == -ENODEV || ret == -EPERM || ret == -EACCES || ret == -EBADF || ret == -ENOTTY ||
		    ret == -ENOENT) {
			error("ENGINE_FETCH: %s; exiting", std::strerror(-ret));
			return 1;
		}
		if (ret) {
			error("ENGINE_FETCH: %s", std::strerror(-ret));
			if (++consecutive_errors >= 50)
				return 1;
			std::this_thread::sleep_for(std::chrono::milliseconds(100));
			continue;
		}
		consecutive_errors = 0;
		if (!job_id)
			continue;
		if (size > buffer.size()) {
			error("ENGINE_FETCH reported %u bytes for a %zu-byte buffer", size, buffer.size());
			size = static_cast<uint32_t>(buffer.size());
		}

		std::span<const uint8_t> job(buffer.data(), size);
		JobResult r = run_job(fd, executor, job);
		drm_flaxdrm_engine_job head{};
		if (size >= sizeof(head))
			std::memcpy(&head, buffer.data(), sizeof(head));
		head.job_id = job_id;
		if (r.status)
			error("%s (context %llu, %u tensors, %u ops) failed: %s: %s", job_name(head).c_str(),
			      static_cast<unsigned long long>(head.context), head.num_tensors, head.num_ops,
			      strerrorname_np(-r.status) ? strerrorname_np(-r.status) : "?", r.message.c_str());
		else
			log("%s (context %llu, %u tensors, %u ops): ok in %.3f ms, %zu variables resident",
			    job_name(head).c_str(), static_cast<unsigned long long>(head.context), head.num_tensors,
			    head.num_ops, r.exec_ns / 1e6, executor.resident_variables());
		ret = complete_job(fd, job_id, r, &kernel_takes_profile);
		if (ret)
			error("ENGINE_COMPLETE of job %llu: %s", static_cast<unsigned long long>(job_id),
			      std::strerror(-ret));
	}
	return 0;
}

} // namespace flaxdrm::engine
