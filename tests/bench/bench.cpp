// flaxdrm-bench: the runtime's ops through rt::Executor on the local
// Vulkan device (lavapipe on a CPU-only host), each beside a baseline.
//
//  - GEMM (a Dense op, kernel resident as a module variable) at square and
//    MLP shapes, against OpenBLAS cblas_sgemm in this process: each
//    benchmark times OpenBLAS first on the same shape and reports the
//    counters GFLOPS, openblas_GFLOPS and vs_openblas (flaxdrm speed over
//    OpenBLAS speed: above 1 is faster than OpenBLAS).
//  - attention (batch 1, sequence 512, 8 heads, head dim 64) and the
//    ResNet 3x3 conv layer (1 x 56 x 56 x 64 -> 64, SAME): their baselines
//    are torch CPU, timed by tests/bench/torch_baseline.py; run.sh puts
//    the two together in one table.
//  - f16 GEMM (a Dense on f16 tensors) beside the f32 Dense of the same
//    shape and cblas_sgemm, all timed in the same run.
//  - LayerNorm (4096 x 512) and BatchNorm training (8 x 56 x 56 x 64),
//    against torch CPU likewise.
//  - attention, conv, LayerNorm and BatchNorm also on f16 tensors (arg
//    f16 = 1: every float tensor f16, f32 arithmetic inside); run.sh sets
//    each beside the same op on f32 from this run.
//
// Times are host wall time of Executor::run (uploading inputs, the
// dispatches, reading outputs back), per iteration: flaxdrm_ms the mean,
// flaxdrm_min_ms the best; device_ms is the device's own timestamp span of
// the op (mean) where the device has timestamps; cpu_ms is this process's
// CPU time per iteration (all threads, lavapipe's too), which compares two
// builds on a loaded machine better than wall time. Baselines report their
// best call, so ratios compare best with best (the machine may be shared).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <time.h>

#include <benchmark/benchmark.h>
#include <cblas.h>

#include "flaxdrm/runtime.hpp"

namespace rt = flaxdrm::rt;

namespace {

using Clock = std::chrono::steady_clock;

struct Env {
	std::unique_ptr<rt::Device> device;
	std::unique_ptr<rt::Executor> executor;
};

Env& env()
{
	static Env e = [] {
		Env x;
		x.device = rt::Device::create();
		x.executor = rt::Executor::create(*x.device);
		return x;
	}();
	return e;
}

std::vector<float> random_vector(std::size_t n, uint32_t seed)
{
	std::mt19937 gen(seed);
	std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
	std::vector<float> v(n);
	for (auto& x : v)
		x = dist(gen);
	return v;
}

// n random f16 values in [-1, 1], packed two per float of the vector.
std::vector<float> random_f16(std::size_t n, uint32_t seed)
{
	const std::vector<float> v = random_vector(n, seed);
	std::vector<float> packed((n + 1) / 2);
	for (std::size_t i = 0; i < n; i++) {
		const _Float16 h = static_cast<_Float16>(v[i]);
		std::memcpy(reinterpret_cast<char*>(packed.data()) + 2 * i, &h, 2);
	}
	return packed;
}

drm_flaxdrm_tensor tensor(uint32_t kind, std::initializer_list<uint32_t> dims, const char* name = "",
			  uint32_t dtype = FLAXDRM_DTYPE_F32)
{
	drm_flaxdrm_tensor t;
	std::memset(&t, 0, sizeof t);
	t.kind = kind;
	t.dtype = dtype;
	t.rank = uint32_t(dims.size());
	uint32_t i = 0;
	for (uint32_t d : dims)
		t.dims[i++] = d;
	if (kind == FLAXDRM_TENSOR_VARIABLE) {
		t.module = 1;
		std::strncpy(t.collection, "params", sizeof t.collection - 1);
		std::strncpy(t.name, name, sizeof t.name - 1);
	}
	return t;
}

// A one-op program with its host memory; variables resident after the
// first run (a fresh cache key per program).
struct OneOp {
	std::vector<drm_flaxdrm_tensor> tensors;
	std::vector<rt::TensorMemory> mem;
	std::vector<std::vector<float>> data;
	drm_flaxdrm_op op{};

