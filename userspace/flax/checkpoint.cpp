// The Module API's checkpoint checks (the formats are flaxdrm_client's).
#include "flaxdrm/flax/checkpoint.hpp"

namespace flaxdrm::flax {

void check_against(const Variables& expected, const Variables& loaded, const std::string& source)
{
	std::vector<std::string> problems;
	for (const auto& [p, v] : expected) {
		auto it = loaded.find(p);
		if (it == loaded.end())
			problems.push_back(p + ": missing, expected shape " + shape_str(v.value.shape));
		else if (it->second.value.shape != v.value.shape)
			problems.push_back(p + ": shape " + shape_str(it->second.value.shape) + ", expected " +
					   shape_str(v.value.shape));
	}
	for (const auto& [p, v] : loaded)
		if (!expected.count(p))
			problems.push_back(p + ": unexpected (shape " + shape_str(v.value.shape) + ")");
	if (problems.empty())
		return;
	std::string msg = source + " does not match the model (" + std::to_string(problems.size()) + " problem" +
			  (problems.size() > 1 ? "s" : "") + "):";
	for (const auto& p : problems)
		msg += "\n  " + p;
	throw Error(msg);
}

Variables restore_checkpoint(const std::string& path, const Variables& expected)
{
	Variables v = load_checkpoint(path);
	check_against(expected, v, path);
	return v;
}

} // namespace flaxdrm::flax
