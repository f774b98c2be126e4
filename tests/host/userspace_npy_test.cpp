// .npy reading and writing: round trips, files numpy writes, refusals.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "flaxdrm/error.hpp"
#include "flaxdrm/npy.hpp"
#include "userspace_test_util.hpp"

using namespace flaxdrm;
using namespace flaxdrm::testing;
using ::testing::HasSubstr;

namespace {

Tensor iota(Shape shape)
{
	Tensor t(std::move(shape));
	for (std::size_t i = 0; i < t.data.size(); i++)
		t.data[i] = static_cast<float>(i) * 0.25f - 3.0f;
	return t;
}

} // namespace

TEST(Npy, RoundTripShapes)
{
	TempDir dir;
	for (const Shape& shape : {Shape{2, 3}, Shape{5}, Shape{}, Shape{1, 2, 3, 4}, Shape{0, 4}}) {
		Tensor t = iota(shape);
		write_npy(dir.file("t.npy"), t);
		Tensor back = read_npy(dir.file("t.npy"));
		EXPECT_EQ(back.shape, shape) << shape_str(shape);
		EXPECT_EQ(back.data, t.data) << shape_str(shape);
	}
}

TEST(Npy, HeaderIsAlignedAndNewlineTerminated)
{
	auto bytes = format_npy(iota({3, 7}));
	std::size_t header_len = bytes[8] | (bytes[9] << 8);
	EXPECT_EQ((10 + header_len) % 64, 0u);
	EXPECT_EQ(bytes[10 + header_len - 1], '\n');
	EXPECT_EQ(bytes.size(), 10 + header_len + 21 * 4);
}

TEST(Npy, ShapeStr)
{
	EXPECT_EQ(shape_str(Shape{64, 10}), "(64, 10)");
	EXPECT_EQ(shape_str(Shape{10}), "(10,)");
	EXPECT_EQ(shape_str(Shape{}), "()");
}

TEST(Npy, ReadsWhatNumpyWrites)
{
	REQUIRE_PYTHON();
	TempDir dir;
	run_python("import numpy as np, sys\n"
		   "a = (np.arange(24, dtype=np.float32) * 0.5 - 2).reshape(2, 3, 4)\n"
		   "np.save(sys.argv[1], a)\n"
		   "with open(sys.argv[2], 'wb') as f:\n"
		   "    np.lib.format.write_array(f, a, version=(2, 0))\n"
		   "np.save(sys.argv[3], np.float32(7.5))\n"
		   "np.save(sys.argv[4], np.asfortranarray(a[0]).T.copy(order='C'))\n",
		   quote(dir.file("v1.npy")) + " " + quote(dir.file("v2.npy")) + " " + quote(dir.file("s.npy")) + " " +
			   quote(dir.file("t.npy")));
	for (const char* name : {"v1.npy", "v2.npy"}) {
		Tensor t = read_npy(dir.file(name));
		EXPECT_EQ(t.shape, (Shape{2, 3, 4})) << name;
		ASSERT_EQ(t.data.size(), 24u);
		for (int i = 0; i < 24; i++)
			EXPECT_EQ(t.data[i], i * 0.5f - 2) << name;
	}
	Tensor s = read_npy(dir.file("s.npy"));
	EXPECT_TRUE(s.shape.empty());
	EXPECT_EQ(s.data, std::vector<float>{7.5f});
	Tensor tr = read_npy(dir.file("t.npy"));
	EXPECT_EQ(tr.shape, (Shape{4, 3}));
	EXPECT_EQ(tr.data[1], 4 * 0.5f - 2); // a[0].T[0, 1] = a[0][1][0]
}

TEST(Npy, NumpyReadsWhatWeWrite)
{
	REQUIRE_PYTHON();
	TempDir dir;
	write_npy(dir.file("w.npy"), iota({3, 5}));
	std::string out = run_python("import numpy as np, sys\n"
				     "a = np.load(sys.argv[1])\n"
				     "ref = (np.arange(15, dtype=np.float32) * 0.25 - 3).reshape(3, 5)\n"
				     "print(a.dtype, a.shape, bool((a == ref).all()))\n",
				     quote(dir.file("w.npy")));
	EXPECT_EQ(out, "float32 (3, 5) True\n");
}

