// flaxdrm profile, top and run --sandbox, host side: the seccomp filter in a
// forked child, op cost formulas against hand-computed values, the trace
// JSON's structure, fdinfo parsing over a synthetic /proc tree, and a
// profiled call on the local device.
//
// The sandbox tests come first: they fork, which is safest before any
// other test has started Vulkan (llvmpipe) threads.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <fstream>
#include <numeric>
#include <sstream>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "flaxdrm/device.hpp"
#include "flaxdrm/error.hpp"
#include "flaxdrm/lowering.hpp"
#include "flaxdrm/model.hpp"
#include "flaxdrm/npy.hpp"
#include "flaxdrm/op_costs.hpp"
#include "flaxdrm/variables.hpp"
#include "flaxdrm_rules.h"
#include "tools/fdinfo.hpp"
#include "tools/profile_report.hpp"
#include "tools/sandbox.hpp"
#include "userspace_test_util.hpp"

using namespace flaxdrm;
using flaxdrm::testing::source_dir;

namespace {

// ------------------------------------------------------------------ sandbox

// Runs body in a forked child; the child's exit status is the result
// (0 ok, otherwise the number of the failed check).
int in_child(int (*body)(int fd), int fd)
{
	pid_t pid = fork();
	if (pid == 0)
		_exit(body(fd));
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

int filtered_child(int pipe_fd)
{
	if (sandbox::install_filter())
		return 1;
	errno = 0;
	if (syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_RDONLY) != -1 || errno != EPERM)
		return 2;
	errno = 0;
	if (syscall(SYS_open, "/etc/passwd", O_RDONLY) != -1 || errno != EPERM)
		return 3;
	errno = 0;
	if (syscall(SYS_socket, AF_INET, SOCK_STREAM, 0) != -1 || errno != EPERM)
		return 4;
	errno = 0;
	if (syscall(SYS_creat, "/tmp/flaxdrm-sandbox-test", 0600) != -1 || errno != EPERM)
		return 5;
	// an ioctl of another type than DRM/sync_file: refused
	int n = 0;
	errno = 0;
	if (ioctl(pipe_fd, FIONREAD, &n) != -1 || errno != EPERM)
		return 6;
	// what inference needs: writing to a held fd, memory, clocks
	const char msg[] = "written from the sandbox";
	if (write(pipe_fd, msg, sizeof(msg)) != sizeof(msg))
		return 7;
	void* p = mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || munmap(p, 1 << 20))
		return 8;
	timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts))
		return 9;
	sandbox::SelftestResult r = sandbox::selftest();
	if (!r.ok || r.lines.size() != 4)
		return 10;
	for (const auto& line : r.lines)
		if (line.find("refused (EPERM)") == std::string::npos)
			return 11;
	return 0;
}

TEST(Sandbox, FilterRefusesFilesSocketsExecForkAndAllowsWrites)
{
	int fds[2];
	ASSERT_EQ(pipe(fds), 0);
	EXPECT_EQ(in_child(filtered_child, fds[1]), 0);
	close(fds[1]);
	char buf[64] = {};
	ASSERT_GT(read(fds[0], buf, sizeof(buf) - 1), 0);
	EXPECT_STREQ(buf, "written from the sandbox");
	close(fds[0]);
	// the parent is not affected
	int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
	EXPECT_GE(fd, 0);
	if (fd >= 0)
		close(fd);
}

int selftest_without_filter(int)
{
	// without the filter the selftest must notice that nothing is refused
	sandbox::SelftestResult r = sandbox::selftest();
	return r.ok ? 1 : 0;
}

TEST(Sandbox, SelftestNoticesAMissingFilter)
{
	EXPECT_EQ(in_child(selftest_without_filter, -1), 0);
}

int close_fds_child(int keep)
{
	int extra = open("/dev/null", O_RDONLY);
	if (extra < 0)
		return 1;
	int render = -1;
	const int keep_fds[] = {keep};
	sandbox::close_other_fds(keep_fds, &render);
	if (fcntl(extra, F_GETFD) != -1 || errno != EBADF)
		return 2; // closed
	if (fcntl(keep, F_GETFD) == -1)
		return 3; // kept
	return render == 0 ? 0 : 4;
}

