// Recording dispatches into a program's command buffer: binds the pipeline,
// provides the storage-buffer descriptors (pushed with VK_KHR_push_descriptor
// where the device has it, otherwise allocated from pools that are reset
// when the command buffer is recorded again) and the push constants.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include <vulkan/vulkan.h>

namespace flaxdrm::rt {

class DeviceImpl;
struct Pipeline;

struct BufferRange {
	VkBuffer buffer = VK_NULL_HANDLE;
	VkDeviceSize offset = 0;  // multiple of min{Storage,Texel}BufferOffsetAlignment
	VkDeviceSize range = 0;
	// STORAGE_BUFFER, or UNIFORM_TEXEL_BUFFER with `format` (the recorder
	// creates the buffer view; it lives as long as the recording).
	VkDescriptorType type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
	VkFormat format = VK_FORMAT_UNDEFINED;
};

// Descriptor sets for devices without push descriptors, and the buffer
// views of texel-buffer bindings, of one recorded command buffer (which is
// replayed by later runs, so they stay as recorded until then). Pools are
// created on demand and reset (not freed) when the command buffer is
// recorded again; views are destroyed then.
class DescriptorPools {
public:
	explicit DescriptorPools(DeviceImpl& device) : device_(device) {}
	~DescriptorPools();
	DescriptorPools(const DescriptorPools&) = delete;
	DescriptorPools& operator=(const DescriptorPools&) = delete;

	VkDescriptorSet allocate(VkDescriptorSetLayout layout);
	VkBufferView view(const BufferRange& range);
	void reset();

private:
	DeviceImpl& device_;
	std::vector<VkDescriptorPool> pools_;
	std::vector<VkBufferView> views_;
	std::size_t current_ = 0;
};

class Recorder {
public:
	Recorder(DeviceImpl& device, VkCommandBuffer cb, DescriptorPools& pools)
		: device_(device), cb_(cb), pools_(pools) {}

	DeviceImpl& device() const { return device_; }
	VkCommandBuffer command_buffer() const { return cb_; }

	// bindings[i] goes to binding i; their count must match the pipeline.
	void dispatch(const Pipeline& pipeline, std::span<const BufferRange> bindings,
		      const void* push, uint32_t push_size,
		      uint32_t groups_x, uint32_t groups_y = 1, uint32_t groups_z = 1);

	// Shader writes before it are visible to shader reads and writes after
	// it (for kernels made of several dependent dispatches).
	void compute_barrier();

private:
	DeviceImpl& device_;
	VkCommandBuffer cb_;
	DescriptorPools& pools_;
	VkPipeline bound_ = VK_NULL_HANDLE;
};

} // namespace flaxdrm::rt
