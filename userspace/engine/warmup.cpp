// Pipeline warm-up: runs tiny Dense + relu programs for the row counts
// that select distinct GEMM pipelines, so the first client job does not
// pay for shader compilation (seconds on lavapipe under emulation, against
// the kernel's per-job timeout).
#include <chrono>
#include <cstdio>
#include <vector>

#include "flaxdrm/engine.hpp"

namespace flaxdrm::engine {

namespace {

drm_flaxdrm_tensor tensor(uint32_t kind, std::initializer_list<uint32_t> dims, const char* name = nullptr)
{
	drm_flaxdrm_tensor t{};
	t.kind = kind;
	t.dtype = FLAXDRM_DTYPE_F32;
	t.rank = static_cast<uint32_t>(dims.size());
	uint32_t i = 0;
	for (uint32_t d : dims)
		t.dims[i++] = d;
	if (name) {
		t.module = 1;
		std::snprintf(t.collection, sizeof(t.collection), "params");
		std::snprintf(t.name, sizeof(t.name), "%s", name);
	}
	return t;
}

// Keys for resident warm-up variables; dropped again right away.
constexpr uint64_t kWarmKernel = ~0ull - 1, kWarmBias = ~0ull - 2;

void run_dense(rt::Executor& ex, uint32_t M, uint32_t K, uint32_t N, bool resident = false)
{
	std::vector<drm_flaxdrm_tensor> t = {
		tensor(FLAXDRM_TENSOR_INPUT, {M, K}),
		tensor(FLAXDRM_TENSOR_VARIABLE, {K, N}, "kernel"),
		tensor(FLAXDRM_TENSOR_VARIABLE, {N}, "bias"),
		tensor(FLAXDRM_TENSOR_TEMP, {M, N}),
		tensor(FLAXDRM_TENSOR_OUTPUT, {M, N}),
	};
	std::vector<drm_flaxdrm_op> ops(2);
	ops[0].opcode = FLAXDRM_OP_DENSE;
	ops[0].module = 1;
	ops[0].num_inputs = 3;
	ops[0].inputs[0] = 0;
	ops[0].inputs[1] = 1;
	ops[0].inputs[2] = 2;
	ops[0].num_outputs = 1;
	ops[0].outputs[0] = 3;
	ops[1].opcode = FLAXDRM_OP_RELU;
	ops[1].num_inputs = 1;
	ops[1].inputs[0] = 3;
	ops[1].num_outputs = 1;
	ops[1].outputs[0] = 4;

	std::vector<float> x(std::size_t{M} * K, 1.0f), k(std::size_t{K} * N, 0.5f), b(N, 0.25f),
		y(std::size_t{M} * N);
	std::vector<rt::TensorMemory> mem(t.size());
	mem[0] = {x.data(), x.size() * 4};
	mem[1] = {k.data(), k.size() * 4}; // var_key 0: not cached
	mem[2] = {b.data(), b.size() * 4};
	mem[4] = {y.data(), y.size() * 4};
	if (resident) {
		// the setup path: variables made resident first, as clients do
		ex.load_variable(kWarmKernel, 1, t[1], k.data());
		ex.load_variable(kWarmBias, 1, t[2], b.data());
		mem[1].var_key = kWarmKernel;
		mem[1].var_generation = 1;
		mem[2].var_key = kWarmBias;
		mem[2].var_generation = 1;
	}
	try {
		ex.run(t, ops, mem);
	} catch (...) {
		ex.drop_variable(kWarmKernel);
		ex.drop_variable(kWarmBias);
		throw;
	}
	ex.drop_variable(kWarmKernel);
	ex.drop_variable(kWarmBias);
}

} // namespace

void warm_up(rt::Executor& executor)
{
	auto t0 = std::chrono::steady_clock::now();
	// GEMM tiles depend on the rows (1, 2, 4, 8, 16, full tiles) and on
	// whether K and N allow vector loads (4) or not (3).
	const uint32_t rows[] = {1, 2, 4, 8, 16, 128};
	for (uint32_t m : rows) {
		try {
			run_dense(executor, m, 4, 4);
		} catch (const std::exception& e) {
			error("warm-up with %u rows failed: %s", m, e.what());
		}
	}
	try {
		run_dense(executor, 1, 3, 3);
		// resident variables and MLP-like sizes (vector and scalar paths)
		run_dense(executor, 8, 32, 64, true);
		run_dense(executor, 8, 64, 10, true);
	} catch (const std::exception& e) {
		error("warm-up (scalar, resident) failed: %s", e.what());
	}
	log("warm-up done in %.1f s",
	    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

} // namespace flaxdrm::engine