TEST(Sandbox, ClosesEverythingButKeptFdsAndRenderNodes)
{
	int keep = open("/dev/null", O_WRONLY | O_CLOEXEC);
	ASSERT_GE(keep, 0);
	EXPECT_EQ(in_child(close_fds_child, keep), 0);
	close(keep);
}

TEST(Sandbox, RunSandboxOnlyForDrmAndOpensTheOutputFirst)
{
	auto dir = std::filesystem::temp_directory_path() / ("flaxdrm_sandbox_" + std::to_string(getpid()));
	std::filesystem::create_directories(dir);
	EXPECT_THROW(sandbox::RunSandbox("local", (dir / "y.npy").string()), Error);
	{
		sandbox::RunSandbox box("drm", (dir / "y.npy").string());
		EXPECT_TRUE(std::filesystem::exists(dir / "y.npy")); // created before any sandboxing
		const uint8_t bytes[] = {1, 2, 3};
		box.write_output(bytes);
	}
	EXPECT_EQ(std::filesystem::file_size(dir / "y.npy"), 3u);
	EXPECT_THROW(sandbox::RunSandbox("drm", (dir / "missing" / "y.npy").string()), Error);
	std::filesystem::remove_all(dir);
}

// ---------------------------------------------------------------- op costs

drm_flaxdrm_tensor tensor(std::initializer_list<uint32_t> dims, uint32_t dtype = FLAXDRM_DTYPE_F32)
{
	drm_flaxdrm_tensor t{};
	t.kind = FLAXDRM_TENSOR_TEMP;
	t.dtype = dtype;
	t.rank = uint32_t(dims.size());
	uint32_t i = 0;
	for (uint32_t d : dims)
		t.dims[i++] = d;
	return t;
}

drm_flaxdrm_op op(uint32_t opcode, std::initializer_list<uint32_t> in, std::initializer_list<uint32_t> out,
		  std::initializer_list<uint32_t> attrs = {})
{
	drm_flaxdrm_op o{};
	o.opcode = opcode;
	for (uint32_t t : in)
		o.inputs[o.num_inputs++] = t;
	for (uint32_t t : out)
		o.outputs[o.num_outputs++] = t;
	uint32_t i = 0;
	for (uint32_t a : attrs)
		o.attrs[i++] = a;
	return o;
}

TEST(OpCosts, Dense)
{
	// x[8, 32] @ kernel[32, 64] + bias[64]: 8*64 outputs, 2*32 + 1 each
	std::vector<drm_flaxdrm_tensor> t = {tensor({8, 32}), tensor({32, 64}), tensor({64}), tensor({8, 64})};
	OpCost c = op_cost(op(FLAXDRM_OP_DENSE, {0, 1, 2}, {3}), t);
	EXPECT_EQ(c.flops, 8u * 64 * 65);
	EXPECT_EQ(c.bytes_read, (8u * 32 + 32 * 64 + 64) * 4);
	EXPECT_EQ(c.bytes_written, 8u * 64 * 4);
	// no bias
	c = op_cost(op(FLAXDRM_OP_DENSE, {0, 1}, {3}), t);
	EXPECT_EQ(c.flops, 8u * 64 * 64);
	// DenseGeneral over two axes: x[2, 3, 4] @ kernel[3, 4, 5] -> [2, 5]: K = 12
	t = {tensor({2, 3, 4}), tensor({3, 4, 5}), tensor({2, 5})};
	EXPECT_EQ(op_cost(op(FLAXDRM_OP_DENSE, {0, 1}, {2}, {2}), t).flops, 10u * 2 * 12);
}

