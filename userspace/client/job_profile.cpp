// JOB_QUERY for the drm device's profile of a call (flaxdrm profile).
#include "job_profile.hpp"

#include <cerrno>
#include <chrono>
#include <thread>
#include <vector>

#include "flaxdrm/flaxdrm.h"

namespace flaxdrm::detail {

void query_call_profile(int fd, CallProfile& p)
{
	drm_flaxdrm_job_query info{};
	std::vector<drm_flaxdrm_op_timing> timings(64);
	int ret = 0;
	// The fence has signalled; the kernel may file the job into its history
	// a moment later (EBUSY), and may hold more timings than we asked for.
	for (int attempt = 0; attempt < 100; attempt++) {
		ret = flaxdrm_job_query(fd, p.job_id, &info, timings.data(), static_cast<uint32_t>(timings.size()));
		if (ret == -EBUSY) {
			std::this_thread::sleep_for(std::chrono::milliseconds(2));
			continue;
		}
		if (!ret && info.num_op_timings > timings.size() && info.num_op_timings <= FLAXDRM_MAX_OPS) {
			timings.resize(info.num_op_timings);
			continue;
		}
		break;
	}
	p.query_status = ret;
	if (ret)
		return;
	p.queue_ns = info.queue_ns;
	p.exec_ns = info.exec_ns;
	p.shader_invocations = info.shader_invocations;
	p.ops.clear();
	uint32_t n = std::min<uint32_t>(info.num_op_timings, static_cast<uint32_t>(timings.size()));
	for (uint32_t i = 0; i < n; i++)
		p.ops.push_back({timings[i].op_index, timings[i].opcode, timings[i].start_ns, timings[i].end_ns});
}

} // namespace flaxdrm::detail
