// Flax msgpack and safetensors checkpoints (hand-written msgpack coder, so
// the chunked form and every dtype are under our control).
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "flaxdrm/flax/checkpoint.hpp"

namespace flaxdrm::flax {
namespace {

// ------------------------------------------------------------- dtypes
uint32_t itemsize(const std::string& dtype)
{
	if (dtype == "float32" || dtype == "int32")
		return 4;
	if (dtype == "float16" || dtype == "bfloat16")
		return 2;
	if (dtype == "int64" || dtype == "float64")
		return 8;
	return 0;
}

uint16_t f32_to_f16(float f)
{
	uint32_t x;
	std::memcpy(&x, &f, 4);
	const uint32_t sign = (x >> 16) & 0x8000u;
	int32_t exp = int32_t((x >> 23) & 0xff) - 127 + 15;
	uint32_t mant = x & 0x7fffffu;
	if (((x >> 23) & 0xff) == 0xff) // inf/nan
		return uint16_t(sign | 0x7c00u | (mant ? 0x200u : 0));
	if (exp >= 31)
		return uint16_t(sign | 0x7c00u);
	if (exp <= 0) {
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
	uint32_t h = sign | (uint32_t(exp) << 10) | (mant >> 13);
	const uint32_t rem = mant & 0x1fffu;
	if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
		h++;
	return uint16_t(h);
}

float f16_to_f32(uint16_t h)
{
	const uint32_t sign = uint32_t(h & 0x8000u) << 16;
	uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ffu, x;
	if (exp == 0) {
		if (!mant) {
			x = sign;
		} else {
			float f = std::ldexp(float(mant), -24);
			return sign ? -f : f;
		}
	} else if (exp == 31) {
		x = sign | 0x7f800000u | (mant << 13);
	} else {
		x = sign | ((exp + 112) << 23) | (mant << 13);
	}
	float f;
	std::memcpy(&f, &x, 4);
	return f;
}

uint16_t f32_to_bf16(float f)
{
	uint32_t x;
	std::memcpy(&x, &f, 4);
	if ((x & 0x7fffffffu) > 0x7f800000u)
		return uint16_t((x >> 16) | 0x40);
	x += 0x7fffu + ((x >> 16) & 1); // round to nearest even
	return uint16_t(x >> 16);
}

float bf16_to_f32(uint16_t b)
{
	uint32_t x = uint32_t(b) << 16;
	float f;
	std::memcpy(&f, &x, 4);
	return f;
}

std::vector<uint8_t> encode(const Tensor& t, const std::string& dtype, const std::string& where)
{
	const uint32_t is = itemsize(dtype);
	if (!is || dtype == "float64")
		throw Error(where + ": cannot store dtype \"" + dtype +
			    "\" (float32, float16, bfloat16, int32, int64)");
	std::vector<uint8_t> out(t.data.size() * is);
	for (std::size_t i = 0; i < t.data.size(); i++) {
		const float v = t.data[i];
		uint8_t* p = out.data() + i * is;
		if (dtype == "float32") {
			std::memcpy(p, &v, 4);
		} else if (dtype == "float16") {
			uint16_t h = f32_to_f16(v);
			std::memcpy(p, &h, 2);
		} else if (dtype == "bfloat16") {
			uint16_t h = f32_to_bf16(v);
			std::memcpy(p, &h, 2);
		} else if (dtype == "int32") {
			int32_t x = int32_t(std::lrint(v));
			std::memcpy(p, &x, 4);
		} else {
			int64_t x = int64_t(std::llrint(v));
			std::memcpy(p, &x, 8);
		}
	}
	return out;
}

std::vector<float> decode(const uint8_t* p, std::size_t n, const std::string& dtype, const std::string& where)
{
	const uint32_t is = itemsize(dtype);
	if (!is)
		throw Error(where + ": unsupported dtype \"" + dtype + "\"");
	std::vector<float> out(n);
	for (std::size_t i = 0; i < n; i++, p += is) {
		if (dtype == "float32") {
			std::memcpy(&out[i], p, 4);
		} else if (dtype == "float64") {
			double d;
			std::memcpy(&d, p, 8);
			out[i] = float(d);
		} else if (dtype == "float16" || dtype == "bfloat16") {
			uint16_t h;
			std::memcpy(&h, p, 2);
			out[i] = dtype == "float16" ? f16_to_f32(h) : bf16_to_f32(h);
		} else if (dtype == "int32") {
			int32_t x;
			std::memcpy(&x, p, 4);
			out[i] = float(x);
		} else {
			int64_t x;
			std::memcpy(&x, p, 8);
			out[i] = float(x);
		}
	}
	return out;
}

std::string dtype_of(const Variable& v)
{
	return v.dtype.empty() ? "float32" : v.dtype;
}

// ------------------------------------------------------------ msgpack out
struct Writer {
	std::vector<uint8_t> b;
	void u8(uint8_t x) { b.push_back(x); }
	void be(uint64_t x, int n)
	{
		for (int i = n - 1; i >= 0; i--)
			b.push_back(uint8_t(x >> (8 * i)));
	}
	void raw(const void* p, std::size_t n)
	{
		const uint8_t* c = static_cast<const uint8_t*>(p);
		b.insert(b.end(), c, c + n);
	}
	void uint(uint64_t x)
	{
		if (x < 128) {
			u8(uint8_t(x));
		} else if (x <= 0xff) {
			u8(0xcc);
			be(x, 1);
		} else if (x <= 0xffff) {
			u8(0xcd);
			be(x, 2);
		} else if (x <= 0xffffffffull) {
			u8(0xce);
			be(x, 4);
		} else {
			u8(0xcf);
			be(x, 8);
		}
	}
	void str(const std::string& s)
	{
		if (s.size() < 32)
			u8(uint8_t(0xa0 | s.size()));
		else if (s.size() <= 0xff) {
			u8(0xd9);
			be(s.size(), 1);
		} else if (s.size() <= 0xffff) {
			u8(0xda);
			be(s.size(), 2);
		} else {
			u8(0xdb);
			be(s.size(), 4);
		}
		raw(s.data(), s.size());
	}
	void bin(const std::vector<uint8_t>& d)
	{
		if (d.size() <= 0xff) {
			u8(0xc4);
			be(d.size(), 1);
		} else if (d.size() <= 0xffff) {
			u8(0xc5);
			be(d.size(), 2);
		} else {
			u8(0xc6);
			be(d.size(), 4);
		}
		raw(d.data(), d.size());
	}
	void map(std::size_t n)
	{
		if (n < 16)
			u8(uint8_t(0x80 | n));
		else if (n <= 0xffff) {
			u8(0xde);
			be(n, 2);
		} else {
			u8(0xdf);
			be(n, 4);
		}
	}
	void array(std::size_t n)
	{
		if (n < 16)
			u8(uint8_t(0x90 | n));
		else if (n <= 0xffff) {
			u8(0xdc);
			be(n, 2);
		} else {
			u8(0xdd);
			be(n, 4);
		}
	}
	void ext(int8_t type, const std::vector<uint8_t>& d)
	{
		const std::size_t n = d.size();
		if (n == 1 || n == 2 || n == 4 || n == 8 || n == 16) {
			u8(n == 1 ? 0xd4 : n == 2 ? 0xd5 : n == 4 ? 0xd6 : n == 8 ? 0xd7 : 0xd8);
		} else if (n <= 0xff) {
			u8(0xc7);
			be(n, 1);
		} else if (n <= 0xffff) {
			u8(0xc8);
			be(n, 2);
		} else {
			u8(0xc9);
			be(n, 4);
		}
		u8(uint8_t(type));
		raw(d.data(), n);
	}
};

// flax's _ndarray_to_bytes: ext 1 of msgpack [shape, dtype name, bytes]
void write_ndarray(Writer& w, const Shape& shape, const std::string& dtype, const std::vector<uint8_t>& data)
{
	Writer inner;
	inner.array(3);
	inner.array(shape.size());
	for (int64_t d : shape)
		inner.uint(uint64_t(d));
	inner.str(dtype);
	inner.bin(data);
	w.ext(1, inner.b);
}

struct Node {
	std::map<std::string, std::unique_ptr<Node>> children;
	const Variable* leaf = nullptr;
	std::string path;
};

void write_node(Writer& w, const Node& n, const CheckpointOptions& o)
{
	if (n.leaf) {
		const std::string dt = dtype_of(*n.leaf);
		std::vector<uint8_t> data = encode(n.leaf->value, dt, n.path);
		if (data.size() <= o.max_chunk_size) {
			write_ndarray(w, n.leaf->value.shape, dt, data);
			return;
		}
		// flax.serialization._chunk
		const uint64_t is = itemsize(dt);
		const uint64_t chunk = std::max<uint64_t>(1, o.max_chunk_size / is) * is;
		w.map(3);
		w.str("__msgpack_chunked_array__");
		w.u8(0xc3);
		w.str("shape");
		w.map(n.leaf->value.shape.size());
		for (std::size_t i = 0; i < n.leaf->value.shape.size(); i++) {
			w.str(std::to_string(i));
			w.uint(uint64_t(n.leaf->value.shape[i]));
		}
		w.str("chunks");
		const std::size_t nchunks = (data.size() + chunk - 1) / chunk;
		w.map(nchunks);
		for (std::size_t c = 0; c < nchunks; c++) {
			w.str(std::to_string(c));
			const std::size_t from = c * chunk, to = std::min<std::size_t>(data.size(), from + chunk);
			write_ndarray(w, {int64_t((to - from) / is)}, dt,
				      std::vector<uint8_t>(data.begin() + from, data.begin() + to));
		}
		return;
	}
	w.map(n.children.size());
	for (const auto& [k, c] : n.children) {
		w.str(k);
		write_node(w, *c, o);
	}
}

// ------------------------------------------------------------- msgpack in
struct Obj {
	enum Kind { Nil, Bool, Int, Float, Str, Bin, Arr, Map, Ext } kind = Nil;
	int64_t i = 0;
	double f = 0;
	std::string s; // Str, Bin, Ext payload
	int8_t ext_type = 0;
	std::vector<Obj> arr;
	std::vector<std::pair<Obj, Obj>> map;
};

struct Reader {
	std::span<const uint8_t> b;
	std::size_t pos = 0;
	std::string source;
	int depth = 0;

	[[noreturn]] void bad(const std::string& what) const
	{
		throw Error(source + ": not a Flax msgpack checkpoint: " + what + " at byte " + std::to_string(pos));
	}
	uint64_t be(int n)
	{
		if (pos + n > b.size())
			bad("truncated data");
		uint64_t x = 0;
		for (int i = 0; i < n; i++)
			x = (x << 8) | b[pos++];
		return x;
	}
	std::string bytes(uint64_t n)
	{
		if (n > b.size() - pos)
			bad("truncated data");
		std::string s(reinterpret_cast<const char*>(b.data() + pos), n);
		pos += n;
		return s;
	}
	Obj read()
	{
		if (++depth > 64)
			bad("nesting too deep");
		Obj o = read_inner();
		depth--;
		return o;
	}
	Obj read_inner()
	{
		Obj o;
		const uint8_t t = uint8_t(be(1));
		auto arr = [&](uint64_t n) {
			o.kind = Obj::Arr;
			for (uint64_t k = 0; k < n; k++)
				o.arr.push_back(read());
		};
		auto mp = [&](uint64_t n) {
			o.kind = Obj::Map;
			for (uint64_t k = 0; k < n; k++) {
				Obj key = read();
				o.map.emplace_back(std::move(key), read());
			}
		};
		auto ext = [&](uint64_t n) {
			o.kind = Obj::Ext;
			o.ext_type = int8_t(be(1));
			o.s = bytes(n);
		};
		if (t < 0x80) {
			o.kind = Obj::Int;
			o.i = t;
		} else if (t < 0x90) {
			mp(t & 0x0f);
		} else if (t < 0xa0) {
			arr(t & 0x0f);
		} else if (t < 0xc0) {
			o.kind = Obj::Str;
			o.s = bytes(t & 0x1f);
		} else if (t >= 0xe0) {
			o.kind = Obj::Int;
			o.i = int8_t(t);
		} else {
			switch (t) {
			case 0xc0: break;
			case 0xc2: o.kind = Obj::Bool; o.i = 0; break;
			case 0xc3: o.kind = Obj::Bool; o.i = 1; break;
			case 0xc4: case 0xc5: case 0xc6:
				o.kind = Obj::Bin;
				o.s = bytes(be(t == 0xc4 ? 1 : t == 0xc5 ? 2 : 4));
				break;
			case 0xc7: case 0xc8: case 0xc9: ext(be(t == 0xc7 ? 1 : t == 0xc8 ? 2 : 4)); break;
			case 0xca: {
				uint32_t x = uint32_t(be(4));
				float f;
				std::memcpy(&f, &x, 4);
				o.kind = Obj::Float;
				o.f = f;
				break;
			}
			case 0xcb: {
				uint64_t x = be(8);
				std::memcpy(&o.f, &x, 8);
				o.kind = Obj::Float;
				break;
			}
			case 0xcc: case 0xcd: case 0xce: case 0xcf:
				o.kind = Obj::Int;
				o.i = int64_t(be(1 << (t - 0xcc)));
				break;
			case 0xd0: o.kind = Obj::Int; o.i = int8_t(be(1)); break;
			case 0xd1: o.kind = Obj::Int; o.i = int16_t(be(2)); break;
			case 0xd2: o.kind = Obj::Int; o.i = int32_t(be(4)); break;
			case 0xd3: o.kind = Obj::Int; o.i = int64_t(be(8)); break;
			case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: ext(uint64_t(1) << (t - 0xd4)); break;
			case 0xd9: case 0xda: case 0xdb:
				o.kind = Obj::Str;
				o.s = bytes(be(t == 0xd9 ? 1 : t == 0xda ? 2 : 4));
				break;
			case 0xdc: arr(be(2)); break;
			case 0xdd: arr(be(4)); break;
			case 0xde: mp(be(2)); break;
			case 0xdf: mp(be(4)); break;
			default: bad("unknown msgpack type byte");
			}
		}
		return o;
	}
};

struct Loaded {
	Shape shape;
	std::string dtype;
	std::vector<float> data;
};

Loaded read_ndarray(const Obj& ext, const std::string& source, const std::string& path)
{
	Reader r{std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(ext.s.data()), ext.s.size()), 0,
		 source + " (" + path + ")"};
	Obj t = r.read();
	if (t.kind != Obj::Arr || t.arr.size() != 3 || t.arr[0].kind != Obj::Arr || t.arr[1].kind != Obj::Str ||
	    t.arr[2].kind != Obj::Bin)
		throw Error(source + ": " + path + ": an ndarray extension that is not [shape, dtype, bytes]");
	Loaded l;
	for (const Obj& d : t.arr[0].arr) {
		if (d.kind != Obj::Int || d.i < 0)
			throw Error(source + ": " + path + ": bad shape");
		l.shape.push_back(d.i);
	}
	l.dtype = t.arr[1].s;
	const std::size_t n = num_elements(l.shape);
	const uint32_t is = itemsize(l.dtype);
	if (!is)
		throw Error(source + ": " + path + ": unsupported dtype \"" + l.dtype +
			    "\" (float32, float16, bfloat16, float64, int32, int64)");
	if (t.arr[2].s.size() != n * is)
		throw Error(source + ": " + path + ": " + std::to_string(t.arr[2].s.size()) + " bytes for shape " +
			    shape_str(l.shape) + " of " + l.dtype);
	l.data = decode(reinterpret_cast<const uint8_t*>(t.arr[2].s.data()), n, l.dtype, source + ": " + path);
	return l;
}

const Obj* find(const Obj& map, const std::string& key)
{
	for (const auto& [k, v] : map.map)
		if (k.kind == Obj::Str && k.s == key)
			return &v;
	return nullptr;
}

void walk(const Obj& o, const std::string& path, const std::string& source, Variables& out)
{
	if (o.kind == Obj::Ext && (o.ext_type == 1 || o.ext_type == 3)) {
		Loaded l = read_ndarray(o, source, path);
		out[path] = Variable{Tensor(l.shape, std::move(l.data)), l.dtype};
		return;
	}
	if (o.kind == Obj::Map) {
		if (const Obj* flag = find(o, "__msgpack_chunked_array__")) {
			(void)flag;
			const Obj* shape = find(o, "shape");
			const Obj* chunks = find(o, "chunks");
			if (!shape || !chunks || chunks->kind != Obj::Map)
				throw Error(source + ": " + path + ": a chunked array without shape or chunks");
			Shape s;
			if (shape->kind == Obj::Map) {
				for (std::size_t i = 0; i < shape->map.size(); i++) {
					const Obj* d = find(*shape, std::to_string(i));
					if (!d || d->kind != Obj::Int)
						throw Error(source + ": " + path + ": bad chunked shape");
					s.push_back(d->i);
				}
			} else if (shape->kind == Obj::Arr) {
				for (const Obj& d : shape->arr)
					s.push_back(d.i);
			}
			std::vector<float> data;
			std::string dtype;
			for (std::size_t i = 0; i < chunks->map.size(); i++) {
				const Obj* c = find(*chunks, std::to_string(i));
				if (!c || c->kind != Obj::Ext)
					throw Error(source + ": " + path + ": chunk " + std::to_string(i) + " missing");
				Loaded l = read_ndarray(*c, source, path);
				dtype = l.dtype;
				data.insert(data.end(), l.data.begin(), l.data.end());
			}
			if (data.size() != num_elements(s))
				throw Error(source + ": " + path + ": chunks hold " + std::to_string(data.size()) +
					    " values for shape " + shape_str(s));
			out[path] = Variable{Tensor(s, std::move(data)), dtype};
			return;
		}
		for (const auto& [k, v] : o.map) {
			if (k.kind != Obj::Str)
				throw Error(source + ": " + path + ": a non-string key");
			walk(v, path.empty() ? k.s : path + "/" + k.s, source, out);
		}
		return;
	}
	if (o.kind == Obj::Int || o.kind == Obj::Float) {
		out[path] = Variable{Tensor({}, {o.kind == Obj::Int ? float(o.i) : float(o.f)}),
				     o.kind == Obj::Int ? "int64" : "float32"};
		return;
	}
	throw Error(source + ": " + path + ": a leaf that is not an array");
}

std::vector<uint8_t> read_file(const std::string& path)
{
	std::ifstream f(path, std::ios::binary);
	if (!f)
		throw Error("cannot open " + path);
	return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

std::string json_str(const std::string& s)
{
	std::string o = "\"";
	for (char c : s) {
		if (c == '"' || c == '\\')
			o += '\\';
		o += c;
	}
	return o + "\"";
}

const char* st_dtype(const std::string& d)
{
	if (d == "float32") return "F32";
	if (d == "float16") return "F16";
	if (d == "bfloat16") return "BF16";
	if (d == "int32") return "I32";
	if (d == "int64") return "I64";
	if (d == "float64") return "F64";
	return nullptr;
}

std::string np_dtype(const std::string& d)
{
	if (d == "F32") return "float32";
	if (d == "F16") return "float16";
	if (d == "BF16") return "bfloat16";
	if (d == "I32") return "int32";
	if (d == "I64") return "int64";
	if (d == "F64") return "float64";
	return {};
}

} // namespace

std::vector<uint8_t> to_bytes(const Variables& variables, const CheckpointOptions& options)
{
	Node root;
	for (const auto& [path, v] : variables) {
		Node* n = &root;
		std::stringstream ss(path);
		std::string part;
		while (std::getline(ss, part, '/')) {
			if (n->leaf)
				throw Error("variables: " + path + " lies under a leaf");
			auto& c = n->children[part];
			if (!c)
				c = std::make_unique<Node>();
			n = c.get();
		}
		if (!n->children.empty())
			throw Error("variables: " + path + " is both a leaf and a subtree");
		n->leaf = &v;
		n->path = path;
	}
	Writer w;
	write_node(w, root, options);
	return std::move(w.b);
}

Variables from_bytes(std::span<const uint8_t> bytes, const std::string& source)
{
	Reader r{bytes, 0, source};
	Obj o = r.read();
	if (r.pos != bytes.size())
		r.bad("trailing data");
	if (o.kind != Obj::Map)
		throw Error(source + ": not a Flax msgpack checkpoint: the top level is not a map");
	Variables out;
	walk(o, "", source, out);
	return out;
}

std::vector<uint8_t> to_safetensors(const Variables& variables)
{
	std::string header = "{";
	std::vector<uint8_t> body;
	bool first = true;
	for (const auto& [path, v] : variables) {
		const std::string dt = dtype_of(v);
		const char* st = st_dtype(dt);
		if (!st)
			throw Error(path + ": cannot store dtype \"" + dt + "\" in safetensors");
		std::vector<uint8_t> data = encode(v.value, dt, path);
		header += (first ? "" : ",") + json_str(path) + ":{\"dtype\":\"" + st + "\",\"shape\":[";
		for (std::size_t i = 0; i < v.value.shape.size(); i++)
			header += (i ? "," : "") + std::to_string(v.value.shape[i]);
		header += "],\"data_offsets\":[" + std::to_string(body.size()) + "," +
			  std::to_string(body.size() + data.size()) + "]}";
		body.insert(body.end(), data.begin(), data.end());
		first = false;
	}
	header += "}";
	while (header.size() % 8)
		header += ' ';
	std::vector<uint8_t> out(8);
	uint64_t n = header.size();
	for (int i = 0; i < 8; i++)
		out[i] = uint8_t(n >> (8 * i));
	out.insert(out.end(), header.begin(), header.end());
	out.insert(out.end(), body.begin(), body.end());
	return out;
}

Variables from_safetensors(std::span<const uint8_t> bytes, const std::string& source)
{
	if (bytes.size() < 8)
		throw Error(source + ": not a safetensors file (shorter than 8 bytes)");
	uint64_t n = 0;
	for (int i = 7; i >= 0; i--)
		n = (n << 8) | bytes[i];
	if (n > bytes.size() - 8)
		throw Error(source + ": safetensors header of " + std::to_string(n) + " bytes overruns the file");
	const std::string h(reinterpret_cast<const char*>(bytes.data() + 8), n);
	const uint8_t* body = bytes.data() + 8 + n;
	const uint64_t body_size = bytes.size() - 8 - n;
	// a small JSON scanner for {"name": {"dtype": "...", "shape": [...], "data_offsets": [a, b]}, ...}
	std::size_t p = 0;
	auto ws = [&] {
		while (p < h.size() && std::isspace(static_cast<unsigned char>(h[p])))
			p++;
	};
	auto expect = [&](char c) {
		ws();
		if (p >= h.size() || h[p] != c)
			throw Error(source + ": bad safetensors header near byte " + std::to_string(p));
		p++;
	};
	auto str = [&] {
		expect('"');
		std::string s;
		while (p < h.size() && h[p] != '"') {
			if (h[p] == '\\' && p + 1 < h.size())
				p++;
			s += h[p++];
		}
		expect('"');
		return s;
	};
	auto ints = [&] {
		std::vector<uint64_t> v;
		expect('[');
		ws();
		if (p < h.size() && h[p] == ']') {
			p++;
			return v;
		}
		while (true) {
			ws();
			std::size_t used = 0;
			v.push_back(std::stoull(h.substr(p), &used));
			p += used;
			ws();
			if (p < h.size() && h[p] == ',') {
				p++;
				continue;
			}
			expect(']');
			return v;
		}
	};
	auto skip_value = [&] {
		ws();
		int depth = 0;
		bool in_str = false;
		for (; p < h.size(); p++) {
			char c = h[p];
			if (in_str) {
				if (c == '\\')
					p++;
				else if (c == '"')
					in_str = false;
				continue;
			}
			if (c == '"')
				in_str = true;
			else if (c == '{' || c == '[')
				depth++;
			else if (c == '}' || c == ']') {
				if (depth == 0)
					return;
				depth--;
			} else if (c == ',' && depth == 0)
				return;
		}
	};
	Variables out;
	expect('{');
	ws();
	if (p < h.size() && h[p] == '}')
		return out;
	while (true) {
		std::string name = str();
		expect(':');
		if (name == "__metadata__") {
			skip_value();
		} else {
			expect('{');
			std::string dtype;
			std::vector<uint64_t> shape, off;
			while (true) {
				std::string k = str();
				expect(':');
				if (k == "dtype")
					dtype = str();
				else if (k == "shape")
					shape = ints();
				else if (k == "data_offsets")
					off = ints();
				else
					skip_value();
				ws();
				if (p < h.size() && h[p] == ',') {
					p++;
					continue;
				}
				expect('}');
				break;
			}
			const std::string dt = np_dtype(dtype);
			if (dt.empty())
				throw Error(source + ": " + name + ": unsupported safetensors dtype \"" + dtype + "\"");
			Shape s(shape.begin(), shape.end());
			const std::size_t count = num_elements(s);
			if (off.size() != 2 || off[0] > off[1] || off[1] > body_size || off[1] - off[0] != count * itemsize(dt))
				throw Error(source + ": " + name + ": data_offsets do not fit shape " + shape_str(s) + " of " +
					    dt);
			out[name] = Variable{Tensor(s, decode(body + off[0], count, dt, source + ": " + name)), dt};
		}
		ws();
		if (p < h.size() && h[p] == ',') {
			p++;
			continue;
		}
		expect('}');
		break;
	}
	return out;
}

void save_checkpoint(const std::string& path, const Variables& variables, const CheckpointOptions& options)
{
	const bool st = path.size() >= 12 && path.substr(path.size() - 12) == ".safetensors";
	std::vector<uint8_t> b = st ? to_safetensors(variables) : to_bytes(variables, options);
	std::ofstream f(path, std::ios::binary);
	f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
	if (!f)
		throw Error("cannot write " + path);
}

Variables load_checkpoint(const std::string& path)
{
	std::vector<uint8_t> b = read_file(path);
	const bool st = path.size() >= 12 && path.substr(path.size() - 12) == ".safetensors";
	return st ? from_safetensors(b, path) : from_bytes(b, path);
}

void check_against(const Variables& expected, const Variables& loaded, const std::string& source)
{
	std::vector<std::string> problems;
	for (const auto& [p, v] : expected) {
		auto it = loaded.find(p);
		if (it == loaded.end())
			problems.push_back(p + ": missing, expected shape " + shape_str(v.value.shape));
		else if (it->second.value.shape != v.value.shape)
			problems.push_back(p + ": shape " + shape_str(it->second.value.shape) + ", expected " +
					   shape_str(v.value.shape));
	}
	for (const auto& [p, v] : loaded)
		if (!expected.count(p))
			problems.push_back(p + ": unexpected (shape " + shape_str(v.value.shape) + ")");
	if (problems.empty())
		return;
	std::string msg = source + " does not match the model (" + std::to_string(problems.size()) + " problem" +
			  (problems.size() > 1 ? "s" : "") + "):";
	for (const auto& p : problems)
		msg += "\n  " + p;
	throw Error(msg);
}

Variables restore_checkpoint(const std::string& path, const Variables& expected)
{
	Variables v = load_checkpoint(path);
	check_against(expected, v, path);
	return v;
}

} // namespace flaxdrm::flax
