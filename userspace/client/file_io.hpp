// Whole-file reads and writes with messages that name the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace flaxdrm::detail {

std::vector<uint8_t> read_file(const std::string& path, const std::string& what);
void write_file(const std::string& path, const std::vector<uint8_t>& bytes, const std::string& what);

} // namespace flaxdrm::detail
