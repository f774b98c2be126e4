// flaxdrm info: the device node, driver version, engine state, Vulkan device.
#include <cerrno>
#include <cstdio>
#include <memory>
#include <string>

#include "command.hpp"
#include "flaxdrm/error.hpp"
#include "flaxdrm/flaxdrm.h"
#include "flaxdrm/runtime.hpp"

using namespace flaxdrm;

namespace {

int cmd_info(const std::string& node_opt)
{
	int rc = 0;
	bool vulkan_ok = true;
	int fd = -1, ret;
	std::string node = node_opt;
	if (node.empty()) {
		char path[FLAXDRM_PATH_MAX];
		ret = flaxdrm_open(FLAXDRM_NODE_RENDER, &fd, path, sizeof(path));
		if (!ret)
			node = path;
	} else {
		ret = flaxdrm_open_path(node.c_str(), &fd);
	}
	if (ret) {
		rc = 1;
		if (ret == -ENODEV && node.empty())
			std::printf("device:       none (no DRM render node has driver \"flaxdrm\"; is flaxdrm.ko loaded?)\n");
		else if (ret == -ENODEV)
			std::printf("device:       %s is not a flaxdrm device\n", node.c_str());
		else
			std::printf("device:       cannot open %s: %s\n", node.empty() ? "the flaxdrm render node" : node.c_str(),
				    errno_string(ret).c_str());
	} else {
		std::printf("device:       %s\n", node.c_str());
		flaxdrm_version v{};
		if (flaxdrm_get_version(fd, &v) == 0)
			std::printf("driver:       %s %d.%d.%d (%s) %s\n", v.name, v.major, v.minor, v.patchlevel, v.date,
				    v.desc);
		uint64_t value = 0;
		ret = flaxdrm_get_param(fd, FLAXDRM_PARAM_VERSION, &value);
		if (ret) {
			std::printf("abi:          GET_PARAM failed: %s\n", errno_string(ret).c_str());
			rc = 1;
		} else {
			std::printf("abi:          %llu.%llu (this client: %d.%d)\n",
				    static_cast<unsigned long long>(value >> 16),
				    static_cast<unsigned long long>(value & 0xffff), FLAXDRM_VERSION_MAJOR,
				    FLAXDRM_VERSION_MINOR);
		}
		if (flaxdrm_get_param(fd, FLAXDRM_PARAM_ENGINE_ATTACHED, &value) == 0)
			std::printf("engine:       %s\n", value ? "attached" : "not attached (start flaxdrm-engine)");
		if (flaxdrm_get_param(fd, FLAXDRM_PARAM_JOB_TIMEOUT_MS, &value) == 0)
			std::printf("job timeout:  %llu ms\n", static_cast<unsigned long long>(value));
		uint64_t t = 0, o = 0;
		if (flaxdrm_get_param(fd, FLAXDRM_PARAM_MAX_TENSORS, &t) == 0 &&
		    flaxdrm_get_param(fd, FLAXDRM_PARAM_MAX_OPS, &o) == 0)
			std::printf("limits:       %llu tensors, %llu ops per program\n",
				    static_cast<unsigned long long>(t), static_cast<unsigned long long>(o));
		flaxdrm_close(fd);
	}
	try {
		auto dev = rt::Device::create();
		const auto& info = dev->info();
		std::printf("vulkan:       %s (local runtime)\n", info.name.c_str());
		if (!info.driver.empty())
			std::printf("vulkan driver: %s, API %u.%u.%u\n", info.driver.c_str(), info.api_version >> 22,
				    (info.api_version >> 12) & 0x3ff, info.api_version & 0xfff);
		std::printf("vulkan dtypes: f32%s\n", info.f16 ? ", f16" : " (no f16: needs shaderFloat16 and 16-bit storage)");
	} catch (const std::exception& e) {
		std::printf("vulkan:       unavailable: %s\n", e.what());
		vulkan_ok = false;
	}
	std::fflush(stdout);
	if (rc)
		std::fprintf(stderr, "flaxdrm info: error: no usable flaxdrm device%s\n",
			     vulkan_ok ? " (--device local can still run models in-process)" : "");
	if (!vulkan_ok)
		std::fprintf(stderr, "flaxdrm info: error: no usable Vulkan device for the local runtime\n");
	return rc || !vulkan_ok ? 1 : 0;
}

cli::Registrar reg{"info", "show the flaxdrm device, its engine and the local Vulkan device", 10,
		   [](CLI::App& sub) -> cli::Action {
			   auto node = std::make_shared<std::string>();
			   sub.add_option("--node", *node, "flaxdrm render node (default: found by driver name)");
			   return [node] { return cmd_info(*node); };
		   }};

} // namespace
