// Flax variables checkpoints (flax.serialization.to_bytes), see variables.hpp.
#include "flaxdrm/variables.hpp"

#include <bit>
#include <cmath>
#include <cstring>

#include <msgpack.hpp>

#include "file_io.hpp"
#include "flaxdrm/error.hpp"

static_assert(std::endian::native == std::endian::little, "checkpoints hold little-endian data");

namespace flaxdrm {
namespace {

// flax.serialization._MsgpackExtType
constexpr int8_t kExtNdarray = 1;
constexpr int8_t kExtNativeComplex = 2;
constexpr int8_t kExtNpScalar = 3;
constexpr const char* kChunkedKey = "__msgpack_chunked_array__";

float half_to_float(uint16_t h)
{
	uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
	float f;
	if (exp == 0)
		f = std::ldexp(static_cast<float>(mant), -24);
	else if (exp == 31)
		f = mant ? std::nanf("") : INFINITY;
	else
		f = std::ldexp(static_cast<float>(mant | 0x400), static_cast<int>(exp) - 25);
	return sign ? -f : f;
}

std::size_t dtype_size(const std::string& dtype)
{
	if (dtype == "float32")
		return 4;
	if (dtype == "float64")
		return 8;
	if (dtype == "float16" || dtype == "bfloat16")
		return 2;
	return 0;
}

class Reader {
public:
	explicit Reader(const std::string& source) : source_(source) {}

	void walk(const msgpack::object& obj, const std::string& path, Variables& out)
	{
		switch (obj.type) {
		case msgpack::type::MAP:
			if (is_chunked(obj)) {
				out[path] = read_chunked(obj, path);
				return;
			}
			for (uint32_t i = 0; i < obj.via.map.size; i++) {
				const auto& kv = obj.via.map.ptr[i];
				std::string key = key_string(kv.key, path);
				walk(kv.val, path.empty() ? key : path + "/" + key, out);
			}
			return;
		case msgpack::type::EXT:
			out[leaf_path(path)] = read_ext(obj, path);
			return;
		case msgpack::type::POSITIVE_INTEGER:
		case msgpack::type::NEGATIVE_INTEGER:
		case msgpack::type::FLOAT32:
		case msgpack::type::FLOAT64: {
			// a Python scalar leaf (a step counter, ...)
			Variable v;
			v.dtype = obj.type == msgpack::type::FLOAT32 || obj.type == msgpack::type::FLOAT64
					  ? "float"
					  : "int";
			v.value.data.push_back(obj.as<double>());
			out[leaf_path(path)] = std::move(v);
			return;
		}
		default:
			fail(path, "unsupported msgpack value (" + type_name(obj) +
					   "); expected a map or an array (extension type 1)");
		}
	}

private:
	[[noreturn]] void fail(const std::string& path, const std::string& what) const
	{
		throw Error(source_ + ": " + (path.empty() ? std::string("<top>") : path) + ": " + what);
	}

	std::string leaf_path(const std::string& path) const
	{
		if (path.empty())
			fail(path, "the checkpoint is a single array, not a variables tree");
		return path;
	}

	static std::string type_name(const msgpack::object& o)
	{
		switch (o.type) {
		case msgpack::type::NIL: return "nil";
		case msgpack::type::BOOLEAN: return "bool";
		case msgpack::type::STR: return "str";
		case msgpack::type::BIN: return "bin";
		case msgpack::type::ARRAY: return "array";
		case msgpack::type::MAP: return "map";
		case msgpack::type::EXT: return "ext type " + std::to_string(o.via.ext.type());
		default: return "number";
		}
	}

	std::string key_string(const msgpack::object& key, const std::string& path) const
	{
		if (key.type == msgpack::type::STR)
			return std::string(key.via.str.ptr, key.via.str.size);
		if (key.type == msgpack::type::BIN)
			return std::string(key.via.bin.ptr, key.via.bin.size);
		if (key.type == msgpack::type::POSITIVE_INTEGER)
			return std::to_string(key.via.u64);
		fail(path, "map key is a " + type_name(key) + ", expected a string");
	}

	static bool is_chunked(const msgpack::object& obj)
	{
		for (uint32_t i = 0; i < obj.via.map.size; i++) {
			const auto& k = obj.via.map.ptr[i].key;
			if (k.type == msgpack::type::STR &&
			    std::string_view(k.via.str.ptr, k.via.str.size) == kChunkedKey)
				return true;
		}
		return false;
	}

	Shape read_shape(const msgpack::object& o, const std::string& path) const
	{
		Shape shape;
		if (o.type != msgpack::type::ARRAY)
			fail(path, "array shape is a " + type_name(o) + ", expected a list of ints");
		for (uint32_t i = 0; i < o.via.array.size; i++) {
			const auto& d = o.via.array.ptr[i];
			if (d.type != msgpack::type::POSITIVE_INTEGER || d.via.u64 > (1ull << 40))
				fail(path, "array shape holds a bad dimension (" + type_name(d) + ")");
			shape.push_back(static_cast<int64_t>(d.via.u64));
		}
		return shape;
	}