TEST(OpCosts, MatmulConvAttention)
{
	// a[2, 4, 3] @ b[3, 5] -> [2, 4, 5]: K = 3; with a transposed a[2, 3, 4]: K = 3
	std::vector<drm_flaxdrm_tensor> t = {tensor({2, 4, 3}), tensor({3, 5}), tensor({2, 4, 5}), tensor({2, 3, 4})};
	EXPECT_EQ(op_cost(op(FLAXDRM_OP_MATMUL, {0, 1}, {2}), t).flops, 40u * 2 * 3);
	EXPECT_EQ(op_cost(op(FLAXDRM_OP_MATMUL, {3, 1}, {2}, {1}), t).flops, 40u * 2 * 3);

	// conv x[1, 5, 5, 3], kernel[3, 3, 3, 4] -> y[1, 3, 3, 4]: 36 outputs * 2*27, +36 with bias
	t = {tensor({1, 5, 5, 3}), tensor({3, 3, 3, 4}), tensor({4}), tensor({1, 3, 3, 4})};
	EXPECT_EQ(op_cost(op(FLAXDRM_OP_CONV, {0, 1}, {3}), t).flops, 36u * 54);
	OpCost c = op_cost(op(FLAXDRM_OP_CONV, {0, 1, 2}, {3}), t);
	EXPECT_EQ(c.flops, 36u * 55);
	EXPECT_EQ(c.bytes_read, (75u + 108 + 4) * 4);
	EXPECT_EQ(c.bytes_written, 36u * 4);

	// attention q[1, 2, 2, 4], k[1, 3, 2, 4], v[1, 3, 2, 6]: 12 logits * (2*4 + 5 + 2*6)
	t = {tensor({1, 2, 2, 4}), tensor({1, 3, 2, 4}), tensor({1, 3, 2, 6}), tensor({1, 2, 2, 6})};
	EXPECT_EQ(op_cost(op(FLAXDRM_OP_ATTENTION, {0, 1, 2}, {3}), t).flops, 12u * 25);
}

TEST(OpCosts, ElementwiseNormsPoolsAndLayout)
{
	std::vector<drm_flaxdrm_tensor> t = {tensor({4, 10}), tensor({4, 10}), tensor({10}), tensor({10}),
					     tensor({40}), tensor({4, 3}), tensor({5}, FLAXDRM_DTYPE_I32),
					     tensor({7, 10}), tensor({5, 10})};
	EXPECT_EQ(op_cost(op(FLAXDRM_OP_RELU, {0}, {1}), t).flops, 40u);
	EXPECT_EQ(op_cost(op(FLAXDRM_OP_GELU, {0}, {1}, {0}), t).flops, 40u * 5);
	EXPECT_EQ(op_cost(op(FLAXDRM_OP_GELU, {0}, {1}, {1}), t).flops, 40u * 9);
	EXPECT_EQ(op_cost(op(FLAXDRM_OP_SOFTMAX, {0}, {1}), t).flops, 40u * 5);
	EXPECT_EQ(op_cost(op(FLAXDRM_OP_ADD, {0, 2}, {1}), t).flops, 40u);
	EXPECT_EQ(op_cost(op(FLAXDRM_OP_ADD, {0, 2}, {1}), t).bytes_read, (40u + 10) * 4);
	// LayerNorm with scale and bias: 6 + 2 per element
	EXPECT_EQ(op_cost(op(FLAXDRM_OP_LAYER_NORM, {0, 2, 3}, {1}, {0, 1, FLAXDRM_NORM_SCALE | FLAXDRM_NORM_BIAS}), t)
			  .flops,
		  40u * 8);
	EXPECT_EQ(op_cost(op(FLAXDRM_OP_RMS_NORM, {0, 2}, {1}, {0, 1, FLAXDRM_NORM_SCALE}), t).flops, 40u * 4);
	// reductions: one op per input, a mean divides per output
	EXPECT_EQ(op_cost(op(FLAXDRM_OP_REDUCE_SUM, {0}, {2}, {1}), t).flops, 40u);
	EXPECT_EQ(op_cost(op(FLAXDRM_OP_REDUCE_MEAN, {0}, {2}, {1}), t).flops, 50u);
	// reshape is a view: nothing; slice reads what it copies
	OpCost c = op_cost(op(FLAXDRM_OP_RESHAPE, {0}, {4}), t);
	EXPECT_EQ(c.flops + c.bytes_read + c.bytes_written, 0u);
	c = op_cost(op(FLAXDRM_OP_SLICE, {0}, {5}), t);
	EXPECT_EQ(c.flops, 0u);
	EXPECT_EQ(c.bytes_read, 12u * 4);
	EXPECT_EQ(c.bytes_written, 12u * 4);
	// Embed: int32 indices [5] into table[7, 10] -> [5, 10]: reads the rows only
	c = op_cost(op(FLAXDRM_OP_EMBED, {6, 7}, {8}), t);
	EXPECT_EQ(c.flops, 0u);
	EXPECT_EQ(c.bytes_read, 5u * 4 + 50 * 4);
	EXPECT_EQ(c.bytes_written, 50u * 4);
	// pools: window elements per output
	std::vector<drm_flaxdrm_tensor> p = {tensor({1, 4, 4, 3}), tensor({1, 2, 2, 3})};
	EXPECT_EQ(op_cost(op(FLAXDRM_OP_MAX_POOL, {0}, {1}, {2, 2, 2, 2}), p).flops, 12u * 4);
	// operands out of range count as empty rather than crash
	EXPECT_EQ(op_cost(op(FLAXDRM_OP_DENSE, {90, 91}, {92}), t).flops, 0u);
}