	uint32_t add(const drm_flaxdrm_tensor& t, uint32_t seed)
	{
		static uint64_t next_key = 1000;
		std::size_t n = 1;
		for (uint32_t i = 0; i < t.rank; i++)
			n *= t.dims[i];
		tensors.push_back(t);
		data.push_back(t.dtype == FLAXDRM_DTYPE_F16 ? random_f16(n, seed) : random_vector(n, seed));
		rt::TensorMemory m;
		m.size = n * (t.dtype == FLAXDRM_DTYPE_F16 ? 2 : 4);
		if (t.kind == FLAXDRM_TENSOR_VARIABLE) {
			m.var_key = next_key++;
			m.var_generation = 1;
		}
		mem.push_back(m);
		return uint32_t(tensors.size() - 1);
	}
	void in(uint32_t t) { op.inputs[op.num_inputs++] = t; }
	void out(uint32_t t) { op.outputs[op.num_outputs++] = t; }

	rt::RunStats run()
	{
		for (std::size_t i = 0; i < mem.size(); i++)
			mem[i].host = data[i].data();
		return env().executor->run(tensors, std::span(&op, 1), mem);
	}
};

// Times op.run() per iteration (manual time) and reports GFLOPS and the
// device's own time of the op.
void time_runs(benchmark::State& state, OneOp& p, double flops)
{
	const auto t_first = Clock::now();
	p.run(); // pipelines (compiled on first use), variable upload
	state.counters["first_run_ms"] = std::chrono::duration<double>(Clock::now() - t_first).count() * 1e3;
	double total = 0, device_ns = 0, best = INFINITY;
	int64_t n = 0;
	// Process CPU time (all threads, lavapipe's included): on a loaded
	// machine a steadier measure of the work than wall time.
	timespec cpu0{}, cpu1{};
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu0);
	for (auto _ : state) {
		const auto t0 = Clock::now();
		const rt::RunStats stats = p.run();
		const double s = std::chrono::duration<double>(Clock::now() - t0).count();
		state.SetIterationTime(s);
		total += s;
		best = std::min(best, s);
		if (!stats.ops.empty())
			device_ns += double(stats.ops[0].end_ns - stats.ops[0].start_ns);
		n++;
	}
	if (flops > 0)
		state.counters["GFLOPS"] = flops * double(n) / total * 1e-9;
	if (device_ns > 0)
		state.counters["device_ms"] = device_ns / double(n) * 1e-6;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu1);
	state.counters["cpu_ms"] =
		(double(cpu1.tv_sec - cpu0.tv_sec) * 1e3 + double(cpu1.tv_nsec - cpu0.tv_nsec) * 1e-6) / double(n);
	state.counters["flaxdrm_ms"] = total / double(n) * 1e3;
	// Best iteration: the statistic the baselines report too (robust to
	// other load on a shared machine).
	state.counters["flaxdrm_min_ms"] = best * 1e3;
}

// ------------------------------------------------------------ GEMM

// Seconds per cblas_sgemm C[M,N] = A[M,K] B[K,N], best of repeated runs
// over at least min_seconds.
double openblas_seconds(int M, int K, int N, double min_seconds)
{
	auto a = random_vector(std::size_t(M) * K, 1), b = random_vector(std::size_t(K) * N, 2);
	std::vector<float> c(std::size_t(M) * N);
	auto once = [&] {
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a.data(), K, b.data(), N, 0.0f,
			    c.data(), N);
	};
	once(); // threads, pages
	double best = INFINITY, spent = 0;
	int reps = 0;
	while (spent < min_seconds || reps < 3) {
		const auto t0 = Clock::now();
		once();
		const double s = std::chrono::duration<double>(Clock::now() - t0).count();
		best = std::min(best, s);
		spent += s;
		reps++;
	}
	benchmark::DoNotOptimize(c.data());
	return best;
}

