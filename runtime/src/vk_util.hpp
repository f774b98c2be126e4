// Small helpers shared by the runtime's sources.
#pragma once

#include <cerrno>
#include <string>

#include <vulkan/vulkan.h>

#include "flaxdrm/runtime.hpp"

namespace flaxdrm::rt {

const char* vk_result_name(VkResult r);

// Maps a failed VkResult to the errno the engine reports.
int vk_result_errno(VkResult r);

// Throws Error(vk_result_errno(r), "<what>: <VkResult>") unless r is VK_SUCCESS.
void vk_check(VkResult r, const char* what);

[[noreturn]] void fail(int status, const std::string& message);

inline uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

} // namespace flaxdrm::rt