// The kernel computes the same costs for JOB_QUERY and its counters
// (drm/flaxdrm_rules_cost.c): the two must agree op for op.
TEST(OpCosts, AgreeWithTheKernelRules)
{
	std::vector<drm_flaxdrm_tensor> t = {tensor({8, 32}),      tensor({32, 64}),       tensor({64}),
					     tensor({8, 64}),      tensor({1, 5, 5, 3}),   tensor({3, 3, 3, 4}),
					     tensor({4}),          tensor({1, 3, 3, 4}),   tensor({1, 2, 2, 4}),
					     tensor({1, 3, 2, 4}), tensor({1, 3, 2, 6}),   tensor({1, 2, 2, 6}),
					     tensor({5}, FLAXDRM_DTYPE_I32), tensor({7, 10}), tensor({5, 10}),
					     tensor({1, 2, 2, 3}), tensor({512}),          tensor({8, 16})};
	std::vector<drm_flaxdrm_op> ops = {
		op(FLAXDRM_OP_DENSE, {0, 1, 2}, {3}),
		op(FLAXDRM_OP_DENSE, {0, 1}, {3}),
		op(FLAXDRM_OP_CONV, {4, 5, 6}, {7}),
		op(FLAXDRM_OP_ATTENTION, {8, 9, 10}, {11}),
		op(FLAXDRM_OP_EMBED, {12, 13}, {14}),
		op(FLAXDRM_OP_MAX_POOL, {4}, {15}, {2, 2, 2, 2}),
		op(FLAXDRM_OP_AVG_POOL, {4}, {15}, {2, 2, 2, 2, 0, 0, 0, 0, 1}),
		op(FLAXDRM_OP_LAYER_NORM, {3, 2, 2}, {3}, {0, 1, FLAXDRM_NORM_SCALE | FLAXDRM_NORM_BIAS}),
		op(FLAXDRM_OP_RMS_NORM, {3, 2}, {3}, {0, 1, FLAXDRM_NORM_SCALE}),
		op(FLAXDRM_OP_BATCH_NORM, {3, 2, 2}, {3}, {0, 0, 0}),
		op(FLAXDRM_OP_ADD, {3, 2}, {3}),
		op(FLAXDRM_OP_RELU, {3}, {3}),
		op(FLAXDRM_OP_GELU, {3}, {3}, {1}),
		op(FLAXDRM_OP_SILU, {3}, {3}),
		op(FLAXDRM_OP_SOFTMAX, {3}, {3}),
		op(FLAXDRM_OP_DROPOUT, {3}, {3}),
		op(FLAXDRM_OP_REDUCE_MEAN, {3}, {2}, {1}),
		op(FLAXDRM_OP_RESHAPE, {3}, {16}),
		op(FLAXDRM_OP_SLICE, {3}, {17}),
		op(FLAXDRM_OP_TRANSPOSE, {3}, {3}),
	};
	for (const auto& o : ops) {
		OpCost mine = op_cost(o, t);
		flaxdrm_cost kernel{};
		flaxdrm_op_cost(&o, t.data(), uint32_t(t.size()), &kernel);
		SCOPED_TRACE(flaxdrm_op_name(o.opcode));
		EXPECT_EQ(mine.flops, kernel.flops);
		EXPECT_EQ(mine.bytes_read, kernel.bytes_read);
		EXPECT_EQ(mine.bytes_written, kernel.bytes_written);
	}
}

// ------------------------------------------------------------ trace, table

Program mlp_program(Model& model)
{
	model = read_model_json(source_dir() + "/examples/mlp/model.json");
	Tensor x = read_npy(source_dir() + "/examples/mlp/input.npy");
	std::vector<uint32_t> handles(model.num_modules);
	std::iota(handles.begin(), handles.end(), 1u);
	return lower(model, x.shape, handles);
}

