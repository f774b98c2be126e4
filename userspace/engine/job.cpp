// One engine job: parse the FETCH buffer, map the BOs, run, unmap.
//
// Buffer layout (uapi/drm/flaxdrm_drm.h):
//   struct drm_flaxdrm_engine_job
//   struct drm_flaxdrm_engine_tensor[num_tensors]
//   struct drm_flaxdrm_op[num_ops]
// SETUP: load_variable() for every VARIABLE tensor; CLEANUP: drop_variable();
// CALL: Executor::run() with INPUT/OUTPUT/VARIABLE memory in the mapped BOs.
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <vector>

#include <unistd.h>

#include "flaxdrm/engine.hpp"
#include "flaxdrm/flaxdrm.h"
#include "flaxdrm_rules.h"

namespace flaxdrm::engine {
namespace {

struct JobError {
	int status;
	std::string message;
};

[[noreturn]] void refuse(int status, const std::string& message)
{
	throw JobError{status, message};
}

// The job's BOs, mapped once each for as far as its tensors reach.
class Mappings {
public:
	explicit Mappings(int fd) : fd_(fd) {}
	~Mappings()
	{
		for (auto& [handle, m] : maps_)
			if (m.ptr)
				flaxdrm_bo_munmap(m.ptr, m.size);
	}
	Mappings(const Mappings&) = delete;
	Mappings& operator=(const Mappings&) = delete;

	void need(uint32_t handle, uint64_t end) { maps_[handle].size = std::max(maps_[handle].size, end); }

	void map_all()
	{
		static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
		for (auto& [handle, m] : maps_) {
			m.size = (m.size + page - 1) / page * page;
			void* p = nullptr;
			int ret = flaxdrm_bo_mmap(fd_, handle, m.size, &p);
			if (ret)
				refuse(ret == -ENOMEM ? -ENOMEM : -EIO,
				       "cannot map BO " + std::to_string(handle) + " (" + std::to_string(m.size) +
					       " bytes): " + std::strerror(-ret));
			m.ptr = p;
		}
	}

