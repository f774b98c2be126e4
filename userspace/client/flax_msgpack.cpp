// Flax variables checkpoints (flax.serialization.to_bytes), see variables.hpp.
#include "flaxdrm/variables.hpp"

#include <msgpack.hpp>

#include "checkpoint_dtypes.hpp"
#include "file_io.hpp"
#include "flaxdrm/error.hpp"

namespace flaxdrm {
namespace {

// flax.serialization._MsgpackExtType
constexpr int8_t kExtNdarray = 1;
constexpr int8_t kExtNativeComplex = 2;
constexpr int8_t kExtNpScalar = 3;
constexpr const char* kChunkedKey = "__msgpack_chunked_array__";
// msgpack-python refuses objects of 2^31 bytes and more
constexpr uint64_t kMaxObjectBytes = (uint64_t(1) << 31) - 1;

// Unpacks one object from bytes, referring to them rather than copying
// arrays. The limits keep hostile sizes and nesting from exhausting memory
// or stack: every element takes at least a byte.
msgpack::object_handle unpack_one(const char* data, std::size_t size, std::size_t& offset)
{
	auto refer = [](msgpack::type::object_type, std::size_t, void*) { return true; };
	const msgpack::unpack_limit limit(size, size / 2, size, size, size, 64);
	return msgpack::unpack(data, size, offset, refer, nullptr, limit);
}

class Reader {
public:
	explicit Reader(const std::string& source) : source_(source) {}

