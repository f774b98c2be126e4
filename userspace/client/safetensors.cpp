// safetensors checkpoints with '/'-joined variable paths, see variables.hpp.
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "file_io.hpp"
#include "flaxdrm/error.hpp"
#include "flaxdrm/variables.hpp"

namespace flaxdrm {
namespace {

float f16_to_float(uint16_t h)
{
	uint32_t sign = h & 0x8000u, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
	float f;
	if (exp == 0)
		f = std::ldexp(static_cast<float>(mant), -24);
	else if (exp == 31)
		f = mant ? std::nanf("") : INFINITY;
	else
		f = std::ldexp(static_cast<float>(mant | 0x400), static_cast<int>(exp) - 25);
	return sign ? -f : f;
}

struct DtypeInfo {
	const char* st;   // safetensors name
	const char* name; // numpy-style name kept in Variable::dtype
	std::size_t size;
};

constexpr DtypeInfo kDtypes[] = {
	{"F32", "float32", 4}, {"F16", "float16", 2}, {"BF16", "bfloat16", 2},
	{"F64", "float64", 8}, {"I32", "int32", 4},   {"I64", "int64", 8},
};

template <typename T> T load(const uint8_t* p)
{
	T v;
	std::memcpy(&v, p, sizeof(T));
	return v;
}

} // namespace

Variables parse_safetensors(std::span<const uint8_t> bytes, const std::string& source)
{
	static_assert(std::endian::native == std::endian::little);
	if (bytes.size() < 8)
		throw Error(source + ": not a safetensors file (shorter than its 8-byte header length)");
	uint64_t hlen = load<uint64_t>(bytes.data());
	if (hlen > bytes.size() - 8)
		throw Error(source + ": safetensors header length " + std::to_string(hlen) + " exceeds the file (" +
			    std::to_string(bytes.size()) + " bytes)");
	nlohmann::json header;
	try {
		header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(hlen));
	} catch (const nlohmann::json::exception& e) {
		throw Error(source + ": safetensors header is not valid JSON: " + e.what());
	}
	if (!header.is_object())
		throw Error(source + ": safetensors header is not a JSON object");
	const uint8_t* data = bytes.data() + 8 + hlen;
	const uint64_t data_size = bytes.size() - 8 - hlen;

	Variables out;
	for (const auto& [name, entry] : header.items()) {
		if (name == "__metadata__")
			continue;
		const std::string where = source + ": " + name;
		if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
		    !entry.contains("data_offsets"))
			throw Error(where + ": entry needs dtype, shape and data_offsets");
		const auto& jd = entry["dtype"];
		const auto& js = entry["shape"];
		const auto& jo = entry["data_offsets"];
		if (!jd.is_string() || !js.is_array() || !jo.is_array() || jo.size() != 2 ||
		    !jo[0].is_number_unsigned() || !jo[1].is_number_unsigned())
			throw Error(where + ": malformed dtype, shape or data_offsets");
		const std::string st = jd.get<std::string>();
		const DtypeInfo* dt = nullptr;
		for (const auto& d : kDtypes)
			if (st == d.st)
				dt = &d;
		if (!dt)
			throw Error(where + ": dtype " + st + " is not supported (F32, F16, BF16, F64, I32, I64 are read)");
		Shape shape;
		for (const auto& d : js) {
			if (!d.is_number_integer() || d.get<int64_t>() < 0)
				throw Error(where + ": shape must be non-negative integers");
			shape.push_back(d.get<int64_t>());
		}
		const std::size_t n = num_elements(shape);
		const uint64_t b = jo[0].get<uint64_t>(), e = jo[1].get<uint64_t>();
		if (b > e || e > data_size)
			throw Error(where + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(e) +
				    "] outside the data (" + std::to_string(data_size) + " bytes)");
		if (n > std::numeric_limits<uint64_t>::max() / dt->size || e - b != n * dt->size)
			throw Error(where + ": data_offsets hold " + std::to_string(e - b) + " bytes, shape " +
				    shape_str(shape) + " of " + st + " needs " + std::to_string(n * dt->size));
		if (out.count(name))
			throw Error(where + ": duplicate name");
		Variable v;
		v.dtype = dt->name;
		v.value.shape = shape;
		v.value.data.resize(n);
		const uint8_t* p = data + b;
		float* dst = v.value.data.data();
		for (std::size_t i = 0; i < n; i++, p += dt->size) {
			if (!std::strcmp(dt->st, "F32"))
				dst[i] = load<float>(p);
			else if (!std::strcmp(dt->st, "F16"))
				dst[i] = f16_to_float(load<uint16_t>(p));
			else if (!std::strcmp(dt->st, "BF16"))
				dst[i] = std::bit_cast<float>(static_cast<uint32_t>(load<uint16_t>(p)) << 16);
			else if (!std::strcmp(dt->st, "F64"))
				dst[i] = static_cast<float>(load<double>(p));
			else if (!std::strcmp(dt->st, "I32"))
				dst[i] = static_cast<float>(load<int32_t>(p));
			else
				dst[i] = static_cast<float>(load<int64_t>(p));
		}
		out[name] = std::move(v);
	}
	return out;
}

Variables read_safetensors(const std::string& path)
{
	auto bytes = detail::read_file(path, "safetensors file");
	return parse_safetensors(bytes, path);
}

Variables read_variables(const std::string& path)
{
	auto bytes = detail::read_file(path, "variables file");
	bool st = path.size() >= 12 && path.compare(path.size() - 12, 12, ".safetensors") == 0;
	// safetensors: 8-byte length then '{'; a msgpack checkpoint starts with a
	// map marker (0x8x, 0xde, 0xdf), never with a small LE length + '{'.
	if (!st && bytes.size() >= 9) {
		uint64_t hlen;
		std::memcpy(&hlen, bytes.data(), 8);
		st = bytes[8] == '{' && hlen <= bytes.size() - 8;
	}
	if (st)
		return parse_safetensors(bytes, path);
	return parse_flax_msgpack(bytes, path);
}

} // namespace flaxdrm
