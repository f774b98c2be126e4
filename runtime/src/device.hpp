// The Vulkan device behind rt::Device: instance, physical device choice, one
// compute queue, the capabilities the executor and kernels consult, and the
// pipeline cache shared by every executor on the device.
#pragma once

#include <memory>
#include <mutex>

#include <vulkan/vulkan.h>

#include "flaxdrm/runtime.hpp"

namespace flaxdrm::rt {

class PipelineCache;

class DeviceImpl final : public Device {
public:
	explicit DeviceImpl(const DeviceOptions& options);
	~DeviceImpl() override;
	DeviceImpl(const DeviceImpl&) = delete;
	DeviceImpl& operator=(const DeviceImpl&) = delete;

	const DeviceInfo& info() const override { return info_; }

	VkDevice vk() const { return device_; }
	VkPhysicalDevice physical() const { return physical_; }
	const VkPhysicalDeviceLimits& limits() const { return props_.limits; }
	const VkPhysicalDeviceMemoryProperties& memory_properties() const { return mem_props_; }
	VkPhysicalDeviceType type() const { return props_.deviceType; }
	// Kernels may pick variants tuned for CPU devices (lavapipe).
	bool cpu_kernels() const { return cpu_kernels_; }
	uint32_t queue_family() const { return queue_family_; }

	// Host-visible device-local memory is the normal case (CPU devices,
	// integrated GPUs): tensors are then mapped and copied directly.
	bool unified_memory() const { return unified_memory_; }

	// VK_KHR_push_descriptor: kernels push descriptors instead of
	// allocating sets.
	bool push_descriptors() const { return cmd_push_descriptor_set_ != nullptr; }
	void cmd_push_descriptor_set(VkCommandBuffer cb, VkPipelineLayout layout, uint32_t count,
				     const VkWriteDescriptorSet* writes) const
	{
		cmd_push_descriptor_set_(cb, VK_PIPELINE_BIND_POINT_COMPUTE, layout, 0, count, writes);
	}

	// Nanoseconds per timestamp tick and the mask of valid bits; 0 ticks
	// per ns when the queue has no timestamps.
	double timestamp_period() const { return props_.limits.timestampPeriod; }
	uint64_t timestamp_mask() const { return timestamp_mask_; }
	// pipelineStatisticsQuery is enabled: runs count shader invocations.
	bool pipeline_statistics() const { return pipeline_statistics_; }
	// shaderFloat16, storageBuffer16BitAccess and
	// uniformAndStorageBuffer16BitAccess are enabled: kernels may run f16
	// tensors (16-bit storage, f32 arithmetic where they choose).
	bool f16() const { return f16_; }

	// vkQueueSubmit, serialised between executors.
	VkResult submit(const VkSubmitInfo& submit, VkFence fence);

	PipelineCache& pipelines() { return *pipelines_; }

private:
	void create_instance(const DeviceOptions& options);
	void pick_physical_device(const DeviceOptions& options);
	void create_device();

	VkInstance instance_ = VK_NULL_HANDLE;
	VkDebugUtilsMessengerEXT messenger_ = VK_NULL_HANDLE;
	VkPhysicalDevice physical_ = VK_NULL_HANDLE;
	VkDevice device_ = VK_NULL_HANDLE;
	VkQueue queue_ = VK_NULL_HANDLE;
	uint32_t queue_family_ = 0;
	VkPhysicalDeviceProperties props_{};
	VkPhysicalDeviceMemoryProperties mem_props_{};
	bool has_push_descriptor_ext_ = false;
	bool unified_memory_ = false;
	bool cpu_kernels_ = false;
	uint64_t timestamp_mask_ = 0;
	bool pipeline_statistics_ = false;
	bool f16_ = false;
	PFN_vkCmdPushDescriptorSetKHR cmd_push_descriptor_set_ = nullptr;
	std::mutex queue_mutex_;
	std::unique_ptr<PipelineCache> pipelines_;
	DeviceInfo info_;
};

// The DeviceImpl behind a Device reference; throws -EINVAL for a foreign one.
DeviceImpl& device_impl(Device& device);

} // namespace flaxdrm::rt
