// The program executor: checks a program with the shared rules, lays out
// memory, uploads, records every op into one command buffer with barriers
// between dependent ops, submits, waits with a bound, reads back. The
// command buffer is kept and submitted again by later runs of the same
// program whose memory layout is the same: only the data moves then.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "device.hpp"
#include "flaxdrm_rules.h"
#include "kernel.hpp"
#include "memory.hpp"
#include "pipeline_cache.hpp"
#include "recorder.hpp"
#include "vk_util.hpp"

namespace flaxdrm::rt {

namespace {

const char* dtype_name(uint32_t dtype)
{
	switch (dtype) {
	case FLAXDRM_DTYPE_F32: return "f32";
	case FLAXDRM_DTYPE_F16: return "f16";
	case FLAXDRM_DTYPE_BF16: return "bf16";
	case FLAXDRM_DTYPE_I32: return "i32";
	case FLAXDRM_DTYPE_I64: return "i64";
	default: return "dtype?";
	}
}

const char* kind_name(uint32_t kind)
{
	switch (kind) {
	case FLAXDRM_TENSOR_INPUT: return "input";
	case FLAXDRM_TENSOR_OUTPUT: return "output";
	case FLAXDRM_TENSOR_TEMP: return "temp";
	case FLAXDRM_TENSOR_VARIABLE: return "variable";
	default: return "kind?";
	}
}

std::string fixed_string(const char* s, std::size_t len)
{
	return std::string(s, strnlen(s, len));
}

// "tensor 3 (variable params/kernel f32[32, 10])"
std::string describe_tensor(std::span<const drm_flaxdrm_tensor> tensors, uint32_t i)
{
	std::string s = "tensor " + std::to_string(i);
	if (i >= tensors.size())
		return s;
	const drm_flaxdrm_tensor& t = tensors[i];
	s += " (";
	s += kind_name(t.kind);
	if (t.kind == FLAXDRM_TENSOR_VARIABLE)
		s += " " + fixed_string(t.collection, sizeof t.collection) + "/" +
		     fixed_string(t.name, sizeof t.name);
	s += std::string(" ") + dtype_name(t.dtype) + "[";
	for (uint32_t d = 0; d < t.rank && d < FLAXDRM_MAX_RANK; d++)
		s += (d ? ", " : "") + std::to_string(t.dims[d]);
	return s + "])";
}

std::string describe_op(std::span<const drm_flaxdrm_op> ops, uint32_t i)
{
	std::string s = "op " + std::to_string(i);
	if (i < ops.size())
		s += std::string(" (") + flaxdrm_op_name(ops[i].opcode) + ")";
	return s;
}

bool same_shape(const drm_flaxdrm_tensor& a, const drm_flaxdrm_tensor& b)
{
	return a.dtype == b.dtype && a.rank == b.rank && !std::memcmp(a.dims, b.dims, sizeof a.dims);
}

// The views of an op's inputs and outputs.
void op_views(std::span<const TensorView> views, const drm_flaxdrm_op& op, std::vector<TensorView>& in,
	      std::vector<TensorView>& out)
{
	in.clear();
	out.clear();
	for (uint32_t j = 0; j < op.num_inputs; j++)
		in.push_back(views[op.inputs[j]]);
	for (uint32_t j = 0; j < op.num_outputs; j++)
		out.push_back(views[op.outputs[j]]);
}

// Where TEMP tensors live in the temporaries arena. Temporaries whose
// lifetimes (from the op that writes one to the last op that reads it) do
// not overlap share memory: placed largest first, each at the lowest
// aligned offset clear of every placed temporary it is alive with.
struct TempPlan {
	std::vector<VkDeviceSize> offset;          // per tensor; TEMPs only
	std::vector<std::vector<uint32_t>> shares; // per tensor: TEMPs with overlapping bytes
	VkDeviceSize bytes = 0;
};

TempPlan plan_temps(std::span<const drm_flaxdrm_tensor> tensors, std::span<const drm_flaxdrm_op> ops,
		    VkDeviceSize align)
{
	const uint32_t nt = uint32_t(tensors.size());
	constexpr uint32_t kNever = FLAXDRM_INDEX_NONE;
	std::vector<uint32_t> first(nt, kNever), last(nt, 0);
	for (uint32_t i = 0; i < ops.size(); i++) {
		auto use = [&](uint32_t t) {
			first[t] = std::min(first[t], i);
			last[t] = std::max(last[t], i);
		};
		for (uint32_t j = 0; j < ops[i].num_inputs; j++)
			use(ops[i].inputs[j]);
		for (uint32_t j = 0; j < ops[i].num_outputs; j++)
			use(ops[i].outputs[j]);
	}
	TempPlan plan;
	plan.offset.assign(nt, 0);
	plan.shares.resize(nt);
	std::vector<uint32_t> temps; // used TEMPs; an unused one gets no memory
	for (uint32_t i = 0; i < nt; i++)
		if (tensors[i].kind == FLAXDRM_TENSOR_TEMP && first[i] != kNever)
			temps.push_back(i);
	std::vector<VkDeviceSize> size(nt, 0);
	for (uint32_t t : temps)
		size[t] = align_up(flaxdrm_tensor_bytes(&tensors[t]), align);
	std::stable_sort(temps.begin(), temps.end(), [&](uint32_t a, uint32_t b) { return size[a] > size[b]; });

	std::vector<uint32_t> placed;
	std::vector<std::pair<VkDeviceSize, VkDeviceSize>> busy; // [begin, end) of live neighbours
	for (uint32_t t : temps) {
		busy.clear();
		for (uint32_t u : placed)
			if (first[u] <= last[t] && first[t] <= last[u])
				busy.emplace_back(plan.offset[u], plan.offset[u] + size[u]);
		std::sort(busy.begin(), busy.end());
		VkDeviceSize at = 0;
		for (const auto& [b, e] : busy) {
			if (at + size[t] <= b)
				break;
			at = std::max(at, e);
		}
		plan.offset[t] = at;
		plan.bytes = std::max(plan.bytes, at + size[t]);
		for (uint32_t u : placed) {
			if (plan.offset[u] < at + size[t] && at < plan.offset[u] + size[u]) {
				plan.shares[t].push_back(u);
				plan.shares[u].push_back(t);
			}
		}
		placed.push_back(t);
	}
	return plan;
}

// What a recorded command buffer bakes in about one tensor's memory: the
// buffer (by id), the offset in it, and the staging copies recorded for it.
struct BoundTensor {
	uint64_t buffer_id = 0;
	VkDeviceSize offset = 0;
	VkDeviceSize staging = 0;
	bool staged_upload = false;
	bool staged_readback = false;
	bool operator==(const BoundTensor&) const = default;
};

// One program's command buffer, recorded once and submitted again by every
// later run of the same program (compared byte for byte: tensor table and
// ops, dropout seeds and all) whose memory is where the recording put it.
// Everything the commands refer to is owned here or outlives the
// recording: its descriptor sets and buffer views, its query pools; the
// buffers are the executor's, identified by id so that a buffer that was
// replaced (an arena grew, a variable was reloaded) forces a new recording.
class Recording {
public:
	Recording(DeviceImpl& device, VkCommandPool pool) : descriptors(device), dev_(device), pool_(pool)
	{
		VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
		ai.commandPool = pool;
		ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
		ai.commandBufferCount = 1;
		vk_check(vkAllocateCommandBuffers(dev_.vk(), &ai, &cb), "vkAllocateCommandBuffers");
	}
	~Recording()
	{
		if (timestamps)
			vkDestroyQueryPool(dev_.vk(), timestamps, nullptr);
		if (invocations)
			vkDestroyQueryPool(dev_.vk(), invocations, nullptr);
		vkFreeCommandBuffers(dev_.vk(), pool_, 1, &cb);
	}
	Recording(const Recording&) = delete;
	Recording& operator=(const Recording&) = delete;

