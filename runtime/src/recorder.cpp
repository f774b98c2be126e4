#include "recorder.hpp"

#include "device.hpp"
#include "pipeline_cache.hpp"
#include "vk_util.hpp"

namespace flaxdrm::rt {

DescriptorPools::~DescriptorPools()
{
	for (VkBufferView v : views_)
		vkDestroyBufferView(device_.vk(), v, nullptr);
	for (VkDescriptorPool p : pools_)
		vkDestroyDescriptorPool(device_.vk(), p, nullptr);
}

VkBufferView DescriptorPools::view(const BufferRange& range)
{
	VkBufferViewCreateInfo ci{VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO};
	ci.buffer = range.buffer;
	ci.format = range.format;
	ci.offset = range.offset;
	ci.range = range.range;
	VkBufferView v;
	vk_check(vkCreateBufferView(device_.vk(), &ci, nullptr, &v), "vkCreateBufferView");
	views_.push_back(v);
	return v;
}

void DescriptorPools::reset()
{
	for (VkBufferView v : views_)
		vkDestroyBufferView(device_.vk(), v, nullptr);
	views_.clear();
	for (VkDescriptorPool p : pools_)
		vkResetDescriptorPool(device_.vk(), p, 0);
	current_ = 0;
}

VkDescriptorSet DescriptorPools::allocate(VkDescriptorSetLayout layout)
{
	constexpr uint32_t kSets = 256;
	constexpr uint32_t kBuffers = kSets * 8;
	for (;;) {
		if (current_ == pools_.size()) {
			const VkDescriptorPoolSize sizes[] = {
				{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, kBuffers},
				{VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, kBuffers},
			};
			VkDescriptorPoolCreateInfo ci{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
			ci.maxSets = kSets;
			ci.poolSizeCount = 2;
			ci.pPoolSizes = sizes;
			VkDescriptorPool pool;
			vk_check(vkCreateDescriptorPool(device_.vk(), &ci, nullptr, &pool), "vkCreateDescriptorPool");
			pools_.push_back(pool);
		}
		VkDescriptorSetAllocateInfo ai{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
		ai.descriptorPool = pools_[current_];
		ai.descriptorSetCount = 1;
		ai.pSetLayouts = &layout;
		VkDescriptorSet set;
		VkResult r = vkAllocateDescriptorSets(device_.vk(), &ai, &set);
		if (r == VK_SUCCESS)
			return set;
		if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL)
			vk_check(r, "vkAllocateDescriptorSets");
		current_++; // this pool is full: next one
	}
}

void Recorder::dispatch(const Pipeline& pipeline, std::span<const BufferRange> bindings,
			const void* push, uint32_t push_size,
			uint32_t groups_x, uint32_t groups_y, uint32_t groups_z)
{
	if (bindings.size() != pipeline.types.size() || push_size != pipeline.push_size)
		fail(-EINVAL, "kernel bindings do not match its pipeline");

	std::vector<VkDescriptorBufferInfo> infos(bindings.size());
	std::vector<VkBufferView> views(bindings.size());
	std::vector<VkWriteDescriptorSet> writes(bindings.size());
	for (std::size_t i = 0; i < bindings.size(); i++) {
		if (bindings[i].type != pipeline.types[i])
			fail(-EINVAL, "kernel binding types do not match its pipeline");
		writes[i] = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
		writes[i].dstBinding = uint32_t(i);
		writes[i].descriptorCount = 1;
		writes[i].descriptorType = bindings[i].type;
		if (bindings[i].type == VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER) {
			views[i] = pools_.view(bindings[i]);
			writes[i].pTexelBufferView = &views[i];
		} else {
			infos[i] = {bindings[i].buffer, bindings[i].offset, bindings[i].range};
			writes[i].pBufferInfo = &infos[i];
		}
	}

	if (bound_ != pipeline.pipeline) {
		vkCmdBindPipeline(cb_, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.pipeline);
		bound_ = pipeline.pipeline;
	}
	if (device_.push_descriptors()) {
		device_.cmd_push_descriptor_set(cb_, pipeline.layout, uint32_t(writes.size()), writes.data());
	} else {
		VkDescriptorSet set = pools_.allocate(pipeline.set_layout);
		for (auto& w : writes)
			w.dstSet = set;
		vkUpdateDescriptorSets(device_.vk(), uint32_t(writes.size()), writes.data(), 0, nullptr);
		vkCmdBindDescriptorSets(cb_, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.layout, 0, 1, &set, 0, nullptr);
	}
	if (push_size)
		vkCmdPushConstants(cb_, pipeline.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, push_size, push);
	vkCmdDispatch(cb_, groups_x, groups_y, groups_z);
}

void Recorder::compute_barrier()
{
	VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
	mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
	mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
	vkCmdPipelineBarrier(cb_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
			     0, 1, &mb, 0, nullptr, 0, nullptr);
}

} // namespace flaxdrm::rt
