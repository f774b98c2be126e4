// flaxdrm: the command-line tool.
//
//   flaxdrm info
//   flaxdrm run --model M.json --params P.msgpack --input X.npy --output Y.npy
//               [--device drm|local] [--node PATH] [--timings]
#include <cerrno>
#include <cstdio>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "flaxdrm/device.hpp"
#include "flaxdrm/error.hpp"
#include "flaxdrm/flaxdrm.h"
#include "flaxdrm/model.hpp"
#include "flaxdrm/npy.hpp"
#include "flaxdrm/runtime.hpp"
#include "flaxdrm/variables.hpp"

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

struct RunOptions {
	std::string model, params, input, output;
	std::string device = "drm";
	std::string node, vulkan_device;
	int64_t timeout_ms = 0;
	bool timings = false;
	int repeat = 1;
};

int cmd_run(const RunOptions& o)
{
	Model model = read_model_json(o.model);
	Variables variables = read_flax_msgpack(o.params);
	Tensor input = read_npy(o.input);
	check_variables(model, variables, input.shape, o.params);

	DeviceOptions dopts;
	dopts.node = o.node;
	dopts.timeout_ms = o.timeout_ms;
	dopts.vulkan_device = o.vulkan_device;
	auto device = Device::open(o.device, dopts);
	auto bound = device->bind(model, variables, input.shape);
	Tensor output;
	for (int i = 0; i < o.repeat; i++)
		output = bound->apply(input);
	bound->close();
	write_npy(o.output, output);

	if (o.timings) {
		std::printf("device: %s\n", device->description().c_str());
		for (const auto& t : bound->timings())
			std::printf("  %-8s %10.3f ms\n", t.job.c_str(), t.wall_ns / 1e6);
	}
	return 0;
}

} // namespace

int main(int argc, char** argv)
{
	CLI::App app{"flaxdrm: Flax-style modules through the flaxdrm DRM device"};
	app.require_subcommand(1);

	std::string info_node;
	auto* info = app.add_subcommand("info", "show the flaxdrm device, its engine and the local Vulkan device");
	info->add_option("--node", info_node, "flaxdrm render node (default: found by driver name)");

	RunOptions ro;
	auto* run = app.add_subcommand("run", "run a model described in JSON with a Flax variables checkpoint");
	run->add_option("--model", ro.model, "model JSON")->required();
	run->add_option("--params", ro.params, "Flax variables (flax.serialization.to_bytes msgpack)")->required();
	run->add_option("--input", ro.input, "input .npy (float32)")->required();
	run->add_option("--output", ro.output, "output .npy to write")->required();
	run->add_option("--device", ro.device, "drm (the kernel path, default) or local (in-process)")
		->check(CLI::IsMember({"drm", "local"}));
	run->add_option("--node", ro.node, "drm: render node (default: found by driver name)");
	run->add_option("--timeout-ms", ro.timeout_ms, "drm: wait per job (default: kernel job timeout + 10 s)");
	run->add_option("--vulkan-device", ro.vulkan_device, "local: prefer this Vulkan device (name substring)");
	run->add_option("--repeat", ro.repeat, "run the call this many times")->check(CLI::PositiveNumber);
	run->add_flag("--timings", ro.timings, "print the wall time of each job");

	try {
		app.parse(argc, argv);
	} catch (const CLI::ParseError& e) {
		return app.exit(e);
	}

	const char* which = info->parsed() ? "info" : "run";
	try {
		if (info->parsed())
			return cmd_info(info_node);
		return cmd_run(ro);
	} catch (const Error& e) {
		std::fprintf(stderr, "flaxdrm %s: error: %s\n", which, e.what());
	} catch (const std::exception& e) {
		std::fprintf(stderr, "flaxdrm %s: error: %s\n", which, e.what());
	}
	return 1;
}
