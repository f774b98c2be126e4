// Helpers for the userspace host tests: a scratch directory, running
// commands and the Python (with numpy and msgpack) that writes fixtures.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include "flaxdrm/error.hpp"

namespace flaxdrm::testing {

inline std::string source_dir()
{
	return FLAXDRM_SOURCE_DIR;
}

inline std::string tools_dir()
{
	return source_dir() + "/tests/tools";
}

struct CommandResult {
	int status = -1; // exit status, or -1 if it did not exit normally
	std::string output; // stdout and stderr
};

// The message of the flaxdrm::Error that f throws, or "(no error)" (which the
// callers' HasSubstr then reports) when it throws none.
inline std::string error_of(const std::function<void()>& f)
{
	try {
		f();
	} catch (const Error& e) {
		return e.what();
	}
	return "(no error)";
}

inline std::string quote(const std::string& s)
{
	std::string q = "'";
	for (char c : s)
		q += c == '\'' ? std::string("'\\''") : std::string(1, c);
	return q + "'";
}

inline CommandResult run_command(const std::string& cmd)
{
	CommandResult r;
	FILE* p = popen((cmd + " 2>&1").c_str(), "r");
	if (!p)
		return r;
	std::array<char, 4096> buf;
	size_t n;
	while ((n = fread(buf.data(), 1, buf.size(), p)) > 0)
		r.output.append(buf.data(), n);
	int st = pclose(p);
	r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return r;
}

// A Python 3 with numpy and msgpack: $FLAXDRM_PYTHON, /usr/bin/python3 or
// python3 on PATH (a pyenv python may lack Debian's python3-numpy).
inline const std::string& python()
{
	static const std::string py = [] {
		std::vector<std::string> candidates;
		if (const char* env = std::getenv("FLAXDRM_PYTHON"))
			candidates.push_back(env);
		candidates.push_back("/usr/bin/python3");
		candidates.push_back("python3");
		for (const auto& c : candidates)
			if (run_command(quote(c) + " -c 'import numpy, msgpack'").status == 0)
				return c;
		return std::string();
	}();
	return py;
}

#define REQUIRE_PYTHON()                                                                    \
	do {                                                                                \
		if (::flaxdrm::testing::python().empty())                                   \
			GTEST_FAIL() << "no python3 with numpy and msgpack (set FLAXDRM_PYTHON)"; \
	} while (0)

// Runs a Python snippet; fails the test on a non-zero exit.
inline std::string run_python(const std::string& code, const std::string& args = "")
{
	std::string cmd = quote(python()) + " -c " + quote(code) + " " + args;
	CommandResult r = run_command(cmd);
	EXPECT_EQ(r.status, 0) << "python failed:\n" << code << "\n" << r.output;
	return r.output;
}

inline CommandResult run_tool(const std::string& script, const std::string& args)
{
	return run_command(quote(python()) + " " + quote(tools_dir() + "/" + script) + " " + args);
}

class TempDir {
public:
	TempDir()
	{
		std::string tmpl = (std::filesystem::temp_directory_path() / "flaxdrm-test-XXXXXX").string();
		char* p = mkdtemp(tmpl.data());
		if (p)
			path_ = p;
	}
	~TempDir()
	{
		std::error_code ec;
		if (!path_.empty())
			std::filesystem::remove_all(path_, ec);
	}
	std::string file(const std::string& name) const { return path_ + "/" + name; }
	const std::string& path() const { return path_; }

private:
	std::string path_;
};

inline void write_text(const std::string& path, const std::string& text)
{
	std::ofstream(path, std::ios::trunc) << text;
}

// Where the build put a userspace binary: next to tests/host in the build tree.
inline std::string build_binary(const std::string& name)
{
	std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe");
	return (exe.parent_path().parent_path().parent_path() / "userspace" / name).string();
}

} // namespace flaxdrm::testing