void BM_Gemm(benchmark::State& state)
{
	const int M = int(state.range(0)), K = int(state.range(1)), N = int(state.range(2));
	const double flops = 2.0 * M * K * N;
	const double blas = openblas_seconds(M, K, N, 0.2);

	OneOp p;
	p.op.opcode = FLAXDRM_OP_DENSE;
	p.op.module = 1;
	p.in(p.add(tensor(FLAXDRM_TENSOR_INPUT, {uint32_t(M), uint32_t(K)}), 3));
	p.in(p.add(tensor(FLAXDRM_TENSOR_VARIABLE, {uint32_t(K), uint32_t(N)}, "kernel"), 4));
	p.out(p.add(tensor(FLAXDRM_TENSOR_OUTPUT, {uint32_t(M), uint32_t(N)}), 5));
	time_runs(state, p, flops);

	state.counters["openblas_GFLOPS"] = flops / blas * 1e-9;
	state.counters["openblas_ms"] = blas * 1e3;
	// Best iteration against best OpenBLAS call.
	state.counters["vs_openblas"] = blas * 1e3 / state.counters["flaxdrm_min_ms"].value;
	state.SetLabel(std::to_string(M) + "x" + std::to_string(K) + "x" + std::to_string(N));
}

// f16 Dense (Flax dtype=jnp.float16: f16 in and out, f32 accumulation) on
// the same shape as an f32 Dense and cblas_sgemm, all three in this run:
// vs_f32 is the f32 Dense's best time over the f16 one's (above 1: f16 is
// faster), vs_openblas as in BM_Gemm.
void BM_GemmF16(benchmark::State& state)
{
	const int M = int(state.range(0)), K = int(state.range(1)), N = int(state.range(2));
	const double flops = 2.0 * M * K * N;
	const double blas = openblas_seconds(M, K, N, 0.2);
	if (!env().device->info().f16) {
		state.SkipWithError("the device has no f16");
		return;
	}
	auto dense = [&](OneOp& p, uint32_t dtype) {
		p.op.opcode = FLAXDRM_OP_DENSE;
		p.op.module = 1;
		drm_flaxdrm_tensor x = tensor(FLAXDRM_TENSOR_INPUT, {uint32_t(M), uint32_t(K)});
		drm_flaxdrm_tensor w = tensor(FLAXDRM_TENSOR_VARIABLE, {uint32_t(K), uint32_t(N)}, "kernel");
		drm_flaxdrm_tensor y = tensor(FLAXDRM_TENSOR_OUTPUT, {uint32_t(M), uint32_t(N)});
		x.dtype = w.dtype = y.dtype = dtype;
		p.in(p.add(x, 3));
		p.in(p.add(w, 4));
		p.out(p.add(y, 5));
	};
	// The f32 Dense: best of runs over at least 0.2 s, as the baselines.
	OneOp f32;
	dense(f32, FLAXDRM_DTYPE_F32);
	f32.run();
	double f32_best = INFINITY, spent = 0;
	for (int reps = 0; spent < 0.2 || reps < 3; reps++) {
		const auto t0 = Clock::now();
		f32.run();
		const double s = std::chrono::duration<double>(Clock::now() - t0).count();
		f32_best = std::min(f32_best, s);
		spent += s;
	}

	OneOp p;
	dense(p, FLAXDRM_DTYPE_F16);
	time_runs(state, p, flops);

	state.counters["f32_ms"] = f32_best * 1e3;
	state.counters["vs_f32"] = f32_best * 1e3 / state.counters["flaxdrm_min_ms"].value;
	state.counters["openblas_ms"] = blas * 1e3;
	state.counters["vs_openblas"] = blas * 1e3 / state.counters["flaxdrm_min_ms"].value;
	state.SetLabel(std::to_string(M) + "x" + std::to_string(K) + "x" + std::to_string(N) + " f16");
}

// The dtype of a benchmark's float tensors from its f16 argument; false
// (and the benchmark skipped) when f16 is asked for and the device has none.
bool float_dtype(benchmark::State& state, int64_t f16_arg, uint32_t* dtype)
{
	*dtype = f16_arg ? FLAXDRM_DTYPE_F16 : FLAXDRM_DTYPE_F32;
	if (f16_arg && !env().device->info().f16) {
		state.SkipWithError("the device has no f16");
		return false;
	}
	return true;
}

