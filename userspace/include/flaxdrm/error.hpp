// Errors of the flaxdrm C++ client layer.
#pragma once

#include <stdexcept>
#include <string>

namespace flaxdrm {

// Everything the client layer refuses or fails to do. The message says what
// was wrong and where (file, module path, variable path, op). `code` is a
// negative errno when the failure came from the kernel or the runtime, else 0.
class Error : public std::runtime_error {
public:
	explicit Error(const std::string& what, int code = 0) : std::runtime_error(what), code_(code) {}
	int code() const noexcept { return code_; }

private:
	int code_;
};

// "EINVAL (Invalid argument)" for -EINVAL or EINVAL.
std::string errno_string(int err);

} // namespace flaxdrm
