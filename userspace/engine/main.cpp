// flaxdrm-engine [--node PATH] [--ready-file PATH] [--vulkan-device NAME] [--no-warm-up] [-v]
//
// The trusted engine daemon: opens the flaxdrm primary node, attaches as
// its engine (root/CAP_SYS_ADMIN), then fetches setup/call/cleanup jobs and
// runs them on Vulkan until SIGTERM or SIGINT.
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include <unistd.h>

#include "flaxdrm/engine.hpp"
#include "flaxdrm/flaxdrm.h"

using namespace flaxdrm;

namespace {

std::atomic<bool> stop{false};

void on_signal(int)
{
	stop.store(true);
}

void usage(FILE* f)
{
	std::fprintf(f,
		     "usage: flaxdrm-engine [--node PATH] [--ready-file PATH] [--vulkan-device NAME] [--no-warm-up] [-v]\n"
		     "  --node PATH           flaxdrm primary node (default: found by driver name)\n"
		     "  --ready-file PATH     written once attached, for harnesses to wait on\n"
		     "  --vulkan-device NAME  prefer the Vulkan device whose name contains NAME\n"
		     "  --no-warm-up          attach at once instead of first compiling the common\n"
		     "                        pipelines (which keeps the first jobs of slow shader\n"
		     "                        compilers, lavapipe under emulation, within the\n"
		     "                        kernel's job timeout)\n"
		     "  -v, --verbose         log every job to stderr\n");
}

bool write_ready_file(const std::string& path, const std::string& node, const std::string& vk)
{
	std::string tmp = path + ".tmp";
	{
		std::ofstream out(tmp, std::ios::trunc);
		out << "pid " << getpid() << "\nnode " << node << "\nvulkan " << vk << "\n";
		if (!out.good())
			return false;
	}
	return std::rename(tmp.c_str(), path.c_str()) == 0;
}

} // namespace

int main(int argc, char** argv)
{
	std::string node, ready_file, vulkan_device;
	bool warm = true;
	for (int i = 1; i < argc; i++) {
		std::string a = argv[i];
		auto value = [&](const char* opt) -> std::string {
			if (i + 1 >= argc) {
				std::fprintf(stderr, "flaxdrm-engine: %s needs a value\n", opt);
				std::exit(2);
			}
			return argv[++i];
		};
		if (a == "--node")
			node = value("--node");
		else if (a == "--ready-file")
			ready_file = value("--ready-file");
		else if (a == "--vulkan-device")
			vulkan_device = value("--vulkan-device");
		else if (a == "--warm-up")
			warm = true;
		else if (a == "--no-warm-up")
			warm = false;
		else if (a == "-v" || a == "--verbose")
			engine::verbose = true;
		else if (a == "-h" || a == "--help") {
			usage(stdout);
			return 0;
		} else {
			std::fprintf(stderr, "flaxdrm-engine: unknown argument '%s'\n", a.c_str());
			usage(stderr);
			return 2;
		}
	}

	struct sigaction sa {};
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, nullptr);
	sigaction(SIGINT, &sa, nullptr);
	std::signal(SIGPIPE, SIG_IGN);

	int fd = -1, ret;
	if (node.empty()) {
		char path[FLAXDRM_PATH_MAX];
		ret = flaxdrm_open(FLAXDRM_NODE_PRIMARY, &fd, path, sizeof(path));
		if (ret == -ENODEV) {
			engine::error("no flaxdrm device: no DRM primary node has driver \"flaxdrm\" (is flaxdrm.ko loaded?)");
			return 1;
		}
		if (ret) {
			engine::error("cannot open the flaxdrm primary node: %s", std::strerror(-ret));
			return 1;
		}
		node = path;
	} else {
		ret = flaxdrm_open_path(node.c_str(), &fd);
		if (ret) {
			engine::error("%s: %s", node.c_str(),
				      ret == -ENODEV ? "not a flaxdrm device" : std::strerror(-ret));
			return 1;
		}
	}

	// Vulkan first, so the engine attaches only once it can run jobs.
	std::unique_ptr<rt::Device> device;
	std::unique_ptr<rt::Executor> executor;
	try {
		rt::DeviceOptions o;
		o.preferred_name = vulkan_device;
		device = rt::Device::create(o);
		executor = rt::Executor::create(*device);
	} catch (const std::exception& e) {
		engine::error("cannot open a Vulkan device: %s", e.what());
		flaxdrm_close(fd);
		return 1;
	}

	if (warm)
		engine::warm_up(*executor);

	ret = flaxdrm_engine_attach(fd);
	if (ret) {
		if (ret == -EPERM || ret == -EACCES)
			engine::error("ENGINE_ATTACH on %s refused: %s (the engine needs root or CAP_SYS_ADMIN)",
				      node.c_str(), std::strerror(-ret));
		else if (ret == -EBUSY)
			engine::error("ENGINE_ATTACH on %s: another engine is attached", node.c_str());
		else
			engine::error("ENGINE_ATTACH on %s: %s", node.c_str(), std::strerror(-ret));
		flaxdrm_close(fd);
		return 1;
	}
	engine::log("attached to %s, running on %s", node.c_str(), device->info().name.c_str());
	if (!ready_file.empty() && !write_ready_file(ready_file, node, device->info().name)) {
		engine::error("cannot write the ready file %s: %s", ready_file.c_str(), std::strerror(errno));
		flaxdrm_close(fd);
		return 1;
	}

	int rc = engine::serve(fd, *executor, stop);
	engine::log("%s, detaching", stop.load() ? "stopping on signal" : "stopping");
	executor.reset();
	device.reset();
	flaxdrm_close(fd);
	if (!ready_file.empty())
		unlink(ready_file.c_str());
	return rc;
}