	void* at(uint32_t handle, uint64_t offset) const
	{
		return static_cast<char*>(maps_.at(handle).ptr) + offset;
	}

private:
	struct Map {
		void* ptr = nullptr;
		uint64_t size = 0;
	};
	int fd_;
	std::map<uint32_t, Map> maps_;
};

struct Job {
	drm_flaxdrm_engine_job head{};
	std::vector<drm_flaxdrm_engine_tensor> tensors;
	std::vector<drm_flaxdrm_op> ops;
};

Job parse(std::span<const uint8_t> buf)
{
	Job job;
	if (buf.size() < sizeof(job.head))
		refuse(-EIO, "job buffer of " + std::to_string(buf.size()) + " bytes is shorter than its header");
	std::memcpy(&job.head, buf.data(), sizeof(job.head));
	const auto& h = job.head;
	if (h.num_tensors > FLAXDRM_MAX_TENSORS || h.num_ops > FLAXDRM_MAX_OPS)
		refuse(-EINVAL, "job has " + std::to_string(h.num_tensors) + " tensors and " +
					std::to_string(h.num_ops) + " ops, above the limits");
	std::size_t need = sizeof(h) + std::size_t{h.num_tensors} * sizeof(drm_flaxdrm_engine_tensor) +
			   std::size_t{h.num_ops} * sizeof(drm_flaxdrm_op);
	if (buf.size() < need)
		refuse(-EIO, "job buffer holds " + std::to_string(buf.size()) + " bytes, its layout needs " +
				     std::to_string(need));
	job.tensors.resize(h.num_tensors);
	job.ops.resize(h.num_ops);
	const uint8_t* p = buf.data() + sizeof(h);
	if (h.num_tensors)
		std::memcpy(job.tensors.data(), p, job.tensors.size() * sizeof(drm_flaxdrm_engine_tensor));
	p += job.tensors.size() * sizeof(drm_flaxdrm_engine_tensor);
	if (h.num_ops)
		std::memcpy(job.ops.data(), p, job.ops.size() * sizeof(drm_flaxdrm_op));

	for (uint32_t i = 0; i < h.num_tensors; i++) {
		const auto& t = job.tensors[i];
		if (flaxdrm_check_tensor(&t.desc))
			refuse(-EINVAL, "tensor " + std::to_string(i) + " has a bad descriptor");
		uint64_t bytes = flaxdrm_tensor_bytes(&t.desc);
		if (t.desc.kind == FLAXDRM_TENSOR_TEMP)
			continue;
		if (t.bo && t.size != bytes)
			refuse(-EINVAL, "tensor " + std::to_string(i) + " spans " + std::to_string(t.size) +
						" bytes, its shape needs " + std::to_string(bytes));
		if (t.bo && t.offset > FLAXDRM_MAX_BO_SIZE)
			refuse(-EINVAL, "tensor " + std::to_string(i) + " lies beyond any BO");
	}
	return job;
}

void setup(const Job& job, Mappings& maps, rt::Executor& ex)
{
	for (std::size_t i = 0; i < job.tensors.size(); i++) {
		const auto& t = job.tensors[i];
		if (t.desc.kind != FLAXDRM_TENSOR_VARIABLE)
			refuse(-EINVAL, "setup job lists tensor " + std::to_string(i) + " that is not a variable");
		if (!t.bo)
			refuse(-EINVAL, "setup job: variable " + std::string(t.desc.name) + " has no BO");
		ex.load_variable(variable_key(job.head.context, t.var_id), t.var_generation, t.desc,
				 maps.at(t.bo, t.offset));
	}
}

void cleanup(const Job& job, rt::Executor& ex)
{
	for (const auto& t : job.tensors)
		if (t.desc.kind == FLAXDRM_TENSOR_VARIABLE)
			ex.drop_variable(variable_key(job.head.context, t.var_id));
}

rt::RunStats call(const Job& job, Mappings& maps, rt::Executor& ex)
{
	if (job.ops.empty())
		refuse(-EINVAL, "call job carries no ops");
	std::vector<drm_flaxdrm_tensor> descs(job.tensors.size());
	std::vector<rt::TensorMemory> mem(job.tensors.size());
	for (std::size_t i = 0; i < job.tensors.size(); i++) {
		const auto& t = job.tensors[i];
		descs[i] = t.desc;
		switch (t.desc.kind) {
		case FLAXDRM_TENSOR_TEMP:
			break;
		case FLAXDRM_TENSOR_VARIABLE:
			mem[i].var_key = variable_key(job.head.context, t.var_id);
			mem[i].var_generation = t.var_generation;
			mem[i].writable = t.writable != 0;
			[[fallthrough]];
		default:
			if (t.bo) {
				mem[i].host = maps.at(t.bo, t.offset);
				mem[i].size = t.size;
			} else if (t.desc.kind != FLAXDRM_TENSOR_VARIABLE) {
				refuse(-EINVAL, "call job: tensor " + std::to_string(i) + " has no BO");
			}
		}
	}
	return ex.run(descs, job.ops, mem);
}

} // namespace

uint64_t variable_key(uint64_t context, uint64_t var_id)
{
	auto mix = [](uint64_t x) {
		// splitmix64 finaliser
		x += 0x9e3779b97f4a7c15ull;
		x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
		x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
		return x ^ (x >> 31);
	};
	uint64_t key = mix(context ^ mix(var_id));
	return key ? key : 1;
}

JobResult run_job(int fd, rt::Executor& executor, std::span<const uint8_t> buffer)
{
	JobResult r;
	auto t0 = std::chrono::steady_clock::now();
	try {
		Job job = parse(buffer);
		Mappings maps(fd);
		if (job.head.op != FLAXDRM_JOB_CLEANUP) {
			for (const auto& t : job.tensors)
				if (t.bo && t.desc.kind != FLAXDRM_TENSOR_TEMP)
					maps.need(t.bo, t.offset + t.size);
			maps.map_all();
		}
		switch (job.head.op) {
		case FLAXDRM_JOB_SETUP: setup(job, maps, executor); break;
		case FLAXDRM_JOB_CALL: {
			rt::RunStats stats = call(job, maps, executor);
			// timings only when every op has one, in program order
			if (stats.ops.size() == job.ops.size()) {
				r.op_timings.reserve(stats.ops.size());
				for (const rt::OpTiming& t : stats.ops)
					r.op_timings.push_back({t.op_index, t.opcode, t.start_ns, t.end_ns});
			}
			r.shader_invocations = stats.shader_invocations;
			break;
		}
		case FLAXDRM_JOB_CLEANUP: cleanup(job, executor); break;
		default: refuse(-EINVAL, "unknown job op " + std::to_string(job.head.op));
		}
	} catch (const JobError& e) {
		r.status = e.status;
		r.message = e.message;
	} catch (const rt::Error& e) {
		r.status = e.status() < 0 ? e.status() : -EIO;
		r.message = e.what();
	} catch (const std::bad_alloc&) {
		r.status = -ENOMEM;
		r.message = "out of memory";
	} catch (const std::exception& e) {
		r.status = -EIO;
		r.message = e.what();
	} catch (...) {
		r.status = -EIO;
		r.message = "unknown exception";
	}
	r.exec_ns = static_cast<uint64_t>(
		std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
	return r;
}

} // namespace flaxdrm::engine
