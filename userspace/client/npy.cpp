// NumPy .npy reading and writing (see npy.hpp).
#include "flaxdrm/npy.hpp"

#include <cctype>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <variant>

#include "file_io.hpp"
#include "flaxdrm/error.hpp"

namespace flaxdrm {
namespace {

const char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicLen = 6;

// The header is a Python dict literal with str keys and str, bool or
// tuple-of-int values: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
using Value = std::variant<std::string, bool, Shape>;

class HeaderParser {
public:
	HeaderParser(const std::string& text, const std::string& source) : s_(text), source_(source) {}

	std::map<std::string, Value> parse()
	{
		std::map<std::string, Value> dict;
		expect('{');
		while (true) {
			skip_ws();
			if (peek() == '}') {
				pos_++;
				break;
			}
			std::string key = parse_string();
			expect(':');
			dict[key] = parse_value();
			skip_ws();
			if (peek() == ',') {
				pos_++;
				continue;
			}
			expect('}');
			break;
		}
		return dict;
	}

private:
	[[noreturn]] void fail(const std::string& what) const
	{
		throw Error(source_ + ": malformed .npy header (" + what + " at offset " + std::to_string(pos_) +
			    "): " + s_);
	}
	void skip_ws()
	{
		while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_])))
			pos_++;
	}
	char peek()
	{
		skip_ws();
		return pos_ < s_.size() ? s_[pos_] : '\0';
	}
	void expect(char c)
	{
		if (peek() != c)
			fail(std::string("expected '") + c + "'");
		pos_++;
	}
	std::string parse_string()
	{
		char q = peek();
		if (q != '\'' && q != '"')
			fail("expected a string");
		pos_++;
		std::string out;
		while (pos_ < s_.size() && s_[pos_] != q)
			out += s_[pos_++];
		if (pos_ >= s_.size())
			fail("unterminated string");
		pos_++;
		return out;
	}
	int64_t parse_int()
	{
		skip_ws();
		std::size_t start = pos_;
		while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_])))
			pos_++;
		if (start == pos_)
			fail("expected an integer");
		// numpy may write 3L in old files
		if (pos_ < s_.size() && s_[pos_] == 'L')
			pos_++;
		std::string digits = s_.substr(start, pos_ - start);
		if (digits.size() > 18)
			fail("dimension too large");
		return std::stoll(digits);
	}
	Value parse_value()
	{
		char c = peek();
		if (c == '\'' || c == '"')
			return parse_string();
		if (s_.compare(pos_, 4, "True") == 0) {
			pos_ += 4;
			return true;
		}
		if (s_.compare(pos_, 5, "False") == 0) {
			pos_ += 5;
			return false;
		}
		if (c == '(' || c == '[') {
			char close = c == '(' ? ')' : ']';
			pos_++;
			Shape shape;
			while (true) {
				if (peek() == close) {
					pos_++;
					break;
				}
				shape.push_back(parse_int());
				if (peek() == ',') {
					pos_++;
					continue;
				}
				expect(close);
				break;
			}
			return shape;
		}
		fail("unexpected value");
	}

	const std::string& s_;
	const std::string& source_;
	std::size_t pos_ = 0;
};

uint32_t le32(const uint8_t* p)
{
	return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

} // namespace

