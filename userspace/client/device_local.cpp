// The `local` device: the runtime in the client's own process.
#include <atomic>
#include <map>
#include <mutex>

#include "bound_common.hpp"
#include "flaxdrm/device.hpp"
#include "flaxdrm/error.hpp"
#include "flaxdrm/lowering.hpp"
#include "flaxdrm/runtime.hpp"

namespace flaxdrm {
namespace {

struct LocalRuntime {
	std::unique_ptr<rt::Device> device;
	std::unique_ptr<rt::Executor> executor;
	std::mutex mutex; // the executor is not thread-safe
};

// Variable keys unique in the process, so binds never share cache entries.
std::atomic<uint64_t> next_var_key{1};

class LocalBound final : public BoundModule {
public:
	LocalBound(std::shared_ptr<LocalRuntime> rt, const Model& model, const Variables& variables,
		   const Shape& input_shape)
		: rt_(std::move(rt)), model_(model), bound_shape_(input_shape)
	{
		// synthetic module ids: index + 1
		handles_.resize(model_.num_modules);
		for (int i = 0; i < model_.num_modules; i++)
			handles_[i] = static_cast<uint32_t>(i + 1);
		const Program& p = program(input_shape);
		for (const auto& v : p.variables) {
			Resident r;
			r.data = variables.at(v.path).value.data;
			r.key = next_var_key.fetch_add(1);
			r.desc = p.tensors[v.tensor];
			vars_.emplace(v.path, std::move(r));
		}
		uint64_t t0 = detail::now_ns();
		std::lock_guard lock(rt_->mutex);
		try {
			for (const auto& [path, r] : vars_)
				rt_->executor->load_variable(r.key, kGeneration, r.desc, r.data.data());
		} catch (const rt::Error& e) {
			drop_all();
			throw Error("setup on the local device failed: " + std::string(e.what()), e.status());
		}
		loaded_ = true;
		timings_.push_back({"setup", detail::now_ns() - t0});
	}

	~LocalBound() override
	{
		try {
			close();
		} catch (...) {
		}
	}

	Tensor apply(const Tensor& input) override
	{
		if (!loaded_)
			throw Error("apply on a closed module");
		detail::check_input(model_, bound_shape_, input);
		const Program& p = program(input.shape);
		Tensor out(p.output_shape);
		std::vector<rt::TensorMemory> mem(p.tensors.size());
		mem[p.input].host = const_cast<float*>(input.data.data());
		mem[p.input].size = input.data.size() * sizeof(float);
		mem[p.output].host = out.data.data();
		mem[p.output].size = out.data.size() * sizeof(float);
		for (const auto& v : p.variables) {
			Resident& r = vars_.at(v.path);
			mem[v.tensor].host = r.data.data();
			mem[v.tensor].size = r.data.size() * sizeof(float);
			mem[v.tensor].var_key = r.key;
			mem[v.tensor].var_generation = kGeneration;
		}
		uint64_t t0 = detail::now_ns();
		std::lock_guard lock(rt_->mutex);
		try {
			rt::RunStats stats = rt_->executor->run(p.tensors, p.ops, mem);
			last_call_ = CallProfile{};
			last_call_.exec_ns = stats.total_ns;
			last_call_.shader_invocations = stats.shader_invocations;
			for (const rt::OpTiming& t : stats.ops)
				last_call_.ops.push_back({t.op_index, t.opcode, t.start_ns, t.end_ns});
		} catch (const rt::Error& e) {
			throw Error("call on the local device failed: " + std::string(e.what()), e.status());
		}
		timings_.push_back({"call", detail::now_ns() - t0});
		last_call_.wall_ns = timings_.back().wall_ns;
		return out;
	}

	void close() override
	{
		if (!loaded_)
			return;
		loaded_ = false;
		uint64_t t0 = detail::now_ns();
		std::lock_guard lock(rt_->mutex);
		drop_all();
		timings_.push_back({"cleanup", detail::now_ns() - t0});
	}

private:
	static constexpr uint64_t kGeneration = 1;

	struct Resident {
		std::vector<float> data;
		uint64_t key = 0;
		drm_flaxdrm_tensor desc{};
	};

	void drop_all()
	{
		for (const auto& [path, r] : vars_)
			rt_->executor->drop_variable(r.key);
	}

	const Program& program(const Shape& input_shape)
	{
		auto it = programs_.find(input_shape);
		if (it == programs_.end())
			it = programs_.emplace(input_shape, lower(model_, input_shape, handles_)).first;
		return it->second;
	}

	std::shared_ptr<LocalRuntime> rt_;
	Model model_;
	Shape bound_shape_;
	std::vector<uint32_t> handles_;
	std::map<std::string, Resident> vars_;
	std::map<Shape, Program> programs_;
	bool loaded_ = false;
};

class LocalDevice final : public Device {
public:
	explicit LocalDevice(const DeviceOptions& options) : rt_(std::make_shared<LocalRuntime>())
	{
		rt::DeviceOptions o;
		o.preferred_name = options.vulkan_device;
		try {
			rt_->device = rt::Device::create(o);
			rt_->executor = rt::Executor::create(*rt_->device);
		} catch (const rt::Error& e) {
			throw Error("cannot open the local Vulkan device: " + std::string(e.what()), e.status());
		}
	}

	std::string kind() const override { return "local"; }
	std::string description() const override { return "local (" + rt_->device->info().name + ")"; }

	std::unique_ptr<BoundModule> bind(const Model& model, const Variables& variables,
					  const Shape& input_shape) override
	{
		check_variables(model, variables, input_shape);
		return std::make_unique<LocalBound>(rt_, model, variables, input_shape);
	}

private:
	std::shared_ptr<LocalRuntime> rt_;
};

} // namespace

std::unique_ptr<Device> Device::open_local(const DeviceOptions& options)
{
	return std::make_unique<LocalDevice>(options);
}

} // namespace flaxdrm
