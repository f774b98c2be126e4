// Helpers shared by ops_conv_test.cpp and ops_dense_test.cpp: programs
// built from drm_flaxdrm_tensor / drm_flaxdrm_op, run bindings, the two
// test devices, a minimal .npy reader, random data, tolerant comparison.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "flaxdrm/runtime.hpp"
#include "reference_conv.hpp"

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

struct Program {
	std::vector<drm_flaxdrm_tensor> tensors;
	std::vector<drm_flaxdrm_op> ops;

	uint32_t tensor(uint32_t kind, const std::vector<uint32_t>& dims, uint32_t dtype = FLAXDRM_DTYPE_F32,
			uint32_t module = 0, const char* collection = "", const char* name = "")
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
		tensors.push_back(t);
		return uint32_t(tensors.size() - 1);
	}
	uint32_t input(const std::vector<uint32_t>& dims, uint32_t dtype = FLAXDRM_DTYPE_F32)
	{
		return tensor(FLAXDRM_TENSOR_INPUT, dims, dtype);
	}
	uint32_t output(const std::vector<uint32_t>& dims) { return tensor(FLAXDRM_TENSOR_OUTPUT, dims); }
	uint32_t temp(const std::vector<uint32_t>& dims) { return tensor(FLAXDRM_TENSOR_TEMP, dims); }
	uint32_t variable(uint32_t module, const char* name, const std::vector<uint32_t>& dims)
	{
		return tensor(FLAXDRM_TENSOR_VARIABLE, dims, FLAXDRM_DTYPE_F32, module, "params", name);
	}
	drm_flaxdrm_op& op(uint32_t opcode, uint32_t module, const std::vector<uint32_t>& in,
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
		ops.push_back(o);
		return ops.back();
	}
};

// One entry per tensor; VARIABLEs are uploaded for the run only (key 0).
struct Bindings {
	std::vector<rt::TensorMemory> mem;
	explicit Bindings(const Program& p) : mem(p.tensors.size()) {}
	template <typename T>
	void host(uint32_t t, std::vector<T>& v)
	{
		mem[t].host = v.data();
		mem[t].size = v.size() * sizeof(T);
	}
};

// The default device, and one forced onto the fallback paths (pooled
// descriptor sets, staging copies, the portable GPU-style kernels), with
// one executor each; executors are destroyed before their devices.
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

inline rt::Device& device(bool fallback)
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

inline rt::Executor& executor(bool fallback)
{
	auto& e = TestDevices::get().ex[fallback];
	if (!e)
		e = rt::Executor::create(device(fallback));
	return *e;
}

// Float32 C-order .npy files only; throws on anything else.
inline std::vector<float> read_npy(const std::string& path, std::vector<uint32_t>* shape = nullptr)
{
	std::ifstream f(path, std::ios::binary);
	if (!f)
		throw std::runtime_error("cannot open " + path);
	char magic[8];
	f.read(magic, 8);
	if (std::memcmp(magic, "\x93NUMPY", 6) != 0)
		throw std::runtime_error(path + ": not an .npy file");
	uint32_t hlen = 0;
	if (magic[6] == 1) {
		unsigned char b[2];
		f.read(reinterpret_cast<char*>(b), 2);
		hlen = b[0] | (b[1] << 8);
	} else {
		unsigned char b[4];
		f.read(reinterpret_cast<char*>(b), 4);
		hlen = b[0] | (b[1] << 8) | (b[2] << 16) | (uint32_t(b[3]) << 24);
	}
	std::string header(hlen, '\0');
	f.read(header.data(), hlen);
	if (header.find("'<f4'") == std::string::npos || header.find("'fortran_order': False") == std::string::npos)
		throw std::runtime_error(path + ": expected little-endian float32 in C order: " + header);
	const auto lp = header.find('('), rp = header.find(')');
	std::vector<uint32_t> dims;
	std::size_t count = 1;
	std::stringstream ss(header.substr(lp + 1, rp - lp - 1));
	std::string item;
	while (std::getline(ss, item, ','))
		if (item.find_first_not_of(' ') != std::string::npos) {
			dims.push_back(uint32_t(std::stoul(item)));
			count *= dims.back();
		}
	std::vector<float> v(count);
	f.read(reinterpret_cast<char*>(v.data()), std::streamsize(count * 4));
	if (!f)
		throw std::runtime_error(path + ": truncated");
	if (shape)
		*shape = dims;
	return v;
}

// nmse over the finite reference values; NaN and infinities of the
// reference must be matched exactly (counted in `special_mismatch`).
struct Check {
	double nmse = 0;
	std::size_t special_mismatch = 0;
	std::size_t first_bad = SIZE_MAX;
};

inline Check check(const std::vector<float>& got, const std::vector<float>& want)
{
	Check c;
	double err2 = 0, ref2 = 0;
	if (got.size() != want.size()) {
		c.nmse = INFINITY;
		return c;
	}
	for (std::size_t i = 0; i < want.size(); i++) {
		if (!std::isfinite(want[i]) || !std::isfinite(got[i])) {
			const bool ok = std::isnan(want[i]) ? std::isnan(got[i]) : got[i] == want[i];
			if (!ok && c.special_mismatch++ == 0)
				c.first_bad = i;
			continue;
		}
		const double e = double(got[i]) - double(want[i]);
		err2 += e * e;
		ref2 += double(want[i]) * double(want[i]);
	}
	c.nmse = ref2 > 0 ? err2 / ref2 : err2;
	return c;
}

#define EXPECT_MATCHES(got, want, tol)                                                                  \
	do {                                                                                            \
		const auto c_ = ::flaxdrm::optest::check(got, want);                                    \
		EXPECT_LE(c_.nmse, tol);                                                                \
		EXPECT_EQ(c_.special_mismatch, 0u)                                                      \
			<< "first at " << c_.first_bad << ": got " << (got)[c_.first_bad] << " want "   \
			<< (want)[c_.first_bad];                                                        \
	} while (0)

inline uint32_t f32_bits(float f)
{
	uint32_t u;
	std::memcpy(&u, &f, 4);
	return u;
}

} // namespace flaxdrm::optest
