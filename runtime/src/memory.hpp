// Buffers and device memory.
//
// One path for every device: a tensor lives in a device buffer. Where the
// device-local memory is host-visible and coherent (CPU devices such as
// lavapipe, integrated GPUs) the buffer is mapped and the host copies in and
// out directly; elsewhere `mapped()` is null and the executor goes through a
// staging buffer with copy commands in the same command buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include <vulkan/vulkan.h>

namespace flaxdrm::rt {

class DeviceImpl;

enum class BufferKind {
	Device,   // storage buffer for tensors; mapped only on unified memory
	Staging,  // host-visible, coherent transfer source/destination; always mapped
};

class Buffer {
public:
	Buffer() = default;
	Buffer(DeviceImpl& device, VkDeviceSize size, BufferKind kind);
	~Buffer() { reset(); }
	Buffer(Buffer&& o) noexcept { *this = std::move(o); }
	Buffer& operator=(Buffer&& o) noexcept;
	Buffer(const Buffer&) = delete;
	Buffer& operator=(const Buffer&) = delete;

	void reset();
	explicit operator bool() const { return buffer_ != VK_NULL_HANDLE; }
	VkBuffer vk() const { return buffer_; }
	VkDeviceSize size() const { return size_; }
	// Host pointer to the whole buffer, or null when not host-visible.
	std::byte* mapped() const { return mapped_; }
	// Unique for the executable's lifetime, kept by moves, 0 when empty:
	// recorded command buffers remember which buffers they use by id,
	// since a VkBuffer handle may be reused after the buffer is destroyed.
	uint64_t id() const { return id_; }

private:
	VkDevice device_ = VK_NULL_HANDLE;
	VkBuffer buffer_ = VK_NULL_HANDLE;
	VkDeviceMemory memory_ = VK_NULL_HANDLE;
	VkDeviceSize size_ = 0;
	std::byte* mapped_ = nullptr;
	uint64_t id_ = 0;
};

// A buffer that is re-used from run to run and grows when a run needs more;
// sub-ranges are laid out by the caller.
class Arena {
public:
	explicit Arena(BufferKind kind) : kind_(kind) {}
	// Makes the buffer at least `size` bytes (contents are not kept).
	void reserve(DeviceImpl& device, VkDeviceSize size);
	Buffer& buffer() { return buffer_; }
	void release() { buffer_.reset(); }

private:
	BufferKind kind_;
	Buffer buffer_;
};

} // namespace flaxdrm::rt
