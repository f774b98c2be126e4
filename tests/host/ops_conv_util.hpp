// Helpers shared by ops_conv_test.cpp, ops_dense_test.cpp and
// ops_f16_test.cpp (on top of op_test_util.hpp): programs built from
// drm_flaxdrm_tensor / drm_flaxdrm_op, a minimal .npy reader, tolerant
// comparison.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "flaxdrm/runtime.hpp"
#include "flaxdrm_rules.h"
#include "op_test_util.hpp"
#include "reference_conv.hpp"

namespace flaxdrm::optest {

namespace rt = flaxdrm::rt;

struct Program {
	std::vector<drm_flaxdrm_tensor> tensors;
	std::vector<drm_flaxdrm_op> ops;

	uint32_t tensor(uint32_t kind, const std::vector<uint32_t>& dims, uint32_t dtype = FLAXDRM_DTYPE_F32,
			uint32_t module = 0, const char* collection = "", const char* name = "")
	{
		tensors.push_back(tensor_desc(kind, dims, dtype, module, collection, name));
		return uint32_t(tensors.size() - 1);
	}
	uint32_t input(const std::vector<uint32_t>& dims, uint32_t dtype = FLAXDRM_DTYPE_F32)
	{
		return tensor(FLAXDRM_TENSOR_INPUT, dims, dtype);
	}
	uint32_t output(const std::vector<uint32_t>& dims) { return tensor(FLAXDRM_TENSOR_OUTPUT, dims); }
	uint32_t temp(const std::vector<uint32_t>& dims) { return tensor(FLAXDRM_TENSOR_TEMP, dims); }
	uint32_t variable(uint32_t module, const char* name, const std::vector<uint32_t>& dims)
	{
		return tensor(FLAXDRM_TENSOR_VARIABLE, dims, FLAXDRM_DTYPE_F32, module, "params", name);
	}
	drm_flaxdrm_op& op(uint32_t opcode, uint32_t module, const std::vector<uint32_t>& in,
			   const std::vector<uint32_t>& out, const std::vector<uint32_t>& attrs = {})
	{
		ops.push_back(op_desc(opcode, module, in, out, attrs));
		return ops.back();
	}
};

// A conv's parameters in one line: more = sh, sw, lh, lw, dh, dw, groups,
// circular, pt, pb, pl, pr (a 0 stride, dilation or group count: 1).
inline ref::ConvParams P(uint32_t N, uint32_t H, uint32_t W, uint32_t C, uint32_t KH, uint32_t KW, uint32_t F,
			 std::vector<uint32_t> more = {})
{
	ref::ConvParams c;
	c.N = N, c.H = H, c.W = W, c.C = C, c.KH = KH, c.KW = KW, c.F = F;
	more.resize(12, 0);
	if (more[0])
		c.sh = more[0], c.sw = more[1];
	if (more[2])
		c.lh = more[2], c.lw = more[3];
	if (more[4])
		c.dh = more[4], c.dw = more[5];
	if (more[6])
		c.groups = more[6];
	c.circular = more[7];
	c.pt = more[8], c.pb = more[9], c.pl = more[10], c.pr = more[11];
	return c;
}

inline std::vector<uint32_t> conv_attrs(const ref::ConvParams& c)
{
	return {c.sh, c.sw, c.lh, c.lw, c.dh, c.dw, c.groups, c.circular ? 1u : 0u, c.pt, c.pb, c.pl, c.pr};
}

// One conv op: x (tensor 0), kernel (1), optional bias (2) and y (last),
// all of one dtype.
inline Program conv_program(const ref::ConvParams& c, bool bias, uint32_t dtype)
{
	Program p;
	p.input({c.N, c.H, c.W, c.C}, dtype);
	p.tensor(FLAXDRM_TENSOR_VARIABLE, {c.KH, c.KW, c.C / c.groups, c.F}, dtype, 1, "params", "kernel");
	std::vector<uint32_t> in{0, 1};
	if (bias)
		in.push_back(p.tensor(FLAXDRM_TENSOR_VARIABLE, {c.F}, dtype, 1, "params", "bias"));
	const uint32_t ty = p.tensor(FLAXDRM_TENSOR_OUTPUT, {c.N, c.OH(), c.OW(), c.F}, dtype);
	p.op(FLAXDRM_OP_CONV, 1, in, {ty}, conv_attrs(c));
	return p;
}

inline std::vector<uint32_t> pool_attrs(const ref::PoolParams& q, bool max)
{
	return {q.wh, q.ww, q.sh, q.sw, q.pt, q.pb, q.pl, q.pr, max ? 0u : uint32_t(q.count_include_pad)};
}

// One avg_pool or max_pool op: x (tensor 0) and y (1) of one dtype.
inline Program pool_program(const ref::PoolParams& q, bool max, uint32_t dtype)
{
	Program p;
	const uint32_t tx = p.input({q.N, q.H, q.W, q.C}, dtype);
	const uint32_t ty = p.tensor(FLAXDRM_TENSOR_OUTPUT, {q.N, q.OH(), q.OW(), q.C}, dtype);
	p.op(max ? FLAXDRM_OP_MAX_POOL : FLAXDRM_OP_AVG_POOL, 0, {tx}, {ty}, pool_attrs(q, max));
	return p;
}

// A readable test name for a conv case.
inline std::string conv_name(const ref::ConvParams& c)
{
	std::ostringstream s;
	s << c.N << "x" << c.H << "x" << c.W << "x" << c.C << "_k" << c.KH << "x" << c.KW << "_f" << c.F << "_s"
	  << c.sh << "x" << c.sw << "_l" << c.lh << "x" << c.lw << "_d" << c.dh << "x" << c.dw << "_g" << c.groups
	  << (c.circular ? "_circ" : "") << "_p" << c.pt << c.pb << c.pl << c.pr;
	return s.str();
}

// Runs a program on zeroed host memory of its tensors' sizes; the
// rt::Error's message, or "" if it ran (for the refusal tests).
inline std::string run_error(rt::Executor& ex, const Program& p)
{
	Bindings b(p);
	std::vector<std::vector<uint32_t>> storage(p.tensors.size());
	for (uint32_t i = 0; i < p.tensors.size(); i++) {
		storage[i].assign(flaxdrm_tensor_bytes(&p.tensors[i]) / 4 + 1, 0);
		b.host(i, storage[i]);
	}
	try {
		ex.run(p.tensors, p.ops, b.mem);
	} catch (const rt::Error& e) {
		return e.what();
	}
	return "";
}

// Float32 C-order .npy files only; throws on anything else.
inline std::vector<float> read_npy(const std::string& path, std::vector<uint32_t>* shape = nullptr)
{
	std::ifstream f(path, std::ios::binary);
	if (!f)
		throw std::runtime_error("cannot open " + path);
	char magic[8];
	f.read(magic, 8);
	if (std::memcmp(magic, "\x93NUMPY", 6) != 0)
		throw std::runtime_error(path + ": not an .npy file");
	uint32_t hlen = 0;
	if (magic[6] == 1) {
		unsigned char b[2];
		f.read(reinterpret_cast<char*>(b), 2);
		hlen = b[0] | (b[1] << 8);
	} else {
		unsigned char b[4];
		f.read(reinterpret_cast<char*>(b), 4);
		hlen = b[0] | (b[1] << 8) | (b[2] << 16) | (uint32_t(b[3]) << 24);
	}
	std::string header(hlen, '\0');
	f.read(header.data(), hlen);
	if (header.find("'<f4'") == std::string::npos || header.find("'fortran_order': False") == std::string::npos)
		throw std::runtime_error(path + ": expected little-endian float32 in C order: " + header);
	const auto lp = header.find('('), rp = header.find(')');
	std::vector<uint32_t> dims;
	std::size_t count = 1;
	std::stringstream ss(header.substr(lp + 1, rp - lp - 1));
	std::string item;
	while (std::getline(ss, item, ','))
		if (item.find_first_not_of(' ') != std::string::npos) {
			dims.push_back(uint32_t(std::stoul(item)));
			count *= dims.back();
		}
	std::vector<float> v(count);
	f.read(reinterpret_cast<char*>(v.data()), std::streamsize(count * 4));
	if (!f)
		throw std::runtime_error(path + ": truncated");
	if (shape)
		*shape = dims;
	return v;
}

// nmse over the finite reference values; NaN and infinities of the
// reference must be matched exactly (counted in `special_mismatch`).
struct Check {
	double nmse = 0;
	std::size_t special_mismatch = 0;
	std::size_t first_bad = SIZE_MAX;
};

inline Check check(const std::vector<float>& got, const std::vector<float>& want)
{
	Check c;
	double err2 = 0, ref2 = 0;
	if (got.size() != want.size()) {
		c.nmse = INFINITY;
		return c;
	}
	for (std::size_t i = 0; i < want.size(); i++) {
		if (!std::isfinite(want[i]) || !std::isfinite(got[i])) {
			const bool ok = std::isnan(want[i]) ? std::isnan(got[i]) : got[i] == want[i];
			if (!ok && c.special_mismatch++ == 0)
				c.first_bad = i;
			continue;
		}
		const double e = double(got[i]) - double(want[i]);
		err2 += e * e;
		ref2 += double(want[i]) * double(want[i]);
	}
	c.nmse = ref2 > 0 ? err2 / ref2 : err2;
	return c;
}

#define EXPECT_MATCHES(got, want, tol)                                                                  \
	do {                                                                                            \
		const auto c_ = ::flaxdrm::optest::check(got, want);                                    \
		EXPECT_LE(c_.nmse, tol);                                                                \
		EXPECT_EQ(c_.special_mismatch, 0u)                                                      \
			<< "first at " << c_.first_bad << ": got " << (got)[c_.first_bad] << " want "   \
			<< (want)[c_.first_bad];                                                        \
	} while (0)

} // namespace flaxdrm::optest
