// Checking variables against the paths and shapes a model expects; one
// comparison for both check_variables (model JSON) and flax::check_against.
#include <algorithm>

#include "flaxdrm/error.hpp"
#include "flaxdrm/variables.hpp"

namespace flaxdrm {

void check_variable_shapes(const std::map<std::string, Shape>& expected, const Variables& found,
			   const std::string& mismatch)
{
	std::vector<std::string> problems;
	// both maps are sorted by path: walk them together
	auto e = expected.begin();
	auto f = found.begin();
	while (e != expected.end() || f != found.end()) {
		if (f == found.end() || (e != expected.end() && e->first < f->first)) {
			problems.push_back(e->first + ": missing, expected shape " + shape_str(e->second));
			++e;
		} else if (e == expected.end() || f->first < e->first) {
			problems.push_back(f->first + ": unexpected (shape " + shape_str(f->second.value.shape) +
					   "): the model has no such variable");
			++f;
		} else {
			if (f->second.value.shape != e->second)
				problems.push_back(e->first + ": shape " + shape_str(f->second.value.shape) +
						   ", expected " + shape_str(e->second));
			++e;
			++f;
		}
	}
	if (problems.empty())
		return;
	auto in_params = [](const auto& entry) { return entry.first.rfind("params/", 0) == 0; };
	std::string msg = mismatch + " (" + std::to_string(problems.size()) + " problem" +
			  (problems.size() == 1 ? "" : "s") + "):";
	// the usual cause of every path being wrong: a checkpoint of the params
	// alone, without the {"params": ...} level
	if (std::ranges::any_of(expected, in_params) && std::ranges::none_of(found, in_params))
		msg += "\n  the \"params\" collection is empty";
	for (const auto& p : problems)
		msg += "\n  " + p;
	throw Error(msg);
}

} // namespace flaxdrm
