// flaxdrm run --sandbox (see sandbox.hpp).
#include "sandbox.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flaxdrm/error.hpp"

namespace flaxdrm::sandbox {
namespace {

std::string err(int e)
{
	const char* name = strerrorname_np(e);
	return std::string(name ? name : "?") + " (" + std::strerror(e) + ")";
}

// throws with errno's name, read before anything else can change it
[[noreturn]] void errno_fail(const std::string& what)
{
	int e = errno;
	throw Error("sandbox: " + what + ": " + err(e), -e);
}

bool is_render_node(int fd)
{
	char link[64], target[256];
	std::snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0)
		return false;
	target[n] = 0;
	return std::strncmp(target, "/dev/dri/renderD", 16) == 0;
}

} // namespace

int install_filter()
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	if (!ctx)
		return -ENOMEM;
	int ret = 0;
	auto allow = [&](int nr) {
		if (!ret)
			ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
	};
	for (int nr : {SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev), SCMP_SYS(pread64),
		       SCMP_SYS(pwrite64), SCMP_SYS(close), SCMP_SYS(fstat), SCMP_SYS(lseek), SCMP_SYS(mmap),
		       SCMP_SYS(munmap), SCMP_SYS(mprotect), SCMP_SYS(mremap), SCMP_SYS(brk), SCMP_SYS(madvise),
		       SCMP_SYS(futex), SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres), SCMP_SYS(gettimeofday),
		       SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep), SCMP_SYS(poll), SCMP_SYS(ppoll),
		       SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask), SCMP_SYS(sigaltstack),
		       SCMP_SYS(getpid), SCMP_SYS(gettid),
		       SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid),
		       SCMP_SYS(getrandom), SCMP_SYS(sched_yield), SCMP_SYS(restart_syscall), SCMP_SYS(exit),
		       SCMP_SYS(exit_group)})
		allow(nr);
	// ioctl: only the DRM ('d') and sync_file ('>') types, bits 8..15 of
	// the request (a syncobj's status goes through a sync_file fd)
	for (unsigned type : {unsigned('d'), unsigned('>')})
		if (!ret)
			ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					       SCMP_A1(SCMP_CMP_MASKED_EQ, 0xff00, type << 8));
	// abort(): tgkill of this process only
	if (!ret)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
				       SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(getpid())));
	if (!ret)
		ret = seccomp_load(ctx);
	seccomp_release(ctx);
	return ret;
}

bool drop_privileges()
{
	if (geteuid() != 0 && getuid() != 0)
		return false;
	if (setgroups(0, nullptr))
		errno_fail("setgroups");
	if (setresgid(kNobody, kNobody, kNobody))
		errno_fail("setresgid(65534)");
	if (setresuid(kNobody, kNobody, kNobody))
		errno_fail("setresuid(65534)");
	uid_t r, e, s;
	gid_t gr, ge, gs;
	if (getresuid(&r, &e, &s) || getresgid(&gr, &ge, &gs) || r != kNobody || e != kNobody || s != kNobody ||
	    gr != kNobody || ge != kNobody || gs != kNobody || setuid(0) == 0)
		throw Error("sandbox: still privileged after dropping to 65534", -EPERM);
	return true;
}

int close_other_fds(std::span<const int> keep, int* render_nodes)
{
	std::vector<int> fds;
	if (DIR* d = opendir("/proc/self/fd")) {
		int self = dirfd(d);
		while (dirent* e = readdir(d)) {
			char* end;
			long fd = std::strtol(e->d_name, &end, 10);
			if (*end || end == e->d_name || fd == self)
				continue;
			fds.push_back(int(fd));
		}
		closedir(d);
	} else {
		errno_fail("cannot list /proc/self/fd");
	}
	int closed = 0, render = 0;
	for (int fd : fds) {
		if (fd <= 2 || std::find(keep.begin(), keep.end(), fd) != keep.end())
			continue;
		if (is_render_node(fd)) {
			render++;
			continue;
		}
		if (close(fd) == 0)
			closed++;
	}
	if (render_nodes)
		*render_nodes = render;
	return closed;
}

