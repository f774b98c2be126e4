// flaxdrm: the command-line tool. Each subcommand lives in its own file and
// registers itself (see command.hpp):
//
//   flaxdrm info                                   (info.cpp)
//   flaxdrm run --model M.json --params P ...      (run.cpp)
//   flaxdrm summary --model M.json [--params P]    (summary.cpp)
//   flaxdrm accuracy --logits Y.npy --labels L.npy (accuracy.cpp)
#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "command.hpp"

namespace flaxdrm::cli {

std::vector<Command>& commands()
{
	static std::vector<Command> all;
	return all;
}

} // namespace flaxdrm::cli

int main(int argc, char** argv)
{
	using namespace flaxdrm::cli;
	CLI::App app{"flaxdrm: Flax-style modules through the flaxdrm DRM device"};
	app.require_subcommand(1);

	auto& cmds = commands();
	std::stable_sort(cmds.begin(), cmds.end(), [](const Command& a, const Command& b) {
		return a.order != b.order ? a.order < b.order : a.name < b.name;
	});
	struct Parsed {
		CLI::App* sub;
		Action action;
		const Command* cmd;
	};
	std::vector<Parsed> subs;
	for (const auto& c : cmds) {
		auto* sub = app.add_subcommand(c.name, c.help);
		subs.push_back({sub, c.setup(*sub), &c});
	}

	try {
		app.parse(argc, argv);
	} catch (const CLI::ParseError& e) {
		return app.exit(e);
	}

	for (auto& s : subs) {
		if (!s.sub->parsed())
			continue;
		try {
			return s.action();
		} catch (const std::exception& e) {
			std::fflush(stdout);
			std::fprintf(stderr, "flaxdrm %s: error: %s\n", s.cmd->name.c_str(), e.what());
			return 1;
		}
	}
	return 1;
}
