// Compute pipelines keyed by shader name + specialization constants, built
// on first use and kept for the device's lifetime. Thread-safe: executors on
// several threads share one cache.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <vulkan/vulkan.h>

namespace flaxdrm::rt {

class DeviceImpl;

// Every shader uses descriptor set 0 with bindings 0..n-1 of the given
// descriptor types, and `push_size` bytes of push constants.
struct Pipeline {
	VkPipelineLayout layout = VK_NULL_HANDLE;
	VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
	VkPipeline pipeline = VK_NULL_HANDLE;
	std::vector<VkDescriptorType> types;
	uint32_t push_size = 0;
};

class PipelineCache {
public:
	explicit PipelineCache(DeviceImpl& device);
	~PipelineCache();
	PipelineCache(const PipelineCache&) = delete;
	PipelineCache& operator=(const PipelineCache&) = delete;

	// The pipeline for an embedded shader (flaxdrm/shaders.hpp) with
	// specialization constants spec[i] at constant_id i.
	const Pipeline& get(std::string_view shader, std::span<const uint32_t> spec,
			    std::span<const VkDescriptorType> types, uint32_t push_size);
	// All bindings storage buffers.
	const Pipeline& get(std::string_view shader, std::span<const uint32_t> spec,
			    uint32_t num_bindings, uint32_t push_size);

	std::size_t size() const;

private:
	struct Key {
		std::string shader;
		std::vector<uint32_t> spec;
		std::vector<VkDescriptorType> types;
		uint32_t push_size;
		auto operator<=>(const Key&) const = default;
	};
	VkShaderModule module(std::string_view shader);
	VkDescriptorSetLayout set_layout(std::span<const VkDescriptorType> types);

	DeviceImpl& device_;
	mutable std::mutex mutex_;
	VkPipelineCache cache_ = VK_NULL_HANDLE;
	std::map<std::string, VkShaderModule, std::less<>> modules_;
	std::map<std::vector<VkDescriptorType>, VkDescriptorSetLayout> set_layouts_;
	std::map<Key, std::unique_ptr<Pipeline>> pipelines_;
	std::map<std::pair<VkDescriptorSetLayout, uint32_t>, VkPipelineLayout> layouts_;
};

} // namespace flaxdrm::rt
