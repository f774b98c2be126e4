// flaxdrm run --sandbox: a client that holds nothing but the render node.
//
// Order: every file is opened first (model, params, input, the render node
// and the output file), then enter() drops root to nobody (65534: setgroups,
// setresgid, setresuid), closes every fd except stdio, the kept ones and the
// flaxdrm render node(s), sets PR_SET_NO_NEW_PRIVS and installs a seccomp
// filter (libseccomp). The filter is an allow-list; everything else fails
// with EPERM (SCMP_ACT_ERRNO, deterministic: never a kill), so opening files
// (open, openat, openat2, creat), sockets, exec, fork/clone, ptrace, ... are
// refused with a readable error. Allowed: read/write (and the v/p variants)
// and close on held fds, fstat, lseek, ioctl of the DRM ('d') and sync_file
// ('>') types only, memory (mmap, munmap, mprotect, mremap, brk, madvise),
// futex, clocks and sleeps, poll/ppoll, signal return and masks,
// sigaltstack (ASan queries it before every noreturn call), tgkill of
// itself (abort), getpid/gettid/get*id, getrandom, sched_yield, exit and
// exit_group. Non-native syscall ABIs are killed (libseccomp's default).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace flaxdrm::sandbox {

constexpr unsigned kNobody = 65534;

// PR_SET_NO_NEW_PRIVS and the seccomp filter, nothing else. 0 or -errno.
int install_filter();

// Root: drop to kNobody (all ids, no supplementary groups); throws
// flaxdrm::Error if it cannot. Not root: nothing. Returns whether it dropped.
bool drop_privileges();

// Closes every fd above 2 that is not in keep and not a DRM render node
// (/dev/dri/renderD*). Returns how many were closed; *render_nodes (if not
// null) gets how many render node fds stay open.
int close_other_fds(std::span<const int> keep, int* render_nodes = nullptr);

// Tries forbidden syscalls (openat /etc/passwd, socket AF_INET, execve,
// fork) and reports each; ok is true when all were refused with EPERM.
struct SelftestResult {
	std::vector<std::string> lines;
	bool ok = true;
};
SelftestResult selftest();

// What flaxdrm run --sandbox uses: the output file is opened at
// construction, enter() after the device is open, write_output() at the end.
class RunSandbox {
public:
	// device must be "drm" (the local device needs Vulkan, files and more).
	RunSandbox(const std::string& device, const std::string& output_path);
	~RunSandbox();
	RunSandbox(const RunSandbox&) = delete;
	RunSandbox& operator=(const RunSandbox&) = delete;

	// Drops privileges, closes other fds, installs the filter; with
	// selftest, runs selftest() and prints it to stderr (throws if a
	// forbidden syscall got through).
	void enter(bool selftest);
	void write_output(std::span<const uint8_t> bytes);

private:
	std::string output_path_;
	int output_fd_ = -1;
};

} // namespace flaxdrm::sandbox