std::vector<profile::Run> fake_runs(std::size_t num_ops, int n)
{
	std::vector<profile::Run> runs;
	for (int r = 0; r < n; r++) {
		profile::Run run;
		run.start_ns = uint64_t(r) * 2000000;
		run.wall_ns = 1500000;
		run.have_job_times = run.have_queue = true;
		run.queue_ns = 100000;
		run.exec_ns = 1000000;
		run.job_id = 10 + r;
		for (uint32_t i = 0; i < num_ops; i++)
			// op 1 overlaps op 0 by 10 us: clipped in the trace
			run.ops.push_back({i, 0, i * 200000 - (i ? 10000 : 0), i * 200000 + 150000});
		runs.push_back(run);
	}
	return runs;
}

TEST(ProfileTrace, OneEventPerOpPerRunOnNamedTracks)
{
	Model model;
	Program p = mlp_program(model);
	auto ops = profile::describe(p);
	ASSERT_EQ(ops.size(), p.ops.size());
	ASSERT_GE(ops.size(), 3u);
	EXPECT_EQ(ops[0].name, "Dense");
	EXPECT_EQ(ops[0].module, "/Dense_0");
	EXPECT_GT(ops[0].cost.flops, 0u);

	const int runs = 3;
	auto j = nlohmann::json::parse(profile::make_trace(ops, fake_runs(ops.size(), runs), "test"));
	ASSERT_TRUE(j.contains("traceEvents"));
	ASSERT_TRUE(j["traceEvents"].is_array());
	int op_events = 0, job_events = 0, counters = 0;
	std::map<int, std::string> thread_names;
	std::string process_name;
	std::map<int, double> last_end; // per run: ops on the ops track must not overlap
	for (const auto& e : j["traceEvents"]) {
		ASSERT_TRUE(e.contains("ph"));
		ASSERT_TRUE(e.contains("pid"));
		EXPECT_EQ(e["pid"], 1);
		std::string ph = e["ph"];
		if (ph == "M") {
			if (e["name"] == "thread_name")
				thread_names[e["tid"].get<int>()] = e["args"]["name"];
			if (e["name"] == "process_name")
				process_name = e["args"]["name"];
		} else if (ph == "X") {
			ASSERT_TRUE(e["ts"].is_number());
			ASSERT_TRUE(e["dur"].is_number());
			EXPECT_GE(e["dur"].get<double>(), 0.0);
			if (e["cat"] == "op") {
				op_events++;
				EXPECT_EQ(e["tid"], 2);
				EXPECT_TRUE(e["args"].contains("module"));
				EXPECT_TRUE(e["args"].contains("flops"));
				int run = e["args"]["run"];
				double ts = e["ts"];
				if (last_end.count(run)) {
					EXPECT_GE(ts + 1e-9, last_end[run]);
				}
				last_end[run] = ts + e["dur"].get<double>();
			} else if (e["cat"] == "job") {
				job_events++;
				EXPECT_EQ(e["tid"], 1);
				EXPECT_TRUE(e["args"].contains("job_id"));
				EXPECT_TRUE(e["args"].contains("queue_ns"));
			}
		} else if (ph == "C") {
			counters++;
			EXPECT_TRUE(e["args"].contains("GFLOP/s"));
		} else {
			ADD_FAILURE() << "unexpected phase " << ph;
		}
	}
	EXPECT_EQ(op_events, int(ops.size()) * runs);
	EXPECT_EQ(job_events, runs);
	EXPECT_GT(counters, 0);
	EXPECT_EQ(thread_names[1], "jobs");
	EXPECT_EQ(thread_names[2], "ops");
	EXPECT_EQ(process_name, "test");

	// runs without op timings: job events only
	auto no_ops = fake_runs(ops.size(), runs);
	for (auto& r : no_ops)
		r.ops.clear();
	j = nlohmann::json::parse(profile::make_trace(ops, no_ops, "test"));
	int x = 0;
	for (const auto& e : j["traceEvents"])
		x += e["ph"] == "X";
	EXPECT_EQ(x, runs);
}

