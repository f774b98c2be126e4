// libflaxdrm on a host without the flaxdrm device: discovery fails cleanly,
// argument checks, names.
#include <gtest/gtest.h>

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

#include "flaxdrm/flaxdrm.h"

TEST(LibFlaxdrm, OpenPathRefusesNonDrmFiles)
{
	int fd = -1;
	int ret = flaxdrm_open_path("/dev/null", &fd);
	EXPECT_EQ(ret, -ENODEV);
	EXPECT_EQ(flaxdrm_open_path("/nonexistent/node", &fd), -ENOENT);
	EXPECT_EQ(flaxdrm_open_path(nullptr, &fd), -EINVAL);
}

TEST(LibFlaxdrm, FindNodeReportsAbsenceOrAPath)
{
	char path[FLAXDRM_PATH_MAX] = {};
	int ret = flaxdrm_find_node(FLAXDRM_NODE_RENDER, path, sizeof(path));
	if (ret == 0)
		EXPECT_NE(std::string(path).find("/dev/dri/"), std::string::npos);
	else
		EXPECT_EQ(ret, -ENODEV);
	EXPECT_EQ(flaxdrm_find_node(7, path, sizeof(path)), -EINVAL);
}

TEST(LibFlaxdrm, IoctlsOnANonDrmFdFail)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	ASSERT_GE(fd, 0);
	uint64_t value;
	EXPECT_LT(flaxdrm_get_param(fd, FLAXDRM_PARAM_VERSION, &value), 0);
	uint32_t handle;
	EXPECT_LT(flaxdrm_bo_create(fd, 4096, &handle), 0);
	EXPECT_EQ(flaxdrm_get_param(fd, 0, nullptr), -EINVAL);
	// names longer than the fixed fields are refused before any ioctl
	std::string long_name(FLAXDRM_NAME_LEN, 'x');
	EXPECT_EQ(flaxdrm_module_create(fd, 0, FLAXDRM_KIND_DENSE, long_name.c_str(), nullptr, nullptr, 0, &handle,
					nullptr),
		  -EINVAL);
	EXPECT_EQ(flaxdrm_var_bind(fd, 1, "params", "kernel", 1, 0, FLAXDRM_DTYPE_F32, 7, nullptr), -EINVAL);
	uint32_t bad_op = 0, bad_tensor = 0;
	EXPECT_EQ(flaxdrm_program_create(fd, 1, nullptr, 0, nullptr, 0, nullptr, &bad_op, &bad_tensor), -EINVAL);
	EXPECT_EQ(bad_op, FLAXDRM_INDEX_NONE);
	EXPECT_EQ(bad_tensor, FLAXDRM_INDEX_NONE);
	close(fd);
}

TEST(LibFlaxdrm, Names)
{
	EXPECT_STREQ(flaxdrm_kind_name(FLAXDRM_KIND_DENSE), "Dense");
	EXPECT_STREQ(flaxdrm_kind_name(FLAXDRM_KIND_SEQUENTIAL), "Sequential");
	EXPECT_STREQ(flaxdrm_kind_name(999), "unknown");
	EXPECT_STREQ(flaxdrm_job_op_name(FLAXDRM_JOB_CALL), "call");
	EXPECT_STREQ(flaxdrm_job_op_name(0), "unknown");
}
