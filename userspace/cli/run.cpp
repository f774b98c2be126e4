// flaxdrm run --model M.json --params P.msgpack --input X.npy --output Y.npy
//             [--device drm|local] [--node PATH] [--timings] [--repeat N]
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "command.hpp"
#include "flaxdrm/device.hpp"
#include "flaxdrm/model.hpp"
#include "flaxdrm/npy.hpp"
#include "flaxdrm/variables.hpp"
#include "tools/sandbox.hpp"

using namespace flaxdrm;

namespace {

struct RunOptions {
	std::string model, params, input, output;
	std::string device = "drm";
	std::string node, vulkan_device;
	int64_t timeout_ms = 0;
	bool timings = false;
	int repeat = 1;
	bool sandbox = false, sandbox_selftest = false; // tools/sandbox.hpp
};

int cmd_run(const RunOptions& o)
{
	Model model = read_model_json(o.model);
	Variables variables = read_variables(o.params);
	Tensor input = read_npy(o.input);
	check_variables(model, variables, input.shape, o.params);

	DeviceOptions dopts;
	dopts.node = o.node;
	dopts.timeout_ms = o.timeout_ms;
	dopts.vulkan_device = o.vulkan_device;
	// --sandbox: the output is opened now, the filter goes on once the device is open
	std::optional<sandbox::RunSandbox> box;
	if (o.sandbox)
		box.emplace(o.device, o.output);
	auto device = Device::open(o.device, dopts);
	if (box)
		box->enter(o.sandbox_selftest);
	auto bound = device->bind(model, variables, input.shape);
	Tensor output;
	for (int i = 0; i < o.repeat; i++)
		output = bound->apply(input);
	bound->close();
	if (box)
		box->write_output(format_npy(output));
	else
		write_npy(o.output, output);

	if (o.timings) {
		std::printf("device: %s\n", device->description().c_str());
		for (const auto& t : bound->timings())
			std::printf("  %-8s %10.3f ms\n", t.job.c_str(), t.wall_ns / 1e6);
	}
	return 0;
}

cli::Registrar reg{
	"run", "run a model described in JSON with a Flax variables checkpoint", 20,
	[](CLI::App& run) -> cli::Action {
		auto o = std::make_shared<RunOptions>();
		RunOptions& ro = *o;
		run.add_option("--model", ro.model, "model JSON")->required();
		run.add_option("--params", ro.params,
			       "Flax variables: flax.serialization.to_bytes msgpack, or .safetensors with /-joined names")
			->required();
		run.add_option("--input", ro.input, "input .npy (float32; int32 for Embed)")->required();
		run.add_option("--output", ro.output, "output .npy to write")->required();
		run.add_option("--device", ro.device, "drm (the kernel path, default) or local (in-process)")
			->check(CLI::IsMember({"drm", "local"}));
		run.add_option("--node", ro.node, "drm: render node (default: found by driver name)");
		run.add_option("--timeout-ms", ro.timeout_ms, "drm: wait per job (default: kernel job timeout + 10 s)");
		run.add_option("--vulkan-device", ro.vulkan_device, "local: prefer this Vulkan device (name substring)");
		run.add_option("--repeat", ro.repeat, "run the call this many times")->check(CLI::PositiveNumber);
		run.add_flag("--timings", ro.timings, "print the wall time of each job");
		auto* sandbox = run.add_flag("--sandbox", ro.sandbox,
			     "drm: after opening the files and the render node, drop root to nobody and run under a "
			     "seccomp filter that refuses opening files, sockets, exec and fork (EPERM)");
		run.add_flag("--sandbox-selftest", ro.sandbox_selftest, "test: try forbidden syscalls in the sandbox")
			->needs(sandbox)
			->group("");
		return [o] { return cmd_run(*o); };
	}};

} // namespace
