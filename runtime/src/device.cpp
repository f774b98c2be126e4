#include "device.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "pipeline_cache.hpp"
#include "vk_util.hpp"

namespace flaxdrm::rt {

namespace {

const char* const kValidationLayer = "VK_LAYER_KHRONOS_validation";

VKAPI_ATTR VkBool32 VKAPI_CALL debug_callback(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
					      VkDebugUtilsMessageTypeFlagsEXT,
					      const VkDebugUtilsMessengerCallbackDataEXT* data, void*)
{
	if (severity >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT)
		std::fprintf(stderr, "flaxdrm runtime: vulkan: %s\n", data->pMessage);
	return VK_FALSE;
}

int type_rank(VkPhysicalDeviceType t)
{
	switch (t) {
	case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
		return 4;
	case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
		return 3;
	case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
		return 2;
	case VK_PHYSICAL_DEVICE_TYPE_CPU:
		return 1;
	default:
		return 0;
	}
}

bool has_layer(const char* name)
{
	uint32_t n = 0;
	vkEnumerateInstanceLayerProperties(&n, nullptr);
	std::vector<VkLayerProperties> layers(n);
	vkEnumerateInstanceLayerProperties(&n, layers.data());
	for (const auto& l : layers)
		if (!std::strcmp(l.layerName, name))
			return true;
	return false;
}

bool has_instance_extension(const char* name)
{
	uint32_t n = 0;
	vkEnumerateInstanceExtensionProperties(nullptr, &n, nullptr);
	std::vector<VkExtensionProperties> exts(n);
	vkEnumerateInstanceExtensionProperties(nullptr, &n, exts.data());
	for (const auto& e : exts)
		if (!std::strcmp(e.extensionName, name))
			return true;
	return false;
}

// A compute-capable queue family, preferring one with timestamps; -1 if none.
int compute_queue_family(VkPhysicalDevice pd, uint64_t* timestamp_bits)
{
	uint32_t n = 0;
	vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, nullptr);
	std::vector<VkQueueFamilyProperties> fams(n);
	vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, fams.data());
	int best = -1;
	for (uint32_t i = 0; i < n; i++) {
		if (!(fams[i].queueFlags & VK_QUEUE_COMPUTE_BIT) || !fams[i].queueCount)
			continue;
		if (best < 0 || (fams[i].timestampValidBits && !fams[best].timestampValidBits))
			best = int(i);
	}
	if (best >= 0 && timestamp_bits)
		*timestamp_bits = fams[best].timestampValidBits;
	return best;
}

} // namespace

DeviceImpl::DeviceImpl(const DeviceOptions& options)
{
	try {
		create_instance(options);
		pick_physical_device(options);
		create_device();
		pipelines_ = std::make_unique<PipelineCache>(*this);
	} catch (...) {
		if (device_)
			vkDestroyDevice(device_, nullptr);
		if (messenger_) {
			auto destroy = reinterpret_cast<PFN_vkDestroyDebugUtilsMessengerEXT>(
				vkGetInstanceProcAddr(instance_, "vkDestroyDebugUtilsMessengerEXT"));
			if (destroy)
				destroy(instance_, messenger_, nullptr);
		}
		if (instance_)
			vkDestroyInstance(instance_, nullptr);
		throw;
	}
}

DeviceImpl::~DeviceImpl()
{
	if (device_)
		vkDeviceWaitIdle(device_);
	pipelines_.reset();
	if (device_)
		vkDestroyDevice(device_, nullptr);
	if (messenger_) {
		auto destroy = reinterpret_cast<PFN_vkDestroyDebugUtilsMessengerEXT>(
			vkGetInstanceProcAddr(instance_, "vkDestroyDebugUtilsMessengerEXT"));
		if (destroy)
			destroy(instance_, messenger_, nullptr);
	}
	if (instance_)
		vkDestroyInstance(instance_, nullptr);
}