SelftestResult selftest()
{
	SelftestResult r;
	auto check = [&](const char* what, long ret, int e) {
		std::string line = std::string("sandbox selftest: ") + what + ": ";
		if (ret >= 0) {
			line += "ALLOWED (returned " + std::to_string(ret) + ")";
			r.ok = false;
		} else if (e == EPERM) {
			line += "refused (EPERM)";
		} else {
			line += "failed with " + err(e) + ", expected EPERM";
			r.ok = false;
		}
		r.lines.push_back(line);
		return ret;
	};

	errno = 0;
	long fd = syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_RDONLY | O_CLOEXEC);
	int e = errno;
	if (check("openat(\"/etc/passwd\")", fd, e) >= 0)
		close(int(fd));

	errno = 0;
	long s = syscall(SYS_socket, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	e = errno;
	if (check("socket(AF_INET)", s, e) >= 0)
		close(int(s));

	errno = 0;
	char* const argv[] = {const_cast<char*>("/bin/true"), nullptr};
	char* const envp[] = {nullptr};
	long x = syscall(SYS_execve, "/bin/true", argv, envp);
	e = errno;
	check("execve(\"/bin/true\")", x, e);

	errno = 0;
	// a raw fork: SIGCHLD-only clone, no glibc atfork handlers
	long pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	e = errno;
	if (pid == 0)
		_exit(0);
	if (check("clone (fork)", pid, e) > 0)
		waitpid(pid_t(pid), nullptr, 0);
	return r;
}

RunSandbox::RunSandbox(const std::string& device, const std::string& output_path) : output_path_(output_path)
{
	if (device != "drm")
		throw Error("--sandbox runs only the drm device (the local one needs Vulkan and files)", -EINVAL);
	output_fd_ = open(output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (output_fd_ < 0) {
		int e = errno;
		throw Error(output_path + ": cannot open for writing: " + err(e), -e);
	}
}

RunSandbox::~RunSandbox()
{
	if (output_fd_ >= 0)
		close(output_fd_);
}

void RunSandbox::enter(bool run_selftest)
{
	bool dropped = drop_privileges();
	int render = 0;
	const int keep[] = {output_fd_};
	close_other_fds(keep, &render);
	if (render == 0)
		throw Error("sandbox: no render node is open (the drm device opens it first)", -ENODEV);
	int ret = install_filter();
	if (ret)
		throw Error("sandbox: cannot install the seccomp filter: " + err(-ret), ret);
	if (std::getenv("FLAXDRM_DEBUG") || run_selftest)
		std::fprintf(stderr, "flaxdrm: sandboxed: uid %u%s, %d render node fd(s), seccomp filter on\n",
			     unsigned(getuid()), dropped ? " (dropped from root)" : "", render);
	if (run_selftest) {
		SelftestResult r = selftest();
		for (const auto& line : r.lines)
			std::fprintf(stderr, "%s\n", line.c_str());
		if (!r.ok)
			throw Error("sandbox selftest: a forbidden syscall was not refused", -EPERM);
		std::fprintf(stderr, "sandbox selftest: all refused\n");
	}
}

void RunSandbox::write_output(std::span<const uint8_t> bytes)
{
	const uint8_t* p = bytes.data();
	std::size_t left = bytes.size();
	while (left) {
		ssize_t n = write(output_fd_, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			throw Error(output_path_ + ": write failed: " + err(e), -e);
		}
		p += n;
		left -= std::size_t(n);
	}
	int fd = output_fd_;
	output_fd_ = -1;
	if (close(fd)) {
		int e = errno;
		throw Error(output_path_ + ": close failed: " + err(e), -e);
	}
}

} // namespace flaxdrm::sandbox