	Variable convert(const Shape& shape, const std::string& dtype, const char* data, std::size_t size,
			 const std::string& path) const
	{
		std::size_t item = dtype_size(dtype);
		if (!item)
			fail(path, "dtype " + dtype +
					   " is not supported (float32 is read; float64, float16 and bfloat16 "
					   "are converted to float32)");
		std::size_t n = num_elements(shape);
		if (size != n * item)
			fail(path, "shape " + shape_str(shape) + " of " + dtype + " needs " + std::to_string(n * item) +
					   " bytes, the array holds " + std::to_string(size));
		Variable v;
		v.dtype = dtype;
		v.value.shape = shape;
		v.value.data.resize(n);
		float* dst = v.value.data.data();
		if (dtype == "float32") {
			if (n)
				std::memcpy(dst, data, n * 4);
		} else if (dtype == "float64") {
			for (std::size_t i = 0; i < n; i++) {
				double d;
				std::memcpy(&d, data + i * 8, 8);
				dst[i] = static_cast<float>(d);
			}
		} else {
			for (std::size_t i = 0; i < n; i++) {
				uint16_t h;
				std::memcpy(&h, data + i * 2, 2);
				if (dtype == "float16") {
					dst[i] = half_to_float(h);
				} else {
					uint32_t bits = static_cast<uint32_t>(h) << 16;
					std::memcpy(&dst[i], &bits, 4);
				}
			}
		}
		return v;
	}

	Variable read_ext(const msgpack::object& obj, const std::string& path) const
	{
		int8_t type = obj.via.ext.type();
		if (type == kExtNativeComplex)
			fail(path, "complex values are not supported");
		if (type != kExtNdarray && type != kExtNpScalar)
			fail(path, "unknown msgpack extension type " + std::to_string(type) +
					   " (Flax writes arrays as type 1)");
		msgpack::object_handle oh;
		try {
			oh = msgpack::unpack(obj.via.ext.data(), obj.via.ext.size);
		} catch (const std::exception& e) {
			fail(path, std::string("malformed array payload: ") + e.what());
		}
		const msgpack::object& tpl = oh.get();
		std::size_t want = type == kExtNdarray ? 3 : 2;
		if (tpl.type != msgpack::type::ARRAY || tpl.via.array.size != want)
			fail(path, type == kExtNdarray ? "array payload is not [shape, dtype, data]"
						       : "numpy scalar payload is not [dtype, data]");
		const msgpack::object* f = tpl.via.array.ptr;
		Shape shape;
		if (type == kExtNdarray) {
			shape = read_shape(f[0], path);
			f++;
		}
		if (f[0].type != msgpack::type::STR)
			fail(path, "array dtype is a " + type_name(f[0]) + ", expected a string");
		if (f[1].type != msgpack::type::BIN && f[1].type != msgpack::type::STR)
			fail(path, "array data is a " + type_name(f[1]) + ", expected bytes");
		std::string dtype(f[0].via.str.ptr, f[0].via.str.size);
		const char* data = f[1].type == msgpack::type::BIN ? f[1].via.bin.ptr : f[1].via.str.ptr;
		std::size_t size = f[1].type == msgpack::type::BIN ? f[1].via.bin.size : f[1].via.str.size;
		return convert(shape, dtype, data, size, path);
	}

	// {"__msgpack_chunked_array__": true, "shape": {"0": d0, ...}, "chunks": {"0": ext, ...}}
	Variable read_chunked(const msgpack::object& obj, const std::string& path) const
	{
		const msgpack::object *shape_obj = nullptr, *chunks_obj = nullptr;
		for (uint32_t i = 0; i < obj.via.map.size; i++) {
			const auto& kv = obj.via.map.ptr[i];
			std::string key = key_string(kv.key, path);
			if (key == "shape")
				shape_obj = &kv.val;
			else if (key == "chunks")
				chunks_obj = &kv.val;
		}
		if (!shape_obj || !chunks_obj || shape_obj->type != msgpack::type::MAP ||
		    chunks_obj->type != msgpack::type::MAP)
			fail(path, "malformed chunked array");
		Shape shape(shape_obj->via.map.size);
		for (uint32_t i = 0; i < shape_obj->via.map.size; i++) {
			const auto& kv = shape_obj->via.map.ptr[i];
			std::size_t idx = std::stoul(key_string(kv.key, path));
			if (idx >= shape.size() || kv.val.type != msgpack::type::POSITIVE_INTEGER)
				fail(path, "malformed chunked array shape");
			shape[idx] = static_cast<int64_t>(kv.val.via.u64);
		}
		std::vector<const msgpack::object*> chunks(chunks_obj->via.map.size);
		for (uint32_t i = 0; i < chunks_obj->via.map.size; i++) {
			const auto& kv = chunks_obj->via.map.ptr[i];
			std::size_t idx = std::stoul(key_string(kv.key, path));
			if (idx >= chunks.size() || kv.val.type != msgpack::type::EXT)
				fail(path, "malformed chunked array chunks");
			chunks[idx] = &kv.val;
		}
		Variable v;
		v.value.shape = shape;
		for (const auto* c : chunks) {
			if (!c)
				fail(path, "chunked array misses a chunk");
			Variable part = read_ext(*c, path);
			if (v.dtype.empty())
				v.dtype = part.dtype;
			v.value.data.insert(v.value.data.end(), part.value.data.begin(), part.value.data.end());
		}
		if (v.value.data.size() != num_elements(shape))
			fail(path, "chunked array holds " + std::to_string(v.value.data.size()) +
					   " elements for shape " + shape_str(shape));
		return v;
	}

