// What the op tests share: random data, tensor and op descriptors, host
// bindings, the two test devices with one executor each, and the nmse check.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "cpu_reference.hpp"
#include "flaxdrm/runtime.hpp"

namespace flaxdrm::optest {

namespace rt = flaxdrm::rt;

inline std::vector<float> random_vector(std::size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f)
{
	std::mt19937 gen(seed);
	std::uniform_real_distribution<float> dist(lo, hi);
	std::vector<float> v(n);
	for (auto& x : v)
		x = dist(gen);
	return v;
}

// The product of dims[from, to): an element count, or a GEMM's M, K or N.
inline uint64_t prod(const std::vector<uint32_t>& dims, std::size_t from = 0, std::size_t to = SIZE_MAX)
{
	uint64_t p = 1;
	for (std::size_t i = from; i < dims.size() && i < to; i++)
		p *= dims[i];
	return p;
}

// A Dense/DenseGeneral case of the f32 and f16 GEMM tests.
struct DenseCase {
	std::vector<uint32_t> x_dims; // [..., k1..kn]
	uint32_t n;                   // contracted axes (attrs[0]; 0 means 1)
	std::vector<uint32_t> f_dims; // features
	bool bias;
	bool fallback;
};

inline uint32_t f32_bits(float f)
{
	uint32_t u;
	std::memcpy(&u, &f, sizeof u);
	return u;
}

inline drm_flaxdrm_tensor tensor_desc(uint32_t kind, const std::vector<uint32_t>& dims,
				      uint32_t dtype = FLAXDRM_DTYPE_F32, uint32_t module = 0,
				      const char* collection = "", const char* name = "")
{
	drm_flaxdrm_tensor t;
	std::memset(&t, 0, sizeof t);
	t.kind = kind;
	t.dtype = dtype;
	t.rank = uint32_t(dims.size());
	for (std::size_t i = 0; i < dims.size(); i++)
		t.dims[i] = dims[i];
	t.module = module;
	std::strncpy(t.collection, collection, sizeof t.collection - 1);
	std::strncpy(t.name, name, sizeof t.name - 1);
	return t;
}

inline drm_flaxdrm_op op_desc(uint32_t opcode, uint32_t module, const std::vector<uint32_t>& in,
			      const std::vector<uint32_t>& out, const std::vector<uint32_t>& attrs = {})
{
	drm_flaxdrm_op o;
	std::memset(&o, 0, sizeof o);
	o.opcode = opcode;
	o.module = module;
	o.num_inputs = uint32_t(in.size());
	o.num_outputs = uint32_t(out.size());
	for (std::size_t i = 0; i < in.size(); i++)
		o.inputs[i] = in[i];
	for (std::size_t i = 0; i < out.size(); i++)
		o.outputs[i] = out[i];
	for (std::size_t i = 0; i < attrs.size(); i++)
		o.attrs[i] = attrs[i];
	return o;
}

// One entry per tensor; VARIABLEs are uploaded for the run only (key 0).
struct Bindings {
	std::vector<rt::TensorMemory> mem;
	template <typename P>
	explicit Bindings(const P& program) : mem(program.tensors.size())
	{
	}
	template <typename T>
	void host(uint32_t t, std::vector<T>& v)
	{
		mem[t].host = v.data();
		mem[t].size = v.size() * sizeof(T);
	}
};

// The default device, and one forced onto the fallback paths (pooled
// descriptor sets, staging copies, the portable GPU-style kernels), with
// one executor each, created once per process; executors are destroyed
// before their devices.
struct TestDevices {
	std::unique_ptr<rt::Device> dev[2];
	std::unique_ptr<rt::Executor> ex[2];
	~TestDevices()
	{
		for (auto& e : ex)
			e.reset();
	}
	static TestDevices& get()
	{
		static TestDevices d;
		return d;
	}
};

inline rt::Device& device(bool fallback = false)
{
	auto& d = TestDevices::get().dev[fallback];
	if (!d) {
		rt::DeviceOptions o;
		o.disable_push_descriptors = fallback;
		o.force_staging = fallback;
		o.disable_cpu_kernels = fallback;
		d = rt::Device::create(o);
	}
	return *d;
}

inline rt::Executor& executor(bool fallback = false)
{
	auto& e = TestDevices::get().ex[fallback];
	if (!e)
		e = rt::Executor::create(device(fallback));
	return *e;
}

// nmse of got against want at most tol.
inline ::testing::AssertionResult nmse_within(const std::vector<float>& got, const std::vector<float>& want,
					      double tol)
{
	const ref::Diff d = ref::compare(got, want);
	if (d.nmse <= tol)
		return ::testing::AssertionSuccess();
	return ::testing::AssertionFailure() << "nmse " << d.nmse << " > " << tol << ", max_abs " << d.max_abs;
}

} // namespace flaxdrm::optest
