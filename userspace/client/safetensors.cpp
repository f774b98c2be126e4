// safetensors checkpoints with '/'-joined variable paths, see variables.hpp.
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "checkpoint_dtypes.hpp"
#include "file_io.hpp"
#include "flaxdrm/error.hpp"
#include "flaxdrm/variables.hpp"

namespace flaxdrm {
namespace {

bool named_safetensors(const std::string& path)
{
	return path.size() >= 12 && path.compare(path.size() - 12, 12, ".safetensors") == 0;
}

} // namespace

Variables parse_safetensors(std::span<const uint8_t> bytes, const std::string& source)
{
	if (bytes.size() < 8)
		throw Error(source + ": not a safetensors file (shorter than its 8-byte header length)");
	uint64_t hlen;
	std::memcpy(&hlen, bytes.data(), 8);
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
		const detail::StoredDtype* dt = detail::find_safetensors_dtype(st);
		if (!dt)
			throw Error(where + ": dtype " + st + " is not supported (" + detail::kStoredSafetensorsNames +
				    " are read)");
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
		detail::decode_elements(*dt, data + b, n, v.value.data.data());
		out[name] = std::move(v);
	}
	return out;
}

Variables read_safetensors(const std::string& path)
{
	auto bytes = detail::read_file(path, "safetensors file");
	return parse_safetensors(bytes, path);
}

std::vector<uint8_t> format_safetensors(const Variables& variables)
{
	// Variables and the header's JSON object are both sorted by name, so the
	// data lies in header order, back to back.
	nlohmann::json header = nlohmann::json::object();
	std::vector<std::vector<uint8_t>> blobs;
	uint64_t offset = 0;
	for (const auto& [name, var] : variables) {
		const detail::StoredDtype& dt = detail::dtype_to_store(var, name);
		blobs.push_back(detail::encode_elements(dt, var.value));
		header[name] = {{"dtype", dt.safetensors},
				{"shape", var.value.shape},
				{"data_offsets", {offset, offset + blobs.back().size()}}};
		offset += blobs.back().size();
	}
	std::string text = header.dump();
	text.resize((text.size() + 7) / 8 * 8, ' '); // the data 8-byte aligned, as safetensors writes it
	std::vector<uint8_t> out(8 + text.size());
	const uint64_t hlen = text.size();
	std::memcpy(out.data(), &hlen, 8);
	std::memcpy(out.data() + 8, text.data(), text.size());
	out.reserve(out.size() + offset);
	for (const auto& blob : blobs)
		out.insert(out.end(), blob.begin(), blob.end());
	return out;
}

void write_safetensors(const std::string& path, const Variables& variables)
{
	detail::write_file(path, format_safetensors(variables), "safetensors file");
}

Variables read_variables(const std::string& path)
{
	auto bytes = detail::read_file(path, "variables file");
	bool st = named_safetensors(path);
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

void write_variables(const std::string& path, const Variables& variables, const FlaxMsgpackOptions& options)
{
	if (named_safetensors(path))
		write_safetensors(path, variables);
	else
		write_flax_msgpack(path, variables, options);
}

} // namespace flaxdrm
