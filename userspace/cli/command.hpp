// flaxdrm CLI subcommands register themselves here, one file per subcommand
// (info.cpp, run.cpp, summary.cpp, ...), so that adding one touches no
// other file: cli/*.cpp are globbed by CMake.
//
//   static flaxdrm::cli::Registrar reg{"info", "show the device", 10,
//       [](CLI::App& sub) -> flaxdrm::cli::Action {
//           auto opts = std::make_shared<Opts>();
//           sub.add_option("--node", opts->node, "...");
//           return [opts] { return run_info(*opts); };
//       }};
//
// The action's return value is the process exit status; a thrown
// std::exception is printed as "flaxdrm NAME: error: WHAT" with status 1.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace flaxdrm::cli {

using Action = std::function<int()>;
using Setup = std::function<Action(CLI::App& subcommand)>;

struct Command {
	std::string name;
	std::string help;
	int order; // position in --help (smaller first)
	Setup setup;
};

std::vector<Command>& commands();

struct Registrar {
	Registrar(std::string name, std::string help, int order, Setup setup)
	{
		commands().push_back({std::move(name), std::move(help), order, std::move(setup)});
	}
};

} // namespace flaxdrm::cli
