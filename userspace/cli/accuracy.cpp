// flaxdrm accuracy --logits Y.npy --labels L.npy [--expect-correct N]
//
// Top-1 accuracy of classifier logits [N, classes] against integer labels
// [N]; with --expect-correct, fails (status 1) unless exactly N are right.
#include <cstdio>
#include <memory>
#include <string>

#include "command.hpp"
#include "flaxdrm/error.hpp"
#include "flaxdrm/npy.hpp"

using namespace flaxdrm;

namespace {

struct Options {
	std::string logits, labels;
	int64_t expect_correct = -1;
};

int cmd_accuracy(const Options& o)
{
	Tensor y = read_npy(o.logits);
	Tensor l = read_npy(o.labels);
	if (y.dtype != DType::F32 || y.shape.size() != 2 || y.shape[1] < 1)
		throw Error(o.logits + ": logits must be float32 (examples, classes), got " + shape_str(y.shape));
	if (l.dtype != DType::I32 || l.shape.size() != 1 || l.shape[0] != y.shape[0])
		throw Error(o.labels + ": labels must be integers of shape (" + std::to_string(y.shape[0]) +
			    ",), got " + (l.dtype == DType::I32 ? "int " : "float ") + shape_str(l.shape));
	const int64_t n = y.shape[0], k = y.shape[1];
	int64_t correct = 0;
	for (int64_t i = 0; i < n; i++) {
		int64_t best = 0;
		for (int64_t j = 1; j < k; j++)
			if (y.data[i * k + j] > y.data[i * k + best])
				best = j;
		const int32_t label = l.index(static_cast<std::size_t>(i));
		if (label < 0 || label >= k)
			throw Error(o.labels + ": label " + std::to_string(label) + " of example " + std::to_string(i) +
				    " is not a class index (0.." + std::to_string(k - 1) + ")");
		correct += best == label;
	}
	std::printf("accuracy: %.4f (%lld/%lld)\n", n ? double(correct) / double(n) : 0.0,
		    static_cast<long long>(correct), static_cast<long long>(n));
	if (o.expect_correct >= 0 && correct != o.expect_correct) {
		std::fflush(stdout);
		std::fprintf(stderr, "flaxdrm accuracy: error: %lld correct, expected %lld\n",
			     static_cast<long long>(correct), static_cast<long long>(o.expect_correct));
		return 1;
	}
	return 0;
}

cli::Registrar reg{"accuracy", "top-1 accuracy of logits (.npy) against integer labels (.npy)", 40,
		   [](CLI::App& sub) -> cli::Action {
			   auto o = std::make_shared<Options>();
			   sub.add_option("--logits", o->logits, "float32 logits [N, classes], e.g. flaxdrm run's output")
				   ->required();
			   sub.add_option("--labels", o->labels, "integer labels [N] ('<i4' or '<i8')")->required();
			   sub.add_option("--expect-correct", o->expect_correct,
					  "fail unless exactly this many examples are classified correctly");
			   return [o] { return cmd_accuracy(*o); };
		   }};

} // namespace
