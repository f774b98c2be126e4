// f16 helpers for the op tests: conversions through GCC's _Float16 (IEEE
// binary16, round to nearest even; ops_f16_test checks them against numpy)
// and skipping where the default device has no f16.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

#include "op_test_util.hpp"

namespace flaxdrm::optest {

inline uint16_t f16_bits(float f)
{
	const _Float16 h = static_cast<_Float16>(f);
	uint16_t b;
	std::memcpy(&b, &h, 2);
	return b;
}

inline float f16_value(uint16_t b)
{
	_Float16 h;
	std::memcpy(&h, &b, 2);
	return static_cast<float>(h);
}

inline std::vector<uint16_t> to_f16(const std::vector<float>& v)
{
	std::vector<uint16_t> h(v.size());
	for (std::size_t i = 0; i < v.size(); i++)
		h[i] = f16_bits(v[i]);
	return h;
}

inline std::vector<float> from_f16(const std::vector<uint16_t>& h)
{
	std::vector<float> v(h.size());
	for (std::size_t i = 0; i < h.size(); i++)
		v[i] = f16_value(h[i]);
	return v;
}

// The value an f16 tensor holds for each float: rounded to f16 and back.
inline std::vector<float> round_f16(const std::vector<float>& v)
{
	return from_f16(to_f16(v));
}

inline bool f16_is_nan(uint16_t b)
{
	return (b & 0x7c00) == 0x7c00 && (b & 0x03ff);
}

inline bool f16_is_subnormal(uint16_t b)
{
	return (b & 0x7c00) == 0 && (b & 0x03ff);
}

inline bool have_f16()
{
	return device(false).info().f16;
}

// A device with f16 turned off (DeviceOptions::disable_f16), as hardware
// without shaderFloat16, and its executor: created once per process,
// the executor destroyed first.
struct NoF16Device {
	std::unique_ptr<rt::Device> device;
	std::unique_ptr<rt::Executor> executor;
	~NoF16Device() { executor.reset(); }
	static NoF16Device& get()
	{
		static NoF16Device d;
		if (!d.device) {
			rt::DeviceOptions o;
			o.disable_f16 = true;
			d.device = rt::Device::create(o);
			d.executor = rt::Executor::create(*d.device);
		}
		return d;
	}
};

inline rt::Executor& no_f16_executor()
{
	return *NoF16Device::get().executor;
}

#define REQUIRE_F16()                                                                      \
	do {                                                                               \
		if (!have_f16())                                                           \
			GTEST_SKIP() << "the default Vulkan device has no f16 (shaderFloat16)"; \
	} while (0)

} // namespace flaxdrm::optest