	void walk(const msgpack::object& obj, const std::string& path, Variables& out)
	{
		switch (obj.type) {
		case msgpack::type::MAP:
			if (is_chunked(obj)) {
				add(out, path, read_chunked(obj, path));
				return;
			}
			for (uint32_t i = 0; i < obj.via.map.size; i++) {
				const auto& kv = obj.via.map.ptr[i];
				std::string key = key_string(kv.key, path);
				walk(kv.val, path.empty() ? key : path + "/" + key, out);
			}
			return;
		case msgpack::type::EXT:
			add(out, path, read_ext(obj, path));
			return;
		case msgpack::type::POSITIVE_INTEGER:
		case msgpack::type::NEGATIVE_INTEGER:
		case msgpack::type::FLOAT32:
		case msgpack::type::FLOAT64: {
			// a Python number leaf (a step counter, ...)
			Variable v;
			v.dtype = obj.type == msgpack::type::FLOAT32   ? "float32"
				  : obj.type == msgpack::type::FLOAT64 ? "float64"
								       : "int64";
			v.value.data.push_back(obj.as<float>());
			add(out, path, std::move(v));
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

	void add(Variables& out, const std::string& path, Variable v) const
	{
		if (path.empty())
			fail(path, "the checkpoint is a single array, not a variables tree");
		if (!out.emplace(path, std::move(v)).second)
			fail(path, "the path occurs twice (a key holds '/'?)");
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

	// str or bin (numpy dtype names come as either, depending on the writer)
	static bool is_text(const msgpack::object& o)
	{
		return o.type == msgpack::type::STR || o.type == msgpack::type::BIN;
	}
	static std::string_view text(const msgpack::object& o)
	{
		return o.type == msgpack::type::STR ? std::string_view(o.via.str.ptr, o.via.str.size)
						    : std::string_view(o.via.bin.ptr, o.via.bin.size);
	}

	std::string key_string(const msgpack::object& key, const std::string& path) const
	{
		if (is_text(key))
			return std::string(text(key));
		if (key.type == msgpack::type::POSITIVE_INTEGER)
			return std::to_string(key.via.u64);
		fail(path, "map key is a " + type_name(key) + ", expected a string");
	}

	static bool is_chunked(const msgpack::object& obj)
	{
		for (uint32_t i = 0; i < obj.via.map.size; i++) {
			const auto& k = obj.via.map.ptr[i].key;
			if (k.type == msgpack::type::STR && text(k) == kChunkedKey)
				return true;
		}
		return false;
	}

	int64_t dimension(const msgpack::object& d, const std::string& path) const
	{
		if (d.type != msgpack::type::POSITIVE_INTEGER || d.via.u64 > (1ull << 40))
			fail(path, "array shape holds a bad dimension (" + type_name(d) + ")");
		return static_cast<int64_t>(d.via.u64);
	}

	Shape read_shape(const msgpack::object& o, const std::string& path) const
	{
		Shape shape;
		if (o.type != msgpack::type::ARRAY)
			fail(path, "array shape is a " + type_name(o) + ", expected a list of ints");
		for (uint32_t i = 0; i < o.via.array.size; i++)
			shape.push_back(dimension(o.via.array.ptr[i], path));
		return shape;
	}

	Variable convert(const Shape& shape, std::string_view dtype_name, std::string_view data,
			 const std::string& path) const
	{
		const detail::StoredDtype* dtype = detail::find_dtype(dtype_name);
		if (!dtype)
			fail(path, "dtype " + std::string(dtype_name) + " is not supported (" +
					   detail::kStoredDtypeNames + " are read, as float32)");
		std::size_t n = num_elements(shape);
		if (data.size() / dtype->size < n || data.size() != n * dtype->size)
			fail(path, "shape " + shape_str(shape) + " of " + dtype->name + " needs " +
					   std::to_string(n * dtype->size) + " bytes, the array holds " +
					   std::to_string(data.size()));
		Variable v;
		v.dtype = dtype->name;
		v.value.shape = shape;
		v.value.data.resize(n);
		detail::decode_elements(*dtype, reinterpret_cast<const uint8_t*>(data.data()), n, v.value.data.data());
		return v;
	}

	// Ext 1 (an array) and 3 (a numpy scalar) both hold [shape, dtype, data]
	// (flax.serialization._ndarray_to_bytes); a scalar as [dtype, data] is
	// read too.
	Variable read_ext(const msgpack::object& obj, const std::string& path) const
	{
		int8_t type = obj.via.ext.type();
		if (type == kExtNativeComplex)
			fail(path, "complex values are not supported");
		if (type != kExtNdarray && type != kExtNpScalar)
			fail(path, "unknown msgpack extension type " + std::to_string(type) +
					   " (Flax writes arrays as type 1)");
		msgpack::object_handle oh;
		std::size_t offset = 0;
		try {
			oh = unpack_one(obj.via.ext.data(), obj.via.ext.size, offset);
		} catch (const std::exception& e) {
			fail(path, std::string("malformed array payload: ") + e.what());
		}
		const msgpack::object& tpl = oh.get();
		const bool scalar_pair = type == kExtNpScalar && tpl.type == msgpack::type::ARRAY && tpl.via.array.size == 2;
		if (tpl.type != msgpack::type::ARRAY || (tpl.via.array.size != 3 && !scalar_pair))
			fail(path, "array payload is not [shape, dtype, data]");
		const msgpack::object* f = tpl.via.array.ptr;
		Shape shape;
		if (!scalar_pair)
			shape = read_shape(*f++, path);
		if (!is_text(f[0]))
			fail(path, "array dtype is a " + type_name(f[0]) + ", expected a string");
		if (!is_text(f[1]))
			fail(path, "array data is a " + type_name(f[1]) + ", expected bytes");
		return convert(shape, text(f[0]), text(f[1]), path);
	}

	// {"__msgpack_chunked_array__": true, "shape": {"0": d0, ...}, "chunks": {"0": ext, ...}}
	// (flax.serialization._chunk; a shape list is read too)
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
		if (!shape_obj || !chunks_obj || chunks_obj->type != msgpack::type::MAP ||
		    (shape_obj->type != msgpack::type::MAP && shape_obj->type != msgpack::type::ARRAY))
			fail(path, "malformed chunked array (it needs a shape and a map of chunks)");
		Shape shape;
		if (shape_obj->type == msgpack::type::ARRAY)
			shape = read_shape(*shape_obj, path);
		else
			for (const msgpack::object* d : by_index(*shape_obj, "shape", path))
				shape.push_back(dimension(*d, path));
		Variable v;
		v.value.shape = shape;
		for (const msgpack::object* c : by_index(*chunks_obj, "chunk", path)) {
			if (c->type != msgpack::type::EXT)
				fail(path, "chunked array chunk is a " + type_name(*c) + ", expected an array");
			Variable part = read_ext(*c, path);
			if (v.dtype.empty())
				v.dtype = part.dtype;
			else if (part.dtype != v.dtype)
				fail(path, "chunked array mixes dtypes " + v.dtype + " and " + part.dtype);
			v.value.data.insert(v.value.data.end(), part.value.data.begin(), part.value.data.end());
		}
		if (v.value.data.size() != num_elements(shape))
			fail(path, "chunked array holds " + std::to_string(v.value.data.size()) +
					   " elements for shape " + shape_str(shape));
		return v;
	}

	// The values of a map keyed "0", "1", ... (a tuple as Flax writes it), in order.
	std::vector<const msgpack::object*> by_index(const msgpack::object& map, const std::string& what,
						     const std::string& path) const
	{
		std::vector<const msgpack::object*> items(map.via.map.size);
		for (uint32_t i = 0; i < map.via.map.size; i++) {
			const auto& kv = map.via.map.ptr[i];
			const std::string key = key_string(kv.key, path);
			std::size_t idx = items.size();
			if (!key.empty() && key.size() < 10 && key.find_first_not_of("0123456789") == std::string::npos)
				idx = std::stoul(key);
			if (idx >= items.size() || items[idx])
				fail(path, "malformed chunked array: " + what + " key '" + key + "' is not an index below " +
						   std::to_string(items.size()) + " used once");
			items[idx] = &kv.val;
		}
		return items;
	}

	const std::string& source_;
};

// Appends what msgpack::packer writes to a byte vector.
struct ByteSink {
	std::vector<uint8_t>& bytes;
	void write(const char* data, std::size_t size) { bytes.insert(bytes.end(), data, data + size); }
};
using Packer = msgpack::packer<ByteSink>;

// flax.serialization._ndarray_to_bytes as ext type 1, the data not copied twice
void pack_ndarray(Packer& pk, const Shape& shape, const char* dtype, const uint8_t* data, std::size_t size)
{
	std::vector<uint8_t> head;
	ByteSink head_sink{head};
	Packer hpk(head_sink);
	hpk.pack_array(3);
	hpk.pack_array(static_cast<uint32_t>(shape.size()));
	for (int64_t d : shape)
		hpk.pack(static_cast<uint64_t>(d));
	hpk.pack(std::string(dtype));
	hpk.pack_bin(static_cast<uint32_t>(size));
	pk.pack_ext(head.size() + size, kExtNdarray);
	pk.pack_ext_body(reinterpret_cast<const char*>(head.data()), static_cast<uint32_t>(head.size()));
	pk.pack_ext_body(reinterpret_cast<const char*>(data), static_cast<uint32_t>(size));
}

// flax.serialization._chunk: flat chunks of max_chunk_size / itemsize elements
void pack_chunked(Packer& pk, const Shape& shape, const detail::StoredDtype& dtype, const std::vector<uint8_t>& data,
		  uint64_t max_chunk_size)
{
	const std::size_t chunk = std::max<uint64_t>(1, max_chunk_size / dtype.size) * dtype.size;
	const std::size_t count = (data.size() + chunk - 1) / chunk;
	pk.pack_map(3);
	pk.pack(std::string(kChunkedKey));
	pk.pack(true);
	pk.pack(std::string("shape"));
	pk.pack_map(static_cast<uint32_t>(shape.size()));
	for (std::size_t i = 0; i < shape.size(); i++) {
		pk.pack(std::to_string(i));
		pk.pack(static_cast<uint64_t>(shape[i]));
	}
	pk.pack(std::string("chunks"));
	pk.pack_map(static_cast<uint32_t>(count));
	for (std::size_t c = 0; c < count; c++) {
		const std::size_t from = c * chunk, size = std::min(chunk, data.size() - from);
		pk.pack(std::to_string(c));
		pack_ndarray(pk, {static_cast<int64_t>(size / dtype.size)}, dtype.name, data.data() + from, size);
	}
}

// A tree of maps for writing.
struct Node {
	std::map<std::string, Node> children;
	const Variable* leaf = nullptr;
	const std::string* path = nullptr;
};

void pack_node(Packer& pk, const Node& node, const FlaxMsgpackOptions& options)
{
	if (node.leaf) {
		const detail::StoredDtype& dtype = detail::dtype_to_store(*node.leaf, *node.path);
		const std::vector<uint8_t> data = detail::encode_elements(dtype, node.leaf->value);
		if (data.size() > options.max_chunk_size)
			pack_chunked(pk, node.leaf->value.shape, dtype, data, options.max_chunk_size);
		else
			pack_ndarray(pk, node.leaf->value.shape, dtype.name, data.data(), data.size());
		return;
	}
	pk.pack_map(static_cast<uint32_t>(node.children.size()));
	for (const auto& [key, child] : node.children) {
		pk.pack(key);
		pack_node(pk, child, options);
	}
}

} // namespace

Variables parse_flax_msgpack(std::span<const uint8_t> bytes, const std::string& source)
{
	msgpack::object_handle oh;
	std::size_t offset = 0;
	try {
		oh = unpack_one(reinterpret_cast<const char*>(bytes.data()), bytes.size(), offset);
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

std::vector<uint8_t> format_flax_msgpack(const Variables& variables, const FlaxMsgpackOptions& options)
{
	if (options.max_chunk_size == 0 || options.max_chunk_size > kMaxObjectBytes)
		throw Error("max_chunk_size " + std::to_string(options.max_chunk_size) +
			    " is outside 1 to 2^31 - 1 bytes (msgpack's object limit)");
	Node root;
	for (const auto& [path, var] : variables) {
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
		node->path = &path;
	}
	std::vector<uint8_t> bytes;
	ByteSink sink{bytes};
	Packer pk(sink);
	pack_node(pk, root, options);
	return bytes;
}

void write_flax_msgpack(const std::string& path, const Variables& variables, const FlaxMsgpackOptions& options)
{
	detail::write_file(path, format_flax_msgpack(variables, options), "params file");
}

} // namespace flaxdrm
