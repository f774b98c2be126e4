#include "file_io.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "flaxdrm/error.hpp"

namespace flaxdrm::detail {

std::vector<uint8_t> read_file(const std::string& path, const std::string& what)
{
	std::ifstream in(path, std::ios::binary);
	if (!in)
		throw Error("cannot open " + what + " '" + path + "': " + std::strerror(errno), -errno);
	std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
	if (in.bad())
		throw Error("cannot read " + what + " '" + path + "': " + std::strerror(errno), -errno);
	return bytes;
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes, const std::string& what)
{
	std::ofstream out(path, std::ios::binary | std::ios::trunc);
	if (!out)
		throw Error("cannot create " + what + " '" + path + "': " + std::strerror(errno), -errno);
	out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
	out.close();
	if (!out)
		throw Error("cannot write " + what + " '" + path + "': " + std::strerror(errno), -errno);
}

} // namespace flaxdrm::detail