	bool same_program(std::span<const drm_flaxdrm_tensor> t, std::span<const drm_flaxdrm_op> o) const
	{
		return t.size() == tensors.size() && o.size() == ops.size() &&
		       !std::memcmp(t.data(), tensors.data(), t.size_bytes()) &&
		       !std::memcmp(o.data(), ops.data(), o.size_bytes());
	}

	// A timestamp pool of at least n queries.
	void reserve_timestamps(uint32_t n)
	{
		if (timestamp_capacity >= n)
			return;
		if (timestamps)
			vkDestroyQueryPool(dev_.vk(), timestamps, nullptr);
		timestamps = VK_NULL_HANDLE;
		timestamp_capacity = 0;
		VkQueryPoolCreateInfo qci{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
		qci.queryType = VK_QUERY_TYPE_TIMESTAMP;
		qci.queryCount = std::max<uint32_t>(n, 64);
		vk_check(vkCreateQueryPool(dev_.vk(), &qci, nullptr, &timestamps), "vkCreateQueryPool");
		timestamp_capacity = qci.queryCount;
	}

	void reserve_invocations()
	{
		if (invocations)
			return;
		VkQueryPoolCreateInfo qci{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
		qci.queryType = VK_QUERY_TYPE_PIPELINE_STATISTICS;
		qci.queryCount = 1;
		qci.pipelineStatistics = VK_QUERY_PIPELINE_STATISTIC_COMPUTE_SHADER_INVOCATIONS_BIT;
		vk_check(vkCreateQueryPool(dev_.vk(), &qci, nullptr, &invocations), "vkCreateQueryPool");
	}

	VkCommandBuffer cb = VK_NULL_HANDLE;
	DescriptorPools descriptors;
	VkQueryPool timestamps = VK_NULL_HANDLE;
	uint32_t timestamp_capacity = 0;
	VkQueryPool invocations = VK_NULL_HANDLE;

	// The program and what follows from it alone.
	std::vector<drm_flaxdrm_tensor> tensors;
	std::vector<drm_flaxdrm_op> ops;
	std::vector<uint32_t> writer; // per tensor: the op that writes it, or FLAXDRM_INDEX_NONE
	TempPlan temps;

	// The memory the commands were recorded against.
	std::vector<BoundTensor> bound;
	uint64_t staging_id = 0;
	bool executable = false; // cb holds a complete recording of the above
	uint32_t op_barriers = 0; // ops recorded behind a barrier
	uint64_t last_use = 0;

private:
	DeviceImpl& dev_;
	VkCommandPool pool_;
};

class ExecutorImpl final : public Executor {
public:
	ExecutorImpl(DeviceImpl& device, const ExecutorOptions& options);
	~ExecutorImpl() override;

	void load_variable(uint64_t key, uint64_t generation, const drm_flaxdrm_tensor& desc,
			   const void* data) override;
	void drop_variable(uint64_t key) override;
	std::size_t resident_variables() const override { return resident_.size(); }
	RunStats run(std::span<const drm_flaxdrm_tensor> tensors, std::span<const drm_flaxdrm_op> ops,
		     std::span<TensorMemory> memory) override;
	RecordingStats recording_stats() const override
	{
		return {recordings_made_, replays_, recordings_.size()};
	}

private:
	struct Resident {
		uint64_t generation = 0;
		drm_flaxdrm_tensor desc{};
		Buffer buffer;
	};

	// Where one tensor lives during a run.
	struct Slot {
		Buffer* buffer = nullptr;
		VkDeviceSize offset = 0;
		VkDeviceSize size = 0;
		bool upload = false;    // host -> device before the ops
		bool readback = false;  // device -> host after the ops
		VkDeviceSize staging = 0;
	};

	// Programs whose recordings are kept; the least recently run one is
	// recorded over when another program comes.
	static constexpr std::size_t kMaxRecordings = 16;

	// The recording of this program, or null.
	Recording* find_recording(std::span<const drm_flaxdrm_tensor> tensors, std::span<const drm_flaxdrm_op> ops);
	// Checks a program with the shared rules and the registry and gives it
	// a recording (not yet recorded).
	Recording& admit(std::span<const drm_flaxdrm_tensor> tensors, std::span<const drm_flaxdrm_op> ops);
	void record(Recording& rec, std::span<const Slot> slots);
	void record_commands(Recording& rec, std::span<const Slot> slots, Recorder& recorder,
			     std::span<const TensorView> views);
	void settle_pending();
	void begin(VkCommandBuffer cb, VkCommandBufferUsageFlags flags);
	// Submits a command buffer and waits for it with the bound.
	void submit_and_wait(VkCommandBuffer cb, std::vector<Buffer>& in_flight);
	void retire(Buffer&& b);

	DeviceImpl& dev_;
	ExecutorOptions options_;
	VkCommandPool pool_ = VK_NULL_HANDLE;
	VkCommandBuffer upload_cb_ = VK_NULL_HANDLE; // load_variable's staging copies
	VkFence fence_ = VK_NULL_HANDLE;
	std::vector<std::unique_ptr<Recording>> recordings_;
	uint64_t use_clock_ = 0;
	uint64_t recordings_made_ = 0;
	uint64_t replays_ = 0;
	Arena temps_{BufferKind::Device};
	Arena io_{BufferKind::Device};
	Arena staging_{BufferKind::Staging};
	std::unordered_map<uint64_t, Resident> resident_;
	// A submission that timed out may still be running: its fence is
	// unsignalled and the buffers it uses must outlive it.
	bool pending_ = false;
	std::vector<Buffer> graveyard_;
};

ExecutorImpl::ExecutorImpl(DeviceImpl& device, const ExecutorOptions& options)
	: dev_(device), options_(options)
{
	VkCommandPoolCreateInfo pci{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
	// Recordings are kept and re-recorded one by one.
	pci.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
	pci.queueFamilyIndex = dev_.queue_family();
	vk_check(vkCreateCommandPool(dev_.vk(), &pci, nullptr, &pool_), "vkCreateCommandPool");
	try {
		VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
		ai.commandPool = pool_;
		ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
		ai.commandBufferCount = 1;
		vk_check(vkAllocateCommandBuffers(dev_.vk(), &ai, &upload_cb_), "vkAllocateCommandBuffers");
		VkFenceCreateInfo fci{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
		vk_check(vkCreateFence(dev_.vk(), &fci, nullptr, &fence_), "vkCreateFence");
	} catch (...) {
		vkDestroyCommandPool(dev_.vk(), pool_, nullptr);
		throw;
	}
}

ExecutorImpl::~ExecutorImpl()
{
	if (pending_ &&
	    vkWaitForFences(dev_.vk(), 1, &fence_, VK_TRUE, uint64_t(options_.timeout_ms) * 1000000) != VK_SUCCESS) {
		// The device never finished: leave everything it may touch
		// alive rather than free memory under a running shader.
		auto* leak = new std::vector<Buffer>(std::move(graveyard_));
		for (auto& [key, r] : resident_)
			leak->push_back(std::move(r.buffer));
		leak->push_back(std::move(temps_.buffer()));
		leak->push_back(std::move(io_.buffer()));
		leak->push_back(std::move(staging_.buffer()));
		for (auto& rec : recordings_)
			(void)rec.release(); // descriptor sets, views, query pools
		return;
	}
	recordings_.clear();
	vkDestroyFence(dev_.vk(), fence_, nullptr);
	vkDestroyCommandPool(dev_.vk(), pool_, nullptr);
}

void ExecutorImpl::settle_pending()
{
	if (!pending_)
		return;
	VkResult r = vkWaitForFences(dev_.vk(), 1, &fence_, VK_TRUE, uint64_t(options_.timeout_ms) * 1000000);
	if (r == VK_TIMEOUT)
		fail(-ETIMEDOUT, "the device is still busy with a run that timed out");
	vk_check(r, "vkWaitForFences");
	vk_check(vkResetFences(dev_.vk(), 1, &fence_), "vkResetFences");
	graveyard_.clear();
	pending_ = false;
}

void ExecutorImpl::retire(Buffer&& b)
{
	if (pending_)
		graveyard_.push_back(std::move(b));
	else
		b.reset();
}

void ExecutorImpl::begin(VkCommandBuffer cb, VkCommandBufferUsageFlags flags)
{
	// The pool's RESET_COMMAND_BUFFER_BIT: beginning resets this one.
	VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
	bi.flags = flags;
	vk_check(vkBeginCommandBuffer(cb, &bi), "vkBeginCommandBuffer");
}

void ExecutorImpl::submit_and_wait(VkCommandBuffer cb, std::vector<Buffer>& in_flight)
{
	VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
	si.commandBufferCount = 1;
	si.pCommandBuffers = &cb;
	vk_check(dev_.submit(si, fence_), "vkQueueSubmit");
	VkResult r = vkWaitForFences(dev_.vk(), 1, &fence_, VK_TRUE, uint64_t(options_.timeout_ms) * 1000000);
	if (r == VK_TIMEOUT) {
		pending_ = true;
		for (Buffer& b : in_flight)
			graveyard_.push_back(std::move(b));
		fail(-ETIMEDOUT, "the device did not finish within " + std::to_string(options_.timeout_ms) + " ms");
	}
	if (r != VK_SUCCESS) {
		// Device lost or worse: nothing more will complete.
		pending_ = true;
		for (Buffer& b : in_flight)
			graveyard_.push_back(std::move(b));
		vk_check(r, "vkWaitForFences");
	}
	vk_check(vkResetFences(dev_.vk(), 1, &fence_), "vkResetFences");
}

void ExecutorImpl::load_variable(uint64_t key, uint64_t generation, const drm_flaxdrm_tensor& desc,
				 const void* data)
{
	settle_pending();
	const uint64_t bytes = flaxdrm_tensor_bytes(&desc);
	if (!bytes)
		fail(-EINVAL, "load_variable: invalid dtype or shape for variable " +
				      fixed_string(desc.collection, sizeof desc.collection) + "/" +
				      fixed_string(desc.name, sizeof desc.name));
	if (!data)
		fail(-EINVAL, "load_variable: no data");
	auto it = resident_.find(key);
	if (it != resident_.end() && it->second.generation == generation && same_shape(it->second.desc, desc))
		return;

	Resident r;
	r.generation = generation;
	r.desc = desc;
	r.buffer = Buffer(dev_, bytes, BufferKind::Device);
	if (r.buffer.mapped()) {
		std::memcpy(r.buffer.mapped(), data, bytes);
	} else {
		staging_.reserve(dev_, bytes);
		std::memcpy(staging_.buffer().mapped(), data, bytes);
		begin(upload_cb_, VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT);
		VkBufferCopy region{0, 0, bytes};
		vkCmdCopyBuffer(upload_cb_, staging_.buffer().vk(), r.buffer.vk(), 1, &region);
		vk_check(vkEndCommandBuffer(upload_cb_), "vkEndCommandBuffer");
		std::vector<Buffer> in_flight;
		in_flight.push_back(std::move(r.buffer));
		submit_and_wait(upload_cb_, in_flight);
		r.buffer = std::move(in_flight[0]);
	}
	if (it != resident_.end()) {
		retire(std::move(it->second.buffer));
		it->second = std::move(r);
	} else {
		resident_.emplace(key, std::move(r));
	}
}

void ExecutorImpl::drop_variable(uint64_t key)
{
	auto it = resident_.find(key);
	if (it == resident_.end())
		return;
	retire(std::move(it->second.buffer));
	resident_.erase(it);
}

Recording* ExecutorImpl::find_recording(std::span<const drm_flaxdrm_tensor> tensors,
					std::span<const drm_flaxdrm_op> ops)
{
	for (auto& rec : recordings_)
		if (rec->same_program(tensors, ops))
			return rec.get();
	return nullptr;
}

Recording& ExecutorImpl::admit(std::span<const drm_flaxdrm_tensor> tensors, std::span<const drm_flaxdrm_op> ops)
{
	const uint32_t nt = uint32_t(tensors.size());
	{
		std::vector<uint8_t> scratch(std::max<std::size_t>(nt, 1));
		uint32_t bad_op = FLAXDRM_INDEX_NONE, bad_tensor = FLAXDRM_INDEX_NONE;
		if (flaxdrm_check_program(tensors.data(), nt, ops.data(), uint32_t(ops.size()), scratch.data(),
					  &bad_op, &bad_tensor)) {
			std::string msg = "invalid program";
			if (bad_op != FLAXDRM_INDEX_NONE)
				msg += ": " + describe_op(ops, bad_op);
			if (bad_tensor != FLAXDRM_INDEX_NONE)
				msg += (bad_op != FLAXDRM_INDEX_NONE ? ", " : ": ") + describe_tensor(tensors, bad_tensor);
			if (bad_op == FLAXDRM_INDEX_NONE && bad_tensor == FLAXDRM_INDEX_NONE)
				msg += ": no tensors or no ops, or too many";
			fail(-EINVAL, msg);
		}
	}
	std::vector<uint32_t> writer(nt, FLAXDRM_INDEX_NONE);
	for (uint32_t i = 0; i < ops.size(); i++) {
		if (!KernelRegistry::instance().find(ops[i].opcode))
			fail(-EINVAL, describe_op(ops, i) + ": not supported by this runtime");
		for (uint32_t j = 0; j < ops[i].num_outputs; j++)
			writer[ops[i].outputs[j]] = std::min(writer[ops[i].outputs[j]], i);
	}

	Recording* rec = nullptr;
	if (recordings_.size() < kMaxRecordings) {
		recordings_.push_back(std::make_unique<Recording>(dev_, pool_));
		rec = recordings_.back().get();
	} else {
		rec = std::min_element(recordings_.begin(), recordings_.end(), [](const auto& a, const auto& b) {
			      return a->last_use < b->last_use;
		      })->get();
	}
	rec->executable = false;
	rec->bound.clear();
	rec->tensors.assign(tensors.begin(), tensors.end());
	rec->ops.assign(ops.begin(), ops.end());
	rec->writer = std::move(writer);
	rec->temps = plan_temps(tensors, ops, std::max<VkDeviceSize>(dev_.limits().minStorageBufferOffsetAlignment, 64));
	return *rec;
}

// Records the whole run: staged uploads, every op with the barriers and
// timestamps between them, staged read-backs. Nothing in it depends on
// the data: that is copied in and out around the submission.
void ExecutorImpl::record(Recording& rec, std::span<const Slot> slots)
{
	rec.executable = false;
	const std::span<const drm_flaxdrm_tensor> tensors = rec.tensors;
	const std::span<const drm_flaxdrm_op> ops = rec.ops;
	const uint32_t nt = uint32_t(tensors.size());

	// ---- kernels' own checks, before anything is recorded
	const KernelRegistry& registry = KernelRegistry::instance();
	std::vector<TensorView> views(nt);
	for (uint32_t i = 0; i < nt; i++)
		views[i] = {i, &tensors[i], slots[i].buffer->vk(), slots[i].offset, slots[i].size};
	rec.descriptors.reset(); // the sets and views of the previous recording
	Recorder recorder(dev_, rec.cb, rec.descriptors);
	std::vector<TensorView> in, out;
	for (uint32_t i = 0; i < ops.size(); i++) {
		op_views(views, ops[i], in, out);
		OpContext ctx{dev_, dev_.pipelines(), recorder, i, ops[i], in, out};
		registry.find(ops[i].opcode)->check(ctx);
	}

	// ---- record
	VkCommandBuffer cb = rec.cb;
	begin(cb, 0); // submitted again by later runs
	try {
		record_commands(rec, slots, recorder, views);
	} catch (...) {
		// Not left in the recording state, where it could not be begun again.
		vkResetCommandBuffer(cb, 0);
		throw;
	}
	rec.executable = true;
	recordings_made_++;
}

void ExecutorImpl::record_commands(Recording& rec, std::span<const Slot> slots, Recorder& recorder,
				   std::span<const TensorView> views)
{
	const std::span<const drm_flaxdrm_op> ops = rec.ops;
	const uint32_t nt = uint32_t(rec.tensors.size());
	const KernelRegistry& registry = KernelRegistry::instance();
	VkCommandBuffer cb = rec.cb;
	std::vector<TensorView> in, out;
	const bool timestamps = dev_.timestamp_mask() != 0;
	const uint32_t num_queries = 2 * uint32_t(ops.size()) + 1;
	if (timestamps) {
		rec.reserve_timestamps(num_queries);
		vkCmdResetQueryPool(cb, rec.timestamps, 0, num_queries);
		vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, rec.timestamps, 0);
	}
	const bool count_invocations = dev_.pipeline_statistics();
	if (count_invocations) {
		rec.reserve_invocations();
		vkCmdResetQueryPool(cb, rec.invocations, 0, 1);
		vkCmdBeginQuery(cb, rec.invocations, 0, 0);
	}

	bool copied = false;
	for (const Slot& s : slots) {
		if (!s.upload || s.buffer->mapped())
			continue;
		VkBufferCopy region{s.staging, s.offset, s.size};
		vkCmdCopyBuffer(cb, staging_.buffer().vk(), s.buffer->vk(), 1, &region);
		copied = true;
	}
	if (copied) {
		VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
		mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
		mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
		vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1,
				     &mb, 0, nullptr, 0, nullptr);
	}

	// Barriers: an op waits for earlier shader work only when it reads a
	// tensor written since the last barrier, or writes one read or
	// written since then. Tensors are tracked by index: distinct tensors
	// have distinct memory except TEMPs that share it, and writing a TEMP
	// also waits for whichever TEMPs with overlapping bytes were touched.
	std::vector<uint8_t> touched(nt, 0); // 1 read, 2 written since the last barrier
	std::vector<uint32_t> touched_list;
	rec.op_barriers = 0;
	for (uint32_t i = 0; i < ops.size(); i++) {
		const drm_flaxdrm_op& op = ops[i];
		bool barrier = false;
		for (uint32_t j = 0; j < op.num_inputs; j++)
			barrier |= (touched[op.inputs[j]] & 2) != 0;
		for (uint32_t j = 0; j < op.num_outputs; j++) {
			barrier |= touched[op.outputs[j]] != 0;
			for (uint32_t u : rec.temps.shares[op.outputs[j]])
				barrier |= touched[u] != 0;
		}
		if (barrier) {
			rec.op_barriers++;
			recorder.compute_barrier();
			for (uint32_t t : touched_list)
				touched[t] = 0;
			touched_list.clear();
		}
		if (timestamps)
			vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, rec.timestamps, 1 + 2 * i);
		op_views(views, op, in, out);
		OpContext ctx{dev_, dev_.pipelines(), recorder, i, op, in, out};
		registry.find(op.opcode)->record(ctx);
		if (timestamps)
			vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, rec.timestamps, 2 + 2 * i);
		for (uint32_t j = 0; j < op.num_inputs; j++) {
			if (!touched[op.inputs[j]])
				touched_list.push_back(op.inputs[j]);
			touched[op.inputs[j]] |= 1;
		}
		for (uint32_t j = 0; j < op.num_outputs; j++) {
			if (!touched[op.outputs[j]])
				touched_list.push_back(op.outputs[j]);
			touched[op.outputs[j]] |= 2;
		}
	}