Tensor parse_npy(std::span<const uint8_t> bytes, const std::string& source)
{
	if (bytes.size() < kMagicLen + 4 || std::memcmp(bytes.data(), kMagic, kMagicLen) != 0)
		throw Error(source + ": not a .npy file (no \\x93NUMPY magic)");
	uint8_t major = bytes[6], minor = bytes[7];
	std::size_t header_len, header_start;
	if (major == 1) {
		header_len = bytes[8] | (bytes[9] << 8);
		header_start = 10;
	} else if (major == 2 || major == 3) {
		if (bytes.size() < 12)
			throw Error(source + ": truncated .npy header");
		header_len = le32(&bytes[8]);
		header_start = 12;
	} else {
		throw Error(source + ": unsupported .npy format version " + std::to_string(major) + "." +
			    std::to_string(minor) + " (1.0, 2.0 and 3.0 are read)");
	}
	if (bytes.size() - header_start < header_len)
		throw Error(source + ": truncated .npy header");
	std::string header(reinterpret_cast<const char*>(&bytes[header_start]), header_len);
	while (!header.empty() && (header.back() == '\n' || header.back() == ' ' || header.back() == '\0'))
		header.pop_back();

	auto dict = HeaderParser(header, source).parse();
	auto descr = dict.find("descr");
	auto fortran = dict.find("fortran_order");
	auto shape_it = dict.find("shape");
	if (descr == dict.end() || fortran == dict.end() || shape_it == dict.end())
		throw Error(source + ": .npy header lacks 'descr', 'fortran_order' or 'shape': " + header);
	if (!std::holds_alternative<std::string>(descr->second))
		throw Error(source + ": structured dtypes are not supported (only float32 '<f4')");
	const std::string& dtype = std::get<std::string>(descr->second);
	if (dtype != "<f4" && dtype != "<i4" && dtype != "<i8")
		throw Error(source + ": dtype '" + dtype +
			    "' is not supported: only little-endian float32 ('<f4'), and int32 ('<i4') or "
			    "int64 ('<i8') indices; convert with arr.astype(np.float32)");
	if (!std::holds_alternative<bool>(fortran->second))
		throw Error(source + ": bad 'fortran_order' in .npy header");
	if (std::get<bool>(fortran->second))
		throw Error(source + ": Fortran-order arrays are not supported: save np.ascontiguousarray(arr)");
	if (!std::holds_alternative<Shape>(shape_it->second))
		throw Error(source + ": bad 'shape' in .npy header");

	Tensor t;
	t.shape = std::get<Shape>(shape_it->second);
	const std::size_t elem = dtype == "<i8" ? 8 : 4;
	const char* what = dtype == "<f4" ? "float32" : dtype == "<i4" ? "int32" : "int64";
	t.dtype = dtype == "<f4" ? DType::F32 : DType::I32;
	std::size_t n = num_elements(t.shape);
	std::size_t data_start = header_start + header_len;
	std::size_t have = bytes.size() - data_start;
	if (n > SIZE_MAX / elem || have != n * elem)
		throw Error(source + ": shape " + shape_str(t.shape) + " needs " + std::to_string(n * elem) + " bytes of " +
			    what + " data, the file has " + std::to_string(have));
	t.data.resize(n);
	if (n && elem == 4)
		std::memcpy(t.data.data(), &bytes[data_start], n * 4);
	for (std::size_t i = 0; elem == 8 && i < n; i++) {
		int64_t v;
		std::memcpy(&v, &bytes[data_start + i * 8], 8);
		if (v < INT32_MIN || v > INT32_MAX)
			throw Error(source + ": int64 element " + std::to_string(i) + " (" + std::to_string(v) +
				    ") does not fit int32");
		int32_t v32 = static_cast<int32_t>(v);
		std::memcpy(&t.data[i], &v32, 4);
	}
	return t;
}

Tensor read_npy(const std::string& path)
{
	auto bytes = detail::read_file(path, ".npy file");
	return parse_npy(bytes, path);
}

std::vector<uint8_t> format_npy(const Tensor& tensor)
{
	if (num_elements(tensor.shape) != tensor.data.size())
		throw Error("tensor of shape " + shape_str(tensor.shape) + " holds " +
			    std::to_string(tensor.data.size()) + " elements");
	std::string header = std::string("{'descr': '") + (tensor.dtype == DType::I32 ? "<i4" : "<f4") +
			     "', 'fortran_order': False, 'shape': " + shape_str(tensor.shape) + ", }";
	// magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64
	std::size_t total = kMagicLen + 4 + header.size() + 1;
	header.append((64 - total % 64) % 64, ' ');
	header += '\n';
	if (header.size() > 0xffff)
		throw Error("shape " + shape_str(tensor.shape) + " has too many dimensions for a .npy 1.0 header");

	// sized up front and filled with memcpy (GCC 12 warns falsely on
	// vector::insert chains at -O2)
	std::size_t data_bytes = tensor.data.size() * sizeof(float);
	std::vector<uint8_t> out(kMagicLen + 4 + header.size() + data_bytes);
	uint8_t* p = out.data();
	std::memcpy(p, kMagic, kMagicLen);
	p[6] = 1;
	p[7] = 0;
	p[8] = static_cast<uint8_t>(header.size() & 0xff);
	p[9] = static_cast<uint8_t>(header.size() >> 8);
	std::memcpy(p + 10, header.data(), header.size());
	if (data_bytes)
		std::memcpy(p + 10 + header.size(), tensor.data.data(), data_bytes);
	return out;
}

void write_npy(const std::string& path, const Tensor& tensor)
{
	detail::write_file(path, format_npy(tensor), ".npy file");
}

} // namespace flaxdrm
