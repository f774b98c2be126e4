// The Module API's checkpoint checks (the formats are flaxdrm_client's).
#include "flaxdrm/flax/checkpoint.hpp"

namespace flaxdrm::flax {

void check_against(const Variables& expected, const Variables& loaded, const std::string& source)
{
	std::map<std::string, Shape> shapes;
	for (const auto& [path, variable] : expected)
		shapes.emplace_hint(shapes.end(), path, variable.value.shape);
	check_variable_shapes(shapes, loaded, source + " does not match the model");
}

Variables restore_checkpoint(const std::string& path, const Variables& expected)
{
	Variables v = load_checkpoint(path);
	check_against(expected, v, path);
	return v;
}

} // namespace flaxdrm::flax
