// The flaxdrm command-line tool: run --device local end to end, errors,
// info without a device.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "flaxdrm/npy.hpp"
#include "userspace_test_util.hpp"

using namespace flaxdrm;
using namespace flaxdrm::testing;
using ::testing::HasSubstr;

namespace {

std::string cli()
{
	return quote(build_binary("flaxdrm"));
}

std::string example(const std::string& f)
{
	return quote(source_dir() + "/examples/mlp/" + f);
}

} // namespace

TEST(Cli, BinaryIsBuilt)
{
	ASSERT_TRUE(std::filesystem::exists(build_binary("flaxdrm"))) << build_binary("flaxdrm");
}

TEST(Cli, RunLocalWritesTheOutputAndTimings)
{
	REQUIRE_PYTHON();
	TempDir dir;
	auto r = run_command(cli() + " run --device local --model " + example("model.json") + " --params " +
			     example("params.msgpack") + " --input " + example("input.npy") + " --output " +
			     quote(dir.file("y.npy")) + " --timings");
	ASSERT_EQ(r.status, 0) << r.output;
	EXPECT_THAT(r.output, HasSubstr("device: local ("));
	EXPECT_THAT(r.output, HasSubstr("setup"));
	EXPECT_THAT(r.output, HasSubstr("call"));
	EXPECT_THAT(r.output, HasSubstr(" ms"));
	auto cmp = run_tool("mlp_reference.py", "--model " + example("model.json") + " --params " +
							example("params.msgpack") + " --input " + example("input.npy") +
							" --compare " + quote(dir.file("y.npy")));
	EXPECT_EQ(cmp.status, 0) << cmp.output;
}

TEST(Cli, ErrorsSayWhatAndWhere)
{
	TempDir dir;
	auto r = run_command(cli() + " run --device local --model " + example("model.json") + " --params " +
			     example("params_sequential.msgpack") + " --input " + example("input.npy") +
			     " --output " + quote(dir.file("y.npy")));
	EXPECT_EQ(r.status, 1);
	EXPECT_THAT(r.output, HasSubstr("flaxdrm run: error: "));
	EXPECT_THAT(r.output, HasSubstr("params_sequential.msgpack does not match the model"));
	EXPECT_THAT(r.output, HasSubstr("params/Dense_1/kernel: missing"));
	EXPECT_FALSE(std::filesystem::exists(dir.file("y.npy")));

	r = run_command(cli() + " run --device local --model " + quote(dir.file("nope.json")) + " --params x --input y --output z");
	EXPECT_EQ(r.status, 1);
	EXPECT_THAT(r.output, HasSubstr("cannot open model file"));

	r = run_command(cli() + " run --device gpu --model a --params b --input c --output d");
	EXPECT_NE(r.status, 0);
	EXPECT_THAT(r.output, HasSubstr("--device"));

	r = run_command(cli() + " run --model a");
	EXPECT_NE(r.status, 0);
	EXPECT_THAT(r.output, HasSubstr("--params is required"));
}

TEST(Cli, DrmWithoutTheDeviceFailsClearly)
{
	if (run_command("ls /dev/dri 2>/dev/null").output.find("render") != std::string::npos &&
	    run_command(cli() + " info").status == 0)
		GTEST_SKIP() << "a flaxdrm device is present";
	TempDir dir;
	auto r = run_command(cli() + " run --model " + example("model.json") + " --params " + example("params.msgpack") +
			     " --input " + example("input.npy") + " --output " + quote(dir.file("y.npy")));
	EXPECT_EQ(r.status, 1);
	EXPECT_THAT(r.output, HasSubstr("no flaxdrm device"));

	r = run_command(cli() + " info");
	EXPECT_EQ(r.status, 1);
	EXPECT_THAT(r.output, HasSubstr("device:       none"));
	EXPECT_THAT(r.output, HasSubstr("vulkan:"));
}
