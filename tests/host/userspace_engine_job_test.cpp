// The engine's job runner on malformed and valid jobs without the kernel:
// it must answer with an errno status, never crash.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include "flaxdrm/engine.hpp"
#include "flaxdrm/runtime.hpp"

using namespace flaxdrm;

namespace {

class EngineJob : public ::testing::Test {
protected:
	static void SetUpTestSuite()
	{
		device_ = rt::Device::create().release();
		executor_ = rt::Executor::create(*device_).release();
	}
	static void TearDownTestSuite()
	{
		delete executor_;
		delete device_;
	}
	void SetUp() override { fd_ = open("/dev/null", O_RDWR | O_CLOEXEC); }
	void TearDown() override { close(fd_); }

	engine::JobResult run(const std::vector<uint8_t>& buf)
	{
		return engine::run_job(fd_, *executor_, buf);
	}

	static std::vector<uint8_t> job(uint32_t op, const std::vector<drm_flaxdrm_engine_tensor>& tensors,
					const std::vector<drm_flaxdrm_op>& ops)
	{
		drm_flaxdrm_engine_job h{};
		h.job_id = 1;
		h.op = op;
		h.context = 42;
		h.num_tensors = static_cast<uint32_t>(tensors.size());
		h.num_ops = static_cast<uint32_t>(ops.size());
		std::vector<uint8_t> buf(sizeof(h) + tensors.size() * sizeof(tensors[0]) + ops.size() * sizeof(drm_flaxdrm_op));
		std::memcpy(buf.data(), &h, sizeof(h));
		if (!tensors.empty())
			std::memcpy(buf.data() + sizeof(h), tensors.data(), tensors.size() * sizeof(tensors[0]));
		if (!ops.empty())
			std::memcpy(buf.data() + sizeof(h) + tensors.size() * sizeof(tensors[0]), ops.data(),
				    ops.size() * sizeof(drm_flaxdrm_op));
		return buf;
	}

	static drm_flaxdrm_engine_tensor variable(const char* name, std::initializer_list<uint32_t> dims, uint32_t bo)
	{
		drm_flaxdrm_engine_tensor t{};
		t.desc.kind = FLAXDRM_TENSOR_VARIABLE;
		t.desc.dtype = FLAXDRM_DTYPE_F32;
		t.desc.rank = static_cast<uint32_t>(dims.size());
		uint32_t i = 0, n = 1;
		for (uint32_t d : dims) {
			t.desc.dims[i++] = d;
			n *= d;
		}
		t.desc.module = 3;
		std::strcpy(t.desc.collection, "params");
		std::strcpy(t.desc.name, name);
		t.bo = bo;
		t.size = n * 4;
		t.var_id = 7;
		t.var_generation = 1;
		return t;
	}

	static rt::Device* device_;
	static rt::Executor* executor_;
	int fd_ = -1;
};

rt::Device* EngineJob::device_ = nullptr;
rt::Executor* EngineJob::executor_ = nullptr;

} // namespace

TEST_F(EngineJob, RefusesShortAndInconsistentBuffers)
{
	EXPECT_EQ(run({}).status, -EIO);
	EXPECT_EQ(run(std::vector<uint8_t>(7, 0)).status, -EIO);

	auto buf = job(FLAXDRM_JOB_CALL, {variable("kernel", {2, 2}, 0)}, {});
	buf.resize(buf.size() - 1); // one byte short of its tensor table
	auto r = run(buf);
	EXPECT_EQ(r.status, -EIO);
	EXPECT_THAT(r.message, ::testing::HasSubstr("layout needs"));

	auto huge = job(FLAXDRM_JOB_CALL, {}, {});
	reinterpret_cast<drm_flaxdrm_engine_job*>(huge.data())->num_tensors = 1u << 30;
	EXPECT_EQ(run(huge).status, -EINVAL);
}

TEST_F(EngineJob, RefusesBadJobsWithAnErrno)
{
	EXPECT_EQ(run(job(99, {}, {})).status, -EINVAL);
	EXPECT_EQ(run(job(FLAXDRM_JOB_CALL, {}, {})).status, -EINVAL); // no ops

	auto bad = variable("kernel", {2, 2}, 1);
	bad.desc.rank = 9;
	EXPECT_EQ(run(job(FLAXDRM_JOB_SETUP, {bad}, {})).status, -EINVAL);

	auto wrong_size = variable("kernel", {2, 2}, 1);
	wrong_size.size = 3;
	EXPECT_EQ(run(job(FLAXDRM_JOB_SETUP, {wrong_size}, {})).status, -EINVAL);

	// setup of a variable without a BO
	EXPECT_EQ(run(job(FLAXDRM_JOB_SETUP, {variable("kernel", {2, 2}, 0)}, {})).status, -EINVAL);

	// a BO handle that cannot be mapped (the fd is not a DRM device)
	auto r = run(job(FLAXDRM_JOB_SETUP, {variable("kernel", {2, 2}, 5)}, {}));
	EXPECT_EQ(r.status, -EIO);
	EXPECT_THAT(r.message, ::testing::HasSubstr("cannot map BO 5"));
}

TEST_F(EngineJob, CleanupOfUnknownVariablesSucceeds)
{
	auto r = run(job(FLAXDRM_JOB_CLEANUP, {variable("kernel", {2, 2}, 5), variable("bias", {2}, 5)}, {}));
	EXPECT_EQ(r.status, 0) << r.message;
	EXPECT_EQ(run(job(FLAXDRM_JOB_SETUP, {}, {})).status, 0);
}

TEST_F(EngineJob, ProgramTheRulesRefuseIsEinval)
{
	// relu whose output has another shape than its input: the runtime's
	// program check refuses it before touching memory
	drm_flaxdrm_engine_tensor in{}, out{};
	in.desc.kind = FLAXDRM_TENSOR_TEMP;
	in.desc.dtype = FLAXDRM_DTYPE_F32;
	in.desc.rank = 1;
	in.desc.dims[0] = 4;
	out = in;
	out.desc.kind = FLAXDRM_TENSOR_TEMP;
	out.desc.dims[0] = 5;
	drm_flaxdrm_op op{};
	op.opcode = FLAXDRM_OP_RELU;
	op.num_inputs = 1;
	op.num_outputs = 1;
	op.outputs[0] = 1;
	auto r = run(job(FLAXDRM_JOB_CALL, {in, out}, {op}));
	EXPECT_EQ(r.status, -EINVAL) << r.message;
}

TEST_F(EngineJob, VariableKeysMixContextAndId)
{
	EXPECT_NE(engine::variable_key(1, 2), engine::variable_key(2, 1));
	EXPECT_NE(engine::variable_key(1, 2), engine::variable_key(1, 3));
	EXPECT_EQ(engine::variable_key(5, 9), engine::variable_key(5, 9));
	EXPECT_NE(engine::variable_key(0, 0), 0u);
}
