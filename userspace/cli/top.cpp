// flaxdrm top [--once] [--plain] [--interval MS]: flaxdrm clients from the
// DRM usage stats in /proc/*/fdinfo (like nvtop/gputop). Busy % is the
// engine time a client got over the interval; jobs/s needs a flaxdrm-jobs*
// fdinfo key, which the kernel does not print yet ("-"). Other users'
// processes are visible only with privilege (ptrace access to read fdinfo).
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <thread>

#include "command.hpp"
#include "tools/fdinfo.hpp"

using namespace flaxdrm;

namespace {

struct TopOptions {
	bool once = false, plain = false;
	int interval_ms = 1000;
	std::string proc = "/proc";
};

volatile std::sig_atomic_t stop = 0;

uint64_t now_ns()
{
	return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
					     std::chrono::steady_clock::now().time_since_epoch())
					     .count());
}

int cmd_top(const TopOptions& o)
{
	std::signal(SIGINT, [](int) { stop = 1; });
	std::signal(SIGTERM, [](int) { stop = 1; });
	auto before = top::scan(o.proc);
	uint64_t t_before = now_ns();
	while (!stop) {
		std::this_thread::sleep_for(std::chrono::milliseconds(o.interval_ms));
		auto after = top::scan(o.proc);
		uint64_t t_after = now_ns();
		auto rows = top::compare(before, after, t_after - t_before);
		if (o.plain) {
			std::fputs(top::format_plain(rows).c_str(), stdout);
		} else {
			if (!o.once)
				std::fputs("\033[H\033[2J", stdout);
			std::fputs(top::format_table(rows, t_after - t_before).c_str(), stdout);
		}
		std::fflush(stdout);
		if (o.once)
			break;
		if (o.plain)
			std::fputs("\n", stdout); // snapshots separated by an empty line
		before = std::move(after);
		t_before = t_after;
	}
	return 0;
}

cli::Registrar reg{"top", "show flaxdrm clients: engine busy %, jobs/s, memory (from fdinfo)", 40,
		   [](CLI::App& sub) -> cli::Action {
			   auto o = std::make_shared<TopOptions>();
			   sub.add_flag("--once", o->once, "print one snapshot (over one interval) and exit");
			   sub.add_flag("--plain", o->plain, "one line per client, key=value (for scripts)");
			   sub.add_option("--interval", o->interval_ms, "sampling interval in ms (default 1000)")
				   ->check(CLI::Range(10, 3600000));
			   sub.add_option("--proc", o->proc, "proc root (tests)")->group("");
			   return [o] { return cmd_top(*o); };
		   }};

} // namespace