// ------------------------------------------------------------ attention

void BM_Attention(benchmark::State& state)
{
	const uint32_t B = 1, L = uint32_t(state.range(0)), H = uint32_t(state.range(1)), D = uint32_t(state.range(2));
	const bool causal = state.range(3) != 0;
	uint32_t dt;
	if (!float_dtype(state, state.range(4), &dt))
		return;
	OneOp p;
	p.op.opcode = FLAXDRM_OP_ATTENTION;
	p.op.attrs[0] = causal ? FLAXDRM_ATTN_CAUSAL : 0;
	p.in(p.add(tensor(FLAXDRM_TENSOR_INPUT, {B, L, H, D}, "", dt), 6));
	p.in(p.add(tensor(FLAXDRM_TENSOR_INPUT, {B, L, H, D}, "", dt), 7));
	p.in(p.add(tensor(FLAXDRM_TENSOR_INPUT, {B, L, H, D}, "", dt), 8));
	p.out(p.add(tensor(FLAXDRM_TENSOR_OUTPUT, {B, L, H, D}, "", dt), 9));
	// QK^T and PV (causal: the kernel skips the masked half).
	time_runs(state, p, 4.0 * B * H * L * L * D * (causal ? 0.5 : 1.0));
}

// ------------------------------------------------------------ conv

// ResNet 3x3 layer (tests/bench/conv_bench_kernels.md): NHWC, HWIO kernel
// and bias resident, stride 1, SAME (1 on each side).
void BM_Conv3x3(benchmark::State& state)
{
	const uint32_t N = uint32_t(state.range(0)), HW = 56, C = 64, F = 64;
	uint32_t dt;
	if (!float_dtype(state, state.range(1), &dt))
		return;
	OneOp p;
	p.op.opcode = FLAXDRM_OP_CONV;
	p.op.module = 1;
	const uint32_t attrs[12] = {1, 1, 1, 1, 1, 1, 1, FLAXDRM_PAD_ZERO, 1, 1, 1, 1};
	std::memcpy(p.op.attrs, attrs, sizeof attrs);
	p.in(p.add(tensor(FLAXDRM_TENSOR_INPUT, {N, HW, HW, C}, "", dt), 10));
	p.in(p.add(tensor(FLAXDRM_TENSOR_VARIABLE, {3, 3, C, F}, "kernel", dt), 11));
	p.in(p.add(tensor(FLAXDRM_TENSOR_VARIABLE, {F}, "bias", dt), 12));
	p.out(p.add(tensor(FLAXDRM_TENSOR_OUTPUT, {N, HW, HW, F}, "", dt), 13));
	time_runs(state, p, 2.0 * N * HW * HW * F * 9 * C);
}

// ------------------------------------------------------------ normalisation

// LayerNorm over the last axis of x[rows, C] with scale and bias.
void BM_LayerNorm(benchmark::State& state)
{
	const uint32_t R = uint32_t(state.range(0)), C = uint32_t(state.range(1));
	uint32_t dt;
	if (!float_dtype(state, state.range(2), &dt))
		return;
	OneOp p;
	p.op.opcode = FLAXDRM_OP_LAYER_NORM;
	p.op.module = 1;
	p.op.attrs[0] = 0x358637bd; // 1e-6f
	p.op.attrs[2] = FLAXDRM_NORM_SCALE | FLAXDRM_NORM_BIAS;
	p.in(p.add(tensor(FLAXDRM_TENSOR_INPUT, {R, C}, "", dt), 14));
	p.in(p.add(tensor(FLAXDRM_TENSOR_VARIABLE, {C}, "scale", dt), 15));
	p.in(p.add(tensor(FLAXDRM_TENSOR_VARIABLE, {C}, "bias", dt), 16));
	p.out(p.add(tensor(FLAXDRM_TENSOR_OUTPUT, {R, C}, "", dt), 17));
	time_runs(state, p, 0);
}