	const std::string& source_;
};

// A tree of maps for writing.
struct Node {
	std::map<std::string, Node> children;
	const Variable* leaf = nullptr;
};

void pack_node(msgpack::packer<msgpack::sbuffer>& pk, const Node& node)
{
	if (node.leaf) {
		const Tensor& t = node.leaf->value;
		msgpack::sbuffer inner;
		msgpack::packer<msgpack::sbuffer> ipk(inner);
		ipk.pack_array(3);
		ipk.pack_array(static_cast<uint32_t>(t.shape.size()));
		for (int64_t d : t.shape)
			ipk.pack(d);
		ipk.pack(std::string("float32"));
		ipk.pack_bin(static_cast<uint32_t>(t.data.size() * 4));
		ipk.pack_bin_body(reinterpret_cast<const char*>(t.data.data()),
				  static_cast<uint32_t>(t.data.size() * 4));
		pk.pack_ext(inner.size(), kExtNdarray);
		pk.pack_ext_body(inner.data(), static_cast<uint32_t>(inner.size()));
		return;
	}
	pk.pack_map(static_cast<uint32_t>(node.children.size()));
	for (const auto& [key, child] : node.children) {
		pk.pack(key);
		pack_node(pk, child);
	}
}

} // namespace

Variables parse_flax_msgpack(std::span<const uint8_t> bytes, const std::string& source)
{
	msgpack::object_handle oh;
	std::size_t offset = 0;
	try {
		oh = msgpack::unpack(reinterpret_cast<const char*>(bytes.data()), bytes.size(), offset);
	} catch (const std::exception& e) {
		throw Error(source + ": not a msgpack Flax checkpoint (" + e.what() + ")");
	}
	if (offset != bytes.size())
		throw Error(source + ": trailing bytes after the msgpack checkpoint (at offset " +
			    std::to_string(offset) + " of " + std::to_string(bytes.size()) + ")");
	const msgpack::object& root = oh.get();
	if (root.type != msgpack::type::MAP)
		throw Error(source + ": the checkpoint is not a map of variable collections "
				     "(write it with flax.serialization.to_bytes(variables))");
	Variables out;
	Reader(source).walk(root, "", out);
	return out;
}

Variables read_flax_msgpack(const std::string& path)
{
	auto bytes = detail::read_file(path, "params file");
	return parse_flax_msgpack(bytes, path);
}

std::vector<uint8_t> format_flax_msgpack(const Variables& variables)
{
	Node root;
	for (const auto& [path, var] : variables) {
		if (num_elements(var.value.shape) != var.value.data.size())
			throw Error(path + ": shape " + shape_str(var.value.shape) + " does not match its " +
				    std::to_string(var.value.data.size()) + " elements");
		Node* node = &root;
		std::size_t start = 0;
		while (true) {
			std::size_t slash = path.find('/', start);
			std::string part = path.substr(start, slash == std::string::npos ? std::string::npos
										   : slash - start);
			if (part.empty())
				throw Error("bad variable path '" + path + "'");
			if (node->leaf)
				throw Error("variable path '" + path + "' lies under another variable");
			node = &node->children[part];
			if (slash == std::string::npos)
				break;
			start = slash + 1;
		}
		if (node->leaf || !node->children.empty())
			throw Error("variable path '" + path + "' is used twice");
		node->leaf = &var;
	}
	msgpack::sbuffer buf;
	msgpack::packer<msgpack::sbuffer> pk(buf);
	pack_node(pk, root);
	return std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(buf.data()),
				    reinterpret_cast<const uint8_t*>(buf.data()) + buf.size());
}

void write_flax_msgpack(const std::string& path, const Variables& variables)
{
	detail::write_file(path, format_flax_msgpack(variables), "params file");
}

} // namespace flaxdrm