TEST(ProfileTable, RowsPerOpAndJobLevelFallback)
{
	Model model;
	Program p = mlp_program(model);
	auto ops = profile::describe(p);
	std::string table = profile::format_table(ops, fake_runs(ops.size(), 2));
	EXPECT_NE(table.find("GFLOP/s"), std::string::npos) << table;
	EXPECT_NE(table.find("/Dense_0"), std::string::npos) << table;
	EXPECT_NE(table.find("queue mean 0.100 ms"), std::string::npos) << table;
	auto no_ops = fake_runs(ops.size(), 2);
	for (auto& r : no_ops)
		r.ops.clear();
	table = profile::format_table(ops, no_ops);
	EXPECT_NE(table.find("per-op timings: none"), std::string::npos) << table;
	EXPECT_EQ(table.find("GFLOP/s"), std::string::npos) << table;
}

TEST(ProfileLocal, LastCallHasOneTimingPerOp)
{
	Model model;
	Program p = mlp_program(model);
	Variables vars = read_variables(source_dir() + "/examples/mlp/params.msgpack");
	Tensor x = read_npy(source_dir() + "/examples/mlp/input.npy");
	DeviceOptions o;
	o.profile = true;
	auto dev = Device::open("local", o);
	auto bound = dev->bind(model, vars, x.shape);
	bound->apply(x);
	const CallProfile& c = bound->last_call();
	EXPECT_EQ(c.job_id, 0u);
	EXPECT_GT(c.wall_ns, 0u);
	EXPECT_GT(c.exec_ns, 0u);
	// lavapipe has timestamps and pipeline statistics
	ASSERT_EQ(c.ops.size(), p.ops.size());
	for (uint32_t i = 0; i < c.ops.size(); i++) {
		EXPECT_EQ(c.ops[i].op_index, i);
		EXPECT_EQ(c.ops[i].opcode, p.ops[i].opcode);
		EXPECT_LE(c.ops[i].start_ns, c.ops[i].end_ns);
	}
	EXPECT_GT(c.shader_invocations, 0u);
	bound->close();
}

// -------------------------------------------------------------------- top

struct FakeProc {
	std::filesystem::path root;
	FakeProc() : root(std::filesystem::temp_directory_path() / ("flaxdrm_proc_" + std::to_string(getpid())))
	{
		std::filesystem::remove_all(root);
	}
	~FakeProc() { std::filesystem::remove_all(root); }
	void comm(int pid, const std::string& c) const
	{
		std::filesystem::create_directories(root / std::to_string(pid) / "fdinfo");
		std::ofstream(root / std::to_string(pid) / "comm") << c << "\n";
	}
	void fd(int pid, const std::string& fd, const std::string& text) const
	{
		std::filesystem::create_directories(root / std::to_string(pid) / "fdinfo");
		std::ofstream(root / std::to_string(pid) / "fdinfo" / fd) << text;
	}
};

std::string flaxdrm_fdinfo(uint64_t client, uint64_t engine_ns, uint64_t kib)
{
	// what flaxdrm.ko prints on 6.1
	return "pos:\t0\nflags:\t02100002\nmnt_id:\t24\nino:\t123\ndrm-driver:\tflaxdrm\ndrm-client-id:\t" +
	       std::to_string(client) + "\ndrm-engine-compute:\t" + std::to_string(engine_ns) +
	       " ns\ndrm-memory-system:\t" + std::to_string(kib) + " KiB\n";
}

std::map<std::string, std::string> parse_plain_line(const std::string& line)
{
	std::map<std::string, std::string> kv;
	std::istringstream in(line);
	std::string word;
	while (in >> word) {
		auto eq = word.find('=');
		EXPECT_NE(eq, std::string::npos) << word;
		kv[word.substr(0, eq)] = word.substr(eq + 1);
	}
	return kv;
}

TEST(Top, ParsesFdinfo)
{
	auto kv = top::parse_fdinfo(flaxdrm_fdinfo(7, 1234, 64));
	EXPECT_EQ(kv["drm-driver"], "flaxdrm");
	EXPECT_EQ(kv["drm-client-id"], "7");
	EXPECT_EQ(kv["drm-engine-compute"], "1234 ns");
	EXPECT_EQ(kv["drm-memory-system"], "64 KiB");
}