TEST(Npy, RefusesOtherDtypesAndLayouts)
{
	REQUIRE_PYTHON();
	TempDir dir;
	run_python("import numpy as np, sys\n"
		   "d = sys.argv[1]\n"
		   "np.save(d + '/f8.npy', np.zeros((2, 2)))\n"
		   "np.save(d + '/u2.npy', np.zeros((2, 2), dtype=np.uint16))\n"
		   "np.save(d + '/i4.npy', np.array([[1, -2], [3, 2**31 - 1]], dtype=np.int32))\n"
		   "np.save(d + '/i8.npy', np.array([5, -7], dtype=np.int64))\n"
		   "np.save(d + '/i8big.npy', np.array([2**40], dtype=np.int64))\n"
		   "np.save(d + '/be.npy', np.zeros((2, 2), dtype='>f4'))\n"
		   "np.save(d + '/fo.npy', np.asfortranarray(np.zeros((2, 3), dtype=np.float32)))\n",
		   quote(dir.path()));
	EXPECT_THAT(error_of([&] { read_npy(dir.file("f8.npy")); }),
		    ::testing::AllOf(HasSubstr("f8.npy"), HasSubstr("'<f8'"), HasSubstr("float32")));
	EXPECT_THAT(error_of([&] { read_npy(dir.file("u2.npy")); }), HasSubstr("'<u2'"));
	EXPECT_THAT(error_of([&] { read_npy(dir.file("i8big.npy")); }), HasSubstr("does not fit int32"));
	// integers (Embed indices, labels) are read as int32
	Tensor i4 = read_npy(dir.file("i4.npy"));
	EXPECT_EQ(i4.dtype, DType::I32);
	EXPECT_EQ(i4.shape, (Shape{2, 2}));
	EXPECT_EQ(i4.index(1), -2);
	EXPECT_EQ(i4.index(3), 2147483647);
	Tensor i8 = read_npy(dir.file("i8.npy"));
	EXPECT_EQ(i8.dtype, DType::I32);
	EXPECT_EQ(i8.index(0), 5);
	EXPECT_EQ(i8.index(1), -7);
	write_npy(dir.file("i4back.npy"), i4);
	Tensor back = read_npy(dir.file("i4back.npy"));
	EXPECT_EQ(back.dtype, DType::I32);
	EXPECT_EQ(back.data.size(), 4u);
	EXPECT_EQ(back.index(3), 2147483647);
	EXPECT_THAT(error_of([&] { read_npy(dir.file("be.npy")); }), HasSubstr("'>f4'"));
	EXPECT_THAT(error_of([&] { read_npy(dir.file("fo.npy")); }), HasSubstr("Fortran-order"));
}

TEST(Npy, RefusesMalformedFiles)
{
	TempDir dir;
	write_text(dir.file("text.npy"), "hello, world");
	EXPECT_THAT(error_of([&] { read_npy(dir.file("text.npy")); }), HasSubstr("not a .npy file"));
	EXPECT_THAT(error_of([&] { read_npy(dir.file("missing.npy")); }),
		    ::testing::AllOf(HasSubstr("missing.npy"), HasSubstr("No such file")));

	auto bytes = format_npy(iota({4, 4}));
	bytes.resize(bytes.size() - 3);
	EXPECT_THAT(error_of([&] { parse_npy(bytes, "cut.npy"); }),
		    ::testing::AllOf(HasSubstr("cut.npy"), HasSubstr("needs 64 bytes"), HasSubstr("has 61")));

	auto v9 = format_npy(iota({2}));
	v9[6] = 9;
	EXPECT_THAT(error_of([&] { parse_npy(v9, "v9.npy"); }), HasSubstr("version 9.0"));

	auto garbled = format_npy(iota({2}));
	garbled[10] = '#';
	EXPECT_THAT(error_of([&] { parse_npy(garbled, "g.npy"); }), HasSubstr("malformed .npy header"));
}
