// Device selection.
#include "flaxdrm/device.hpp"

#include "flaxdrm/error.hpp"

namespace flaxdrm {

std::unique_ptr<Device> Device::open(const std::string& kind, const DeviceOptions& options)
{
	if (kind == "drm")
		return open_drm(options);
	if (kind == "local")
		return open_local(options);
	throw Error("unknown device \"" + kind + "\" (expected \"drm\" or \"local\")");
}

} // namespace flaxdrm
