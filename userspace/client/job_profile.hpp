// JOB_QUERY for the drm device's profile of a call (flaxdrm profile).
#pragma once

#include "flaxdrm/device.hpp"

namespace flaxdrm::detail {

// Fills profile.query_status, queue/exec ns, shader invocations and the op
// timings of job profile.job_id with JOB_QUERY on fd. Never throws for a
// kernel without JOB_QUERY: query_status says what happened.
void query_call_profile(int fd, CallProfile& profile);

} // namespace flaxdrm::detail
