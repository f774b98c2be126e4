// Precompiled SPIR-V compute shaders embedded at build time (shaders/*.comp).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace flaxdrm::shaders {

struct Module {
	std::string_view name;           // "gemm", "gemm_vec4", "elementwise", ...
	std::span<const uint32_t> code;  // SPIR-V words
};

// Every embedded module.
std::span<const Module> all();

// The module with this name, or an empty span.
std::span<const uint32_t> find(std::string_view name);

} // namespace flaxdrm::shaders