void DeviceImpl::create_instance(const DeviceOptions& options)
{
	uint32_t api = 0;
	if (vkEnumerateInstanceVersion(&api) != VK_SUCCESS || api < VK_API_VERSION_1_2)
		fail(-ENODEV, "Vulkan 1.2 instance not available");

	std::vector<const char*> layers;
	std::vector<const char*> extensions;
	bool debug = false;
	if (options.enable_validation) {
		if (has_layer(kValidationLayer))
			layers.push_back(kValidationLayer);
		else
			std::fprintf(stderr, "flaxdrm runtime: %s not installed, running without validation\n",
				     kValidationLayer);
		if (has_instance_extension(VK_EXT_DEBUG_UTILS_EXTENSION_NAME)) {
			extensions.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
			debug = true;
		}
	}

	VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
	app.pApplicationName = "flaxdrm";
	app.pEngineName = "flaxdrm-runtime";
	app.apiVersion = VK_API_VERSION_1_2;
	VkInstanceCreateInfo ci{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
	ci.pApplicationInfo = &app;
	ci.enabledLayerCount = uint32_t(layers.size());
	ci.ppEnabledLayerNames = layers.data();
	ci.enabledExtensionCount = uint32_t(extensions.size());
	ci.ppEnabledExtensionNames = extensions.data();
	vk_check(vkCreateInstance(&ci, nullptr, &instance_), "vkCreateInstance");

	if (debug) {
		auto create = reinterpret_cast<PFN_vkCreateDebugUtilsMessengerEXT>(
			vkGetInstanceProcAddr(instance_, "vkCreateDebugUtilsMessengerEXT"));
		VkDebugUtilsMessengerCreateInfoEXT mi{VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
		mi.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
				     VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
		mi.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
				 VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
				 VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
		mi.pfnUserCallback = debug_callback;
		if (create)
			create(instance_, &mi, nullptr, &messenger_);
	}
}

void DeviceImpl::pick_physical_device(const DeviceOptions& options)
{
	uint32_t n = 0;
	vk_check(vkEnumeratePhysicalDevices(instance_, &n, nullptr), "vkEnumeratePhysicalDevices");
	std::vector<VkPhysicalDevice> devices(n);
	vk_check(vkEnumeratePhysicalDevices(instance_, &n, devices.data()), "vkEnumeratePhysicalDevices");

	// Usable: Vulkan 1.2 and a compute queue. Among those, a name match
	// wins, then the device type (discrete > integrated > virtual > CPU),
	// then enumeration order.
	int best_score = -1;
	for (VkPhysicalDevice pd : devices) {
		VkPhysicalDeviceProperties p;
		vkGetPhysicalDeviceProperties(pd, &p);
		if (p.apiVersion < VK_API_VERSION_1_2 || compute_queue_family(pd, nullptr) < 0)
			continue;
		int score = type_rank(p.deviceType);
		if (!options.preferred_name.empty() &&
		    std::string(p.deviceName).find(options.preferred_name) != std::string::npos)
			score += 100;
		if (score > best_score) {
			best_score = score;
			physical_ = pd;
		}
	}
	if (!physical_)
		fail(-ENODEV, "no Vulkan 1.2 device with a compute queue");

	uint64_t ts_bits = 0;
	queue_family_ = uint32_t(compute_queue_family(physical_, &ts_bits));
	vkGetPhysicalDeviceProperties(physical_, &props_);
	vkGetPhysicalDeviceMemoryProperties(physical_, &mem_props_);

	uint32_t n_ext = 0;
	vkEnumerateDeviceExtensionProperties(physical_, nullptr, &n_ext, nullptr);
	std::vector<VkExtensionProperties> exts(n_ext);
	vkEnumerateDeviceExtensionProperties(physical_, nullptr, &n_ext, exts.data());
	for (const auto& e : exts)
		if (!std::strcmp(e.extensionName, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME) &&
		    !options.disable_push_descriptors)
			has_push_descriptor_ext_ = true;

	VkPhysicalDeviceSubgroupProperties subgroup{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
	VkPhysicalDeviceVulkan12Properties p12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_PROPERTIES};
	subgroup.pNext = &p12;
	VkPhysicalDeviceProperties2 p2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
	p2.pNext = &subgroup;
	vkGetPhysicalDeviceProperties2(physical_, &p2);

	if (ts_bits && props_.limits.timestampPeriod > 0)
		timestamp_mask_ = ts_bits >= 64 ? ~0ull : (1ull << ts_bits) - 1;
	VkPhysicalDeviceFeatures features{};
	vkGetPhysicalDeviceFeatures(physical_, &features);
	pipeline_statistics_ = features.pipelineStatisticsQuery == VK_TRUE;

	// f16 needs arithmetic (shaderFloat16) and 16-bit storage buffers.
	VkPhysicalDeviceVulkan11Features f11{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
	VkPhysicalDeviceVulkan12Features f12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
	f11.pNext = &f12;
	VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
	f2.pNext = &f11;
	vkGetPhysicalDeviceFeatures2(physical_, &f2);
	const char* no_f16 = std::getenv("FLAXDRM_DISABLE_F16");
	f16_ = f12.shaderFloat16 && f11.storageBuffer16BitAccess && f11.uniformAndStorageBuffer16BitAccess &&
	       !options.disable_f16 && !(no_f16 && *no_f16 && std::strcmp(no_f16, "0") != 0);

	// Unified when the device-local heap is host-visible and coherent:
	// every tensor is then mapped, no staging copies.
	const VkMemoryPropertyFlags want = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT |
					   VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
					   VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
	bool host_visible_local = false;
	for (uint32_t i = 0; i < mem_props_.memoryTypeCount; i++)
		if ((mem_props_.memoryTypes[i].propertyFlags & want) == want)
			host_visible_local = true;
	unified_memory_ = host_visible_local && !options.force_staging &&
			  (props_.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU ||
			   props_.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU);

	cpu_kernels_ = props_.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU && !options.disable_cpu_kernels;

	info_.name = props_.deviceName;
	info_.driver = std::string(p12.driverName) + " (" + p12.driverInfo + ")";
	info_.api_version = props_.apiVersion;
	info_.vendor_id = props_.vendorID;
	info_.subgroup_size = subgroup.subgroupSize;
	info_.timestamps = timestamp_mask_ != 0;
	info_.pipeline_statistics = pipeline_statistics_;
	info_.f16 = f16_;
}

void DeviceImpl::create_device()
{
	const float priority = 1.0f;
	VkDeviceQueueCreateInfo qci{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
	qci.queueFamilyIndex = queue_family_;
	qci.queueCount = 1;
	qci.pQueuePriorities = &priority;

	std::vector<const char*> extensions;
	if (has_push_descriptor_ext_)
		extensions.push_back(VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME);

	VkDeviceCreateInfo ci{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
	ci.queueCreateInfoCount = 1;
	ci.pQueueCreateInfos = &qci;
	ci.enabledExtensionCount = uint32_t(extensions.size());
	ci.ppEnabledExtensionNames = extensions.data();
	VkPhysicalDeviceFeatures features{};
	features.pipelineStatisticsQuery = pipeline_statistics_ ? VK_TRUE : VK_FALSE;
	ci.pEnabledFeatures = &features;
	VkPhysicalDeviceVulkan11Features f11{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
	VkPhysicalDeviceVulkan12Features f12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
	if (f16_) {
		f11.storageBuffer16BitAccess = VK_TRUE;
		f11.uniformAndStorageBuffer16BitAccess = VK_TRUE;
		f12.shaderFloat16 = VK_TRUE;
		f11.pNext = &f12;
		ci.pNext = &f11;
	}
	vk_check(vkCreateDevice(physical_, &ci, nullptr, &device_), "vkCreateDevice");
	vkGetDeviceQueue(device_, queue_family_, 0, &queue_);
	if (has_push_descriptor_ext_)
		cmd_push_descriptor_set_ = reinterpret_cast<PFN_vkCmdPushDescriptorSetKHR>(
			vkGetDeviceProcAddr(device_, "vkCmdPushDescriptorSetKHR"));
}

VkResult DeviceImpl::submit(const VkSubmitInfo& submit, VkFence fence)
{
	std::lock_guard<std::mutex> lock(queue_mutex_);
	return vkQueueSubmit(queue_, 1, &submit, fence);
}

DeviceImpl& device_impl(Device& device)
{
	auto* impl = dynamic_cast<DeviceImpl*>(&device);
	if (!impl)
		fail(-EINVAL, "not a device created by rt::Device::create");
	return *impl;
}

std::unique_ptr<Device> Device::create(const DeviceOptions& options)
{
	return std::make_unique<DeviceImpl>(options);
}

} // namespace flaxdrm::rt
