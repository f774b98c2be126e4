#include "memory.hpp"

#include <algorithm>
#include <atomic>

#include "device.hpp"
#include "vk_util.hpp"

namespace flaxdrm::rt {

namespace {

// First memory type allowed by `bits` with all of `want`, or -1.
int find_type(const VkPhysicalDeviceMemoryProperties& mp, uint32_t bits, VkMemoryPropertyFlags want)
{
	for (uint32_t i = 0; i < mp.memoryTypeCount; i++)
		if ((bits & (1u << i)) && (mp.memoryTypes[i].propertyFlags & want) == want)
			return int(i);
	return -1;
}

constexpr VkMemoryPropertyFlags kLocal = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
constexpr VkMemoryPropertyFlags kHost = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
					VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;

} // namespace

Buffer::Buffer(DeviceImpl& device, VkDeviceSize size, BufferKind kind)
	: device_(device.vk()), size_(size)
{
	static std::atomic<uint64_t> next_id{1};
	id_ = next_id.fetch_add(1, std::memory_order_relaxed);

	VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
	bci.size = size;
	bci.usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
	if (kind == BufferKind::Device)
		bci.usage |= VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT;
	bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
	vk_check(vkCreateBuffer(device_, &bci, nullptr, &buffer_), "vkCreateBuffer");

	try {
		VkMemoryRequirements req;
		vkGetBufferMemoryRequirements(device_, buffer_, &req);
		const auto& mp = device.memory_properties();
		bool map = false;
		int type = -1;
		if (kind == BufferKind::Staging) {
			type = find_type(mp, req.memoryTypeBits, kHost | VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
			if (type < 0)
				type = find_type(mp, req.memoryTypeBits, kHost);
			map = true;
		} else if (device.unified_memory()) {
			type = find_type(mp, req.memoryTypeBits, kLocal | kHost);
			if (type < 0)
				type = find_type(mp, req.memoryTypeBits, kHost);
			map = true;
		} else {
			type = find_type(mp, req.memoryTypeBits, kLocal);
			if (type < 0)
				type = find_type(mp, req.memoryTypeBits, 0);
		}
		if (type < 0)
			fail(-ENOMEM, "no suitable Vulkan memory type");

		VkMemoryAllocateInfo mai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
		mai.allocationSize = req.size;
		mai.memoryTypeIndex = uint32_t(type);
		vk_check(vkAllocateMemory(device_, &mai, nullptr, &memory_), "vkAllocateMemory");
		vk_check(vkBindBufferMemory(device_, buffer_, memory_, 0), "vkBindBufferMemory");
		if (map) {
			void* p = nullptr;
			vk_check(vkMapMemory(device_, memory_, 0, VK_WHOLE_SIZE, 0, &p), "vkMapMemory");
			mapped_ = static_cast<std::byte*>(p);
		}
	} catch (...) {
		reset();
		throw;
	}
}

Buffer& Buffer::operator=(Buffer&& o) noexcept
{
	if (this != &o) {
		reset();
		std::swap(device_, o.device_);
		std::swap(buffer_, o.buffer_);
		std::swap(memory_, o.memory_);
		std::swap(size_, o.size_);
		std::swap(mapped_, o.mapped_);
		std::swap(id_, o.id_);
	}
	return *this;
}

void Buffer::reset()
{
	if (buffer_)
		vkDestroyBuffer(device_, buffer_, nullptr);
	if (memory_)
		vkFreeMemory(device_, memory_, nullptr); // unmaps implicitly
	buffer_ = VK_NULL_HANDLE;
	memory_ = VK_NULL_HANDLE;
	mapped_ = nullptr;
	size_ = 0;
	id_ = 0;
}

void Arena::reserve(DeviceImpl& device, VkDeviceSize size)
{
	if (size == 0 || (buffer_ && buffer_.size() >= size))
		return;
	// Grow by half again so that a slowly growing workload does not
	// reallocate on every run; fall back to the exact size if that fails.
	const VkDeviceSize old = buffer_.size();
	const VkDeviceSize roomy = align_up(std::max(size, old + old / 2), 1 << 16);
	buffer_.reset();
	try {
		buffer_ = Buffer(device, roomy, kind_);
	} catch (const Error&) {
		if (roomy == size)
			throw;
		buffer_ = Buffer(device, size, kind_);
	}
}

} // namespace flaxdrm::rt