	if (count_invocations)
		vkCmdEndQuery(cb, rec.invocations, 0);

	// Read-back: through staging where the buffer is not mapped.
	bool staged_readback = false;
	for (const Slot& s : slots)
		staged_readback |= s.readback && !s.buffer->mapped();
	if (staged_readback) {
		VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
		mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
		mb.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT;
		vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1,
				     &mb, 0, nullptr, 0, nullptr);
		for (const Slot& s : slots) {
			if (!s.readback || s.buffer->mapped())
				continue;
			VkBufferCopy region{s.offset, s.staging, s.size};
			vkCmdCopyBuffer(cb, s.buffer->vk(), staging_.buffer().vk(), 1, &region);
		}
	}
	{
		VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
		mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
		mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
		vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
				     VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, nullptr, 0, nullptr);
	}
	vk_check(vkEndCommandBuffer(cb), "vkEndCommandBuffer");
}

RunStats ExecutorImpl::run(std::span<const drm_flaxdrm_tensor> tensors, std::span<const drm_flaxdrm_op> ops,
			   std::span<TensorMemory> memory)
{
	const auto t_start = std::chrono::steady_clock::now();
	settle_pending();

	// ---- check: the program once per recording, the memory every run
	if (memory.size() != tensors.size())
		fail(-EINVAL, "run: " + std::to_string(memory.size()) + " memory entries for " +
				      std::to_string(tensors.size()) + " tensors");
	if (tensors.size() > FLAXDRM_MAX_TENSORS || ops.size() > FLAXDRM_MAX_OPS)
		fail(-EINVAL, "run: program too large");
	Recording* found = find_recording(tensors, ops);
	Recording& rec = found ? *found : admit(tensors, ops);
	rec.last_use = ++use_clock_;
	const uint32_t nt = uint32_t(tensors.size());
	{
		uint32_t bad_op = FLAXDRM_INDEX_NONE, bad_tensor = 0;
		for (uint32_t i = 0; i < nt; i++) {
			if (tensors[i].kind == FLAXDRM_TENSOR_VARIABLE && rec.writer[i] < bad_op &&
			    !memory[i].writable) {
				bad_op = rec.writer[i];
				bad_tensor = i;
			}
		}
		if (bad_op != FLAXDRM_INDEX_NONE)
			fail(-EINVAL, describe_op(ops, bad_op) + ": writes " + describe_tensor(tensors, bad_tensor) +
					      ", which this call may not modify");
	}

	// ---- memory layout
	const VkDeviceSize align = std::max<VkDeviceSize>(dev_.limits().minStorageBufferOffsetAlignment, 64);
	std::vector<Slot> slots(nt);
	std::unordered_map<uint64_t, Resident> fresh; // variables made resident by this run
	VkDeviceSize io_bytes = 0, staging_bytes = 0;
	std::vector<uint8_t> in_io(nt, 0);
	for (uint32_t i = 0; i < nt; i++) {
		const drm_flaxdrm_tensor& t = tensors[i];
		const TensorMemory& m = memory[i];
		Slot& s = slots[i];
		s.size = flaxdrm_tensor_bytes(&t);
		auto need_host = [&](const char* why) {
			if (!m.host || m.size < s.size)
				fail(-EINVAL, describe_tensor(tensors, i) + ": " + why + " needs " +
						      std::to_string(s.size) + " bytes of host memory, got " +
						      (m.host ? std::to_string(m.size) : std::string("none")));
		};
		switch (t.kind) {
		case FLAXDRM_TENSOR_TEMP:
			s.buffer = &temps_.buffer();
			s.offset = rec.temps.offset[i];
			break;
		case FLAXDRM_TENSOR_INPUT:
		case FLAXDRM_TENSOR_OUTPUT:
			need_host(kind_name(t.kind));
			s.offset = io_bytes;
			io_bytes = align_up(io_bytes + s.size, align);
			in_io[i] = 1;
			s.upload = t.kind == FLAXDRM_TENSOR_INPUT;
			s.readback = t.kind == FLAXDRM_TENSOR_OUTPUT;
			break;
		case FLAXDRM_TENSOR_VARIABLE: {
			s.readback = m.writable && rec.writer[i] != FLAXDRM_INDEX_NONE && m.host;
			if (m.writable && m.host && m.size < s.size)
				need_host("a writable variable");
			if (m.var_key) {
				auto fit = fresh.find(m.var_key);
				if (fit != fresh.end() && same_shape(fit->second.desc, t)) {
					s.buffer = &fit->second.buffer;
					break;
				}
				auto it = resident_.find(m.var_key);
				if (it != resident_.end() && it->second.generation == m.var_generation &&
				    same_shape(it->second.desc, t)) {
					s.buffer = &it->second.buffer;
					break;
				}
				need_host("a variable that is not resident");
				Resident r;
				r.generation = m.var_generation;
				r.desc = t;
				r.buffer = Buffer(dev_, s.size, BufferKind::Device);
				auto [nit, ok] = fresh.insert_or_assign(m.var_key, std::move(r));
				(void)ok;
				s.buffer = &nit->second.buffer;
				s.upload = true;
			} else {
				need_host("a variable without a cache key");
				s.offset = io_bytes;
				io_bytes = align_up(io_bytes + s.size, align);
				in_io[i] = 1;
				s.upload = true;
			}
			break;
		}
		default:
			fail(-EINVAL, describe_tensor(tensors, i) + ": unknown kind");
		}
	}
	temps_.reserve(dev_, rec.temps.bytes);
	io_.reserve(dev_, io_bytes);
	for (uint32_t i = 0; i < nt; i++)
		if (in_io[i])
			slots[i].buffer = &io_.buffer();
	// Staging: for every upload or read-back into an unmapped buffer.
	for (Slot& s : slots) {
		if ((s.upload || s.readback) && !s.buffer->mapped()) {
			s.staging = staging_bytes;
			staging_bytes = align_up(staging_bytes + s.size, 64);
		}
	}
	staging_.reserve(dev_, staging_bytes);

	// ---- record, or replay the recording made against the same memory
	std::vector<BoundTensor> bound(nt);
	for (uint32_t i = 0; i < nt; i++) {
		const Slot& s = slots[i];
		const bool staged = !s.buffer->mapped();
		bound[i] = {s.buffer->id(), s.offset, s.staging, s.upload && staged, s.readback && staged};
	}
	const uint64_t staging_id = staging_bytes ? staging_.buffer().id() : 0;
	const bool replay = rec.executable && rec.bound == bound && rec.staging_id == staging_id;
	if (!replay) {
		rec.bound.clear();
		record(rec, slots);
		rec.bound = std::move(bound);
		rec.staging_id = staging_id;
	} else {
		replays_++;
	}

	for (uint32_t i = 0; i < nt; i++) {
		const Slot& s = slots[i];
		if (!s.upload)
			continue;
		std::byte* dst = s.buffer->mapped() ? s.buffer->mapped() + s.offset
						    : staging_.buffer().mapped() + s.staging;
		std::memcpy(dst, memory[i].host, s.size);
	}

	// ---- submit, wait, read back
	try {
		std::vector<Buffer> none;
		submit_and_wait(rec.cb, none);
	} catch (const Error&) {
		// The variables this run wrote may be half-written on the
		// device: forget them so the next run uploads from host again.
		for (uint32_t i = 0; i < nt; i++) {
			if (tensors[i].kind != FLAXDRM_TENSOR_VARIABLE || rec.writer[i] == FLAXDRM_INDEX_NONE ||
			    !memory[i].var_key)
				continue;
			auto it = resident_.find(memory[i].var_key);
			if (it != resident_.end()) {
				graveyard_.push_back(std::move(it->second.buffer));
				resident_.erase(it);
			}
		}
		for (auto& [key, r] : fresh)
			graveyard_.push_back(std::move(r.buffer));
		if (!pending_)
			graveyard_.clear();
		throw;
	}

	for (uint32_t i = 0; i < nt; i++) {
		const Slot& s = slots[i];
		if (!s.readback)
			continue;
		const std::byte* src = s.buffer->mapped() ? s.buffer->mapped() + s.offset
							   : staging_.buffer().mapped() + s.staging;
		std::memcpy(memory[i].host, src, s.size);
	}
	for (auto& [key, r] : fresh) {
		auto it = resident_.find(key);
		if (it != resident_.end())
			it->second = std::move(r);
		else
			resident_.emplace(key, std::move(r));
	}

	RunStats run_stats;
	run_stats.replayed = replay;
	run_stats.temp_bytes = rec.temps.bytes;
	run_stats.op_barriers = rec.op_barriers;
	if (dev_.timestamp_mask()) {
		const uint32_t num_queries = 2 * uint32_t(ops.size()) + 1;
		std::vector<uint64_t> ts(num_queries);
		VkResult r = vkGetQueryPoolResults(dev_.vk(), rec.timestamps, 0, num_queries,
						   ts.size() * sizeof(uint64_t), ts.data(), sizeof(uint64_t),
						   VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
		if (r == VK_SUCCESS) {
			const uint64_t mask = dev_.timestamp_mask();
			const double period = dev_.timestamp_period();
			auto rel = [&](uint64_t t) { return uint64_t(double((t - ts[0]) & mask) * period); };
			for (uint32_t i = 0; i < ops.size(); i++)
				run_stats.ops.push_back({i, ops[i].opcode, rel(ts[1 + 2 * i]), rel(ts[2 + 2 * i])});
		}
	}
	if (dev_.pipeline_statistics()) {
		uint64_t n = 0;
		if (vkGetQueryPoolResults(dev_.vk(), rec.invocations, 0, 1, sizeof(n), &n, sizeof(n),
					  VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT) == VK_SUCCESS)
			run_stats.shader_invocations = n;
	}
	run_stats.total_ns = uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
					      std::chrono::steady_clock::now() - t_start).count());
	return run_stats;
}

} // namespace

std::unique_ptr<Executor> Executor::create(Device& device)
{
	return create(device, ExecutorOptions{});
}

std::unique_ptr<Executor> Executor::create(Device& device, const ExecutorOptions& options)
{
	return std::make_unique<ExecutorImpl>(device_impl(device), options);
}

} // namespace flaxdrm::rt
