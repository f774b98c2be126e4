#include "pipeline_cache.hpp"

#include "device.hpp"
#include "flaxdrm/shaders.hpp"
#include "vk_util.hpp"

namespace flaxdrm::rt {

PipelineCache::PipelineCache(DeviceImpl& device) : device_(device)
{
	VkPipelineCacheCreateInfo ci{VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
	vk_check(vkCreatePipelineCache(device_.vk(), &ci, nullptr, &cache_), "vkCreatePipelineCache");
}

PipelineCache::~PipelineCache()
{
	VkDevice dev = device_.vk();
	for (auto& [key, p] : pipelines_)
		vkDestroyPipeline(dev, p->pipeline, nullptr);
	for (auto& [key, l] : layouts_)
		vkDestroyPipelineLayout(dev, l, nullptr);
	for (auto& [n, l] : set_layouts_)
		vkDestroyDescriptorSetLayout(dev, l, nullptr);
	for (auto& [name, m] : modules_)
		vkDestroyShaderModule(dev, m, nullptr);
	vkDestroyPipelineCache(dev, cache_, nullptr);
}

std::size_t PipelineCache::size() const
{
	std::lock_guard<std::mutex> lock(mutex_);
	return pipelines_.size();
}

VkShaderModule PipelineCache::module(std::string_view shader)
{
	auto it = modules_.find(shader);
	if (it != modules_.end())
		return it->second;
	std::span<const uint32_t> code = shaders::find(shader);
	if (code.empty())
		fail(-EINVAL, "no embedded shader named '" + std::string(shader) + "'");
	VkShaderModuleCreateInfo ci{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
	ci.codeSize = code.size_bytes();
	ci.pCode = code.data();
	VkShaderModule m;
	vk_check(vkCreateShaderModule(device_.vk(), &ci, nullptr, &m), "vkCreateShaderModule");
	modules_.emplace(std::string(shader), m);
	return m;
}

VkDescriptorSetLayout PipelineCache::set_layout(std::span<const VkDescriptorType> types)
{
	std::vector<VkDescriptorType> key(types.begin(), types.end());
	auto it = set_layouts_.find(key);
	if (it != set_layouts_.end())
		return it->second;
	const uint32_t num_bindings = uint32_t(types.size());
	std::vector<VkDescriptorSetLayoutBinding> bindings(num_bindings);
	for (uint32_t i = 0; i < num_bindings; i++) {
		bindings[i].binding = i;
		bindings[i].descriptorType = types[i];
		bindings[i].descriptorCount = 1;
		bindings[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
	}
	VkDescriptorSetLayoutCreateInfo ci{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
	if (device_.push_descriptors())
		ci.flags = VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR;
	ci.bindingCount = num_bindings;
	ci.pBindings = bindings.data();
	VkDescriptorSetLayout l;
	vk_check(vkCreateDescriptorSetLayout(device_.vk(), &ci, nullptr, &l), "vkCreateDescriptorSetLayout");
	set_layouts_.emplace(std::move(key), l);
	return l;
}

const Pipeline& PipelineCache::get(std::string_view shader, std::span<const uint32_t> spec,
				   uint32_t num_bindings, uint32_t push_size)
{
	std::vector<VkDescriptorType> types(num_bindings, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER);
	return get(shader, spec, types, push_size);
}

const Pipeline& PipelineCache::get(std::string_view shader, std::span<const uint32_t> spec,
				   std::span<const VkDescriptorType> types, uint32_t push_size)
{
	std::lock_guard<std::mutex> lock(mutex_);
	Key key{std::string(shader), std::vector<uint32_t>(spec.begin(), spec.end()),
		std::vector<VkDescriptorType>(types.begin(), types.end()), push_size};
	auto it = pipelines_.find(key);
	if (it != pipelines_.end())
		return *it->second;

	if (push_size > device_.limits().maxPushConstantsSize)
		fail(-EINVAL, "push constants of " + std::string(shader) + " exceed the device limit");

	auto p = std::make_unique<Pipeline>();
	p->types = key.types;
	p->push_size = push_size;
	p->set_layout = set_layout(types);
	auto lk = std::make_pair(p->set_layout, push_size);
	auto lit = layouts_.find(lk);
	if (lit == layouts_.end()) {
		VkPushConstantRange range{VK_SHADER_STAGE_COMPUTE_BIT, 0, push_size};
		VkPipelineLayoutCreateInfo ci{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
		ci.setLayoutCount = 1;
		ci.pSetLayouts = &p->set_layout;
		ci.pushConstantRangeCount = push_size ? 1 : 0;
		ci.pPushConstantRanges = &range;
		VkPipelineLayout layout;
		vk_check(vkCreatePipelineLayout(device_.vk(), &ci, nullptr, &layout), "vkCreatePipelineLayout");
		lit = layouts_.emplace(lk, layout).first;
	}
	p->layout = lit->second;

	std::vector<VkSpecializationMapEntry> entries(spec.size());
	for (uint32_t i = 0; i < spec.size(); i++)
		entries[i] = {i, uint32_t(i * sizeof(uint32_t)), sizeof(uint32_t)};
	VkSpecializationInfo si{};
	si.mapEntryCount = uint32_t(entries.size());
	si.pMapEntries = entries.data();
	si.dataSize = spec.size_bytes();
	si.pData = spec.data();

	VkComputePipelineCreateInfo ci{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
	ci.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
	ci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
	ci.stage.module = module(shader);
	ci.stage.pName = "main";
	ci.stage.pSpecializationInfo = spec.empty() ? nullptr : &si;
	ci.layout = p->layout;
	vk_check(vkCreateComputePipelines(device_.vk(), cache_, 1, &ci, nullptr, &p->pipeline),
		 "vkCreateComputePipelines");
	return *pipelines_.emplace(std::move(key), std::move(p)).first->second;
}

} // namespace flaxdrm::rt