// BatchNorm in training over x[N, 56, 56, 64]: batch statistics, y and the
// new running statistics.
void BM_BatchNormTrain(benchmark::State& state)
{
	const uint32_t N = uint32_t(state.range(0)), HW = 56, C = 64;
	uint32_t dt;
	if (!float_dtype(state, state.range(1), &dt))
		return;
	OneOp p;
	p.op.opcode = FLAXDRM_OP_BATCH_NORM;
	p.op.module = 1;
	p.op.attrs[0] = 0x3727c5ac; // 1e-5f
	p.op.attrs[1] = 0x3f7d70a4; // 0.99f
	p.op.attrs[2] = FLAXDRM_NORM_SCALE | FLAXDRM_NORM_BIAS | FLAXDRM_NORM_TRAINING;
	p.in(p.add(tensor(FLAXDRM_TENSOR_INPUT, {N, HW, HW, C}, "", dt), 18));
	for (const char* name : {"mean", "var", "scale", "bias"})
		p.in(p.add(tensor(FLAXDRM_TENSOR_VARIABLE, {C}, name, dt), 19));
	p.out(p.add(tensor(FLAXDRM_TENSOR_OUTPUT, {N, HW, HW, C}, "", dt), 20));
	p.out(p.add(tensor(FLAXDRM_TENSOR_OUTPUT, {C}, "", dt), 21));
	p.out(p.add(tensor(FLAXDRM_TENSOR_OUTPUT, {C}, "", dt), 22));
	time_runs(state, p, 0);
}

} // namespace

BENCHMARK(BM_Gemm)
	->ArgNames({"M", "K", "N"})
	->Args({256, 256, 256})
	->Args({512, 512, 512})
	->Args({1024, 1024, 1024})
	->Args({2048, 2048, 2048})
	->Args({64, 784, 256})
	->Args({64, 256, 10})
	->Args({1, 1024, 1024})
	->UseManualTime()
	->Unit(benchmark::kMillisecond)
	->MinTime(0.3);

BENCHMARK(BM_GemmF16)
	->ArgNames({"M", "K", "N"})
	->Args({256, 256, 256})
	->Args({1024, 1024, 1024})
	->Args({64, 784, 256})
	->UseManualTime()
	->Unit(benchmark::kMillisecond)
	->MinTime(0.3);

BENCHMARK(BM_Attention)
	->ArgNames({"L", "H", "D", "causal", "f16"})
	->Args({512, 8, 64, 0, 0})
	->Args({512, 8, 64, 1, 0})
	->Args({512, 8, 64, 0, 1})
	->UseManualTime()
	->Unit(benchmark::kMillisecond)
	->MinTime(0.5);

BENCHMARK(BM_LayerNorm)
	->ArgNames({"rows", "C", "f16"})
	->Args({4096, 512, 0})
	->Args({4096, 512, 1})
	->UseManualTime()
	->Unit(benchmark::kMillisecond)
	->MinTime(0.3);

BENCHMARK(BM_BatchNormTrain)
	->ArgNames({"N", "f16"})
	->Args({8, 0})
	->Args({8, 1})
	->UseManualTime()
	->Unit(benchmark::kMillisecond)
	->MinTime(0.3);

BENCHMARK(BM_Conv3x3)
	->ArgNames({"N", "f16"})
	->Args({1, 0})
	->Args({1, 1})
	->UseManualTime()
	->Unit(benchmark::kMillisecond)
	->MinTime(0.5);

int main(int argc, char** argv)
{
	benchmark::Initialize(&argc, argv);
	if (benchmark::ReportUnrecognizedArguments(argc, argv))
		return 1;
	const rt::DeviceInfo& info = env().device->info();
	benchmark::AddCustomContext("flaxdrm_device", info.name + " (" + info.driver + ")");
	benchmark::AddCustomContext("openblas_threads", std::to_string(openblas_get_num_threads()));
	benchmark::RunSpecifiedBenchmarks();
	benchmark::Shutdown();
	return 0;
}
