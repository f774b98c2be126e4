// Checkpoint element types, see checkpoint_dtypes.hpp.
#include "checkpoint_dtypes.hpp"

#include <bit>
#include <cmath>
#include <cstring>

#include "flaxdrm/error.hpp"

static_assert(std::endian::native == std::endian::little, "checkpoints hold little-endian data");

namespace flaxdrm::detail {
namespace {

constexpr StoredDtype kDtypes[] = {
	{"float32", "F32", 4}, {"float16", "F16", 2}, {"bfloat16", "BF16", 2},
	{"float64", "F64", 8}, {"int32", "I32", 4},   {"int64", "I64", 8},
};

float f16_to_f32(uint16_t h)
{
	const uint32_t sign = uint32_t(h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ffu;
	if (exp == 0 && mant) { // subnormal: mant * 2^-24
		const float f = std::ldexp(float(mant), -24);
		return sign ? -f : f;
	}
	uint32_t bits = sign;
	if (exp == 31)
		bits |= 0x7f800000u | (mant << 13);
	else if (exp)
		bits |= ((exp + 112) << 23) | (mant << 13);
	return std::bit_cast<float>(bits);
}

uint16_t f32_to_f16(float f)
{
	const uint32_t x = std::bit_cast<uint32_t>(f);
	const uint32_t sign = (x >> 16) & 0x8000u;
	const int32_t exp = int32_t((x >> 23) & 0xff) - 127 + 15;
	uint32_t mant = x & 0x7fffffu;
	if (((x >> 23) & 0xff) == 0xff) // inf, nan (kept quiet)
		return uint16_t(sign | 0x7c00u | (mant ? 0x200u : 0));
	if (exp >= 31)
		return uint16_t(sign | 0x7c00u);
	if (exp <= 0) { // a float16 subnormal or zero
		if (exp < -10)
			return uint16_t(sign);
		mant |= 0x800000u;
		const uint32_t shift = uint32_t(14 - exp);
		uint32_t h = mant >> shift;
		const uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
		if (rem > half || (rem == half && (h & 1)))
			h++;
		return uint16_t(sign | h);
	}
	// a carry out of the mantissa rounds into the exponent, up to inf
	uint32_t h = sign | (uint32_t(exp) << 10) | (mant >> 13);
	const uint32_t rem = mant & 0x1fffu;
	if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
		h++;
	return uint16_t(h);
}

uint16_t f32_to_bf16(float f)
{
	uint32_t x = std::bit_cast<uint32_t>(f);
	if ((x & 0x7fffffffu) > 0x7f800000u) // nan: keep it a (quiet) nan
		return uint16_t((x >> 16) | 0x40);
	x += 0x7fffu + ((x >> 16) & 1);
	return uint16_t(x >> 16);
}

template <typename T> T load(const uint8_t* p)
{
	T v;
	std::memcpy(&v, p, sizeof(T));
	return v;
}

template <typename T> void store(uint8_t* p, T v)
{
	std::memcpy(p, &v, sizeof(T));
}

} // namespace

const char* const kStoredDtypeNames = "float32, float16, bfloat16, float64, int32, int64";
const char* const kStoredSafetensorsNames = "F32, F16, BF16, F64, I32, I64";

const StoredDtype* find_dtype(std::string_view numpy_name)
{
	for (const auto& d : kDtypes)
		if (numpy_name == d.name)
			return &d;
	return nullptr;
}

const StoredDtype* find_safetensors_dtype(std::string_view safetensors_name)
{
	for (const auto& d : kDtypes)
		if (safetensors_name == d.safetensors)
			return &d;
	return nullptr;
}

const StoredDtype& dtype_to_store(const Variable& variable, const std::string& where)
{
	const std::string name = variable.dtype.empty() ? "float32" : variable.dtype;
	const StoredDtype* d = find_dtype(name);
	if (!d)
		throw Error(where + ": cannot store dtype " + name + " (" + kStoredDtypeNames + " are written)");
	if (num_elements(variable.value.shape) != variable.value.data.size())
		throw Error(where + ": shape " + shape_str(variable.value.shape) + " does not match its " +
			    std::to_string(variable.value.data.size()) + " elements");
	return *d;
}

void decode_elements(const StoredDtype& dtype, const uint8_t* bytes, std::size_t n, float* out)
{
	const std::string_view name = dtype.name;
	auto each = [&](auto convert) {
		for (std::size_t i = 0; i < n; i++)
			out[i] = convert(bytes + i * dtype.size);
	};
	if (name == "float32")
		each([](const uint8_t* p) { return load<float>(p); });
	else if (name == "float16")
		each([](const uint8_t* p) { return f16_to_f32(load<uint16_t>(p)); });
	else if (name == "bfloat16")
		each([](const uint8_t* p) { return std::bit_cast<float>(uint32_t(load<uint16_t>(p)) << 16); });
	else if (name == "float64")
		each([](const uint8_t* p) { return float(load<double>(p)); });
	else if (name == "int32")
		each([](const uint8_t* p) { return float(load<int32_t>(p)); });
	else
		each([](const uint8_t* p) { return float(load<int64_t>(p)); });
}

std::vector<uint8_t> encode_elements(const StoredDtype& dtype, const Tensor& tensor)
{
	const std::string_view name = dtype.name;
	std::vector<uint8_t> out(tensor.data.size() * dtype.size);
	// int32 index tensors hold bit patterns, not values
	const bool indices = tensor.dtype == DType::I32;
	auto each = [&](auto convert) {
		for (std::size_t i = 0; i < tensor.data.size(); i++)
			store(out.data() + i * dtype.size,
			      convert(indices ? float(tensor.index(i)) : tensor.data[i], i));
	};
	if (name == "float32")
		each([](float v, std::size_t) { return v; });
	else if (name == "float16")
		each([](float v, std::size_t) { return f32_to_f16(v); });
	else if (name == "bfloat16")
		each([](float v, std::size_t) { return f32_to_bf16(v); });
	else if (name == "float64")
		each([](float v, std::size_t) { return double(v); });
	else if (name == "int32")
		each([&](float v, std::size_t i) { return indices ? tensor.index(i) : int32_t(std::lrint(v)); });
	else
		each([&](float v, std::size_t i) { return indices ? int64_t(tensor.index(i)) : int64_t(std::llrint(v)); });
	return out;
}

} // namespace flaxdrm::detail