TEST(Top, SyntheticProcTreeBusyAndPlainOutput)
{
	FakeProc proc;
	proc.comm(100, "flaxdrm");
	proc.fd(100, "3", flaxdrm_fdinfo(7, 1000000, 64));
	proc.fd(100, "4", flaxdrm_fdinfo(7, 1000000, 64)); // a dup of the same file
	proc.fd(100, "5", "pos:\t0\nflags:\t0\n");           // not DRM
	proc.comm(200, "other gpu app");
	proc.fd(200, "3", "drm-driver:\tamdgpu\ndrm-client-id:\t3\ndrm-engine-gfx:\t99 ns\n");
	proc.comm(300, "my client");
	// a 6.12-style entry with the core's memory keys and a job counter
	proc.fd(300, "9",
		"drm-driver:\tflaxdrm\ndrm-client-id:\t9\ndrm-engine-compute:\t0 ns\ndrm-total-system:\t2 MiB\n"
		"drm-resident-system:\t1 MiB\nflaxdrm-jobs-completed:\t4\n");
	std::filesystem::create_directories(proc.root / "self");
	std::filesystem::create_directories(proc.root / "sys");

	auto before = top::scan(proc.root.string());
	ASSERT_EQ(before.size(), 2u);
	EXPECT_EQ(before[0].client_id, 7u);
	EXPECT_EQ(before[0].pid, 100);
	EXPECT_EQ(before[0].comm, "flaxdrm");
	EXPECT_EQ(before[0].fds, 2);
	EXPECT_EQ(before[0].engine_ns, 1000000u);
	EXPECT_EQ(before[0].memory_bytes.at("system"), 64u * 1024);
	EXPECT_FALSE(before[0].jobs.has_value());
	EXPECT_EQ(before[1].client_id, 9u);
	EXPECT_EQ(before[1].memory_bytes.at("total-system"), 2u << 20);
	ASSERT_TRUE(before[1].jobs.has_value());

	// 10 ms later: client 7 got 5 ms of engine time, client 9 completed 10 jobs
	proc.fd(100, "3", flaxdrm_fdinfo(7, 6000000, 64));
	proc.fd(100, "4", flaxdrm_fdinfo(7, 6000000, 64));
	proc.fd(300, "9",
		"drm-driver:\tflaxdrm\ndrm-client-id:\t9\ndrm-engine-compute:\t0 ns\ndrm-total-system:\t2 MiB\n"
		"flaxdrm-jobs-completed:\t14\n");
	auto after = top::scan(proc.root.string());
	auto rows = top::compare(before, after, 10000000);
	ASSERT_EQ(rows.size(), 2u);
	EXPECT_NEAR(rows[0].busy_pct, 50.0, 1e-9);
	EXPECT_FALSE(rows[0].jobs_per_s.has_value());
	ASSERT_TRUE(rows[1].jobs_per_s.has_value());
	EXPECT_NEAR(*rows[1].jobs_per_s, 1000.0, 1e-6);

	std::string plain = top::format_plain(rows);
	std::istringstream lines(plain);
	std::string line;
	std::vector<std::map<std::string, std::string>> parsed;
	while (std::getline(lines, line))
		parsed.push_back(parse_plain_line(line));
	ASSERT_EQ(parsed.size(), 2u);
	EXPECT_EQ(parsed[0]["client_id"], "7");
	EXPECT_EQ(parsed[0]["pid"], "100");
	EXPECT_EQ(parsed[0]["comm"], "flaxdrm");
	EXPECT_EQ(parsed[0]["engine_ns"], "6000000");
	EXPECT_EQ(parsed[0]["busy_pct"], "50.00");
	EXPECT_EQ(parsed[0]["jobs_per_s"], "-");
	EXPECT_EQ(parsed[0]["mem_system_bytes"], "65536");
	EXPECT_EQ(parsed[1]["comm"], "my_client");
	EXPECT_EQ(parsed[1]["jobs_per_s"], "1000.00");

	EXPECT_NE(top::format_table(rows, 10000000).find("COMMAND"), std::string::npos);
}

TEST(Top, NoClientsIsEmptyNotAnError)
{
	FakeProc proc;
	std::filesystem::create_directories(proc.root);
	EXPECT_TRUE(top::scan(proc.root.string()).empty());
	EXPECT_TRUE(top::scan((proc.root / "missing").string()).empty());
	EXPECT_EQ(top::format_plain({}), "");
}

} // namespace
