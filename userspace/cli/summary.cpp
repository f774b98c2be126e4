// flaxdrm summary --model M.json (--input X.npy | --input-shape 1,8,8,1) [--params P]
//
// The module tree as Flax names it, with each layer's output shape, its
// variables (collection/name and shape) and parameter counts; with --params,
// the checkpoint is checked against the model too.
#include <cstdio>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "command.hpp"
#include "flaxdrm/error.hpp"
#include "flaxdrm/lowering.hpp"
#include "flaxdrm/model.hpp"
#include "flaxdrm/npy.hpp"
#include "flaxdrm/variables.hpp"

using namespace flaxdrm;

namespace {

struct Options {
	std::string model, params, input, input_shape;
};

std::string with_commas(int64_t v)
{
	std::string s = std::to_string(v), out;
	for (std::size_t i = 0; i < s.size(); i++) {
		if (i && (s.size() - i) % 3 == 0)
			out += ',';
		out += s[i];
	}
	return out;
}

std::string human_bytes(int64_t b)
{
	char buf[32];
	if (b < 1024)
		std::snprintf(buf, sizeof(buf), "%lld B", static_cast<long long>(b));
	else if (b < 1024 * 1024)
		std::snprintf(buf, sizeof(buf), "%.1f KiB", b / 1024.0);
	else
		std::snprintf(buf, sizeof(buf), "%.1f MiB", b / (1024.0 * 1024.0));
	return buf;
}

int cmd_summary(const Options& o)
{
	Model model = read_model_json(o.model);
	Shape in;
	if (!o.input.empty()) {
		in = read_npy(o.input).shape;
	} else if (!o.input_shape.empty()) {
		std::stringstream ss(o.input_shape);
		std::string d;
		while (std::getline(ss, d, ','))
			in.push_back(std::stoll(d));
	} else {
		throw Error("give --input X.npy or --input-shape (e.g. 1,8,8,1)");
	}
	Program p = lower_shapes(model, in);

	std::map<const Module*, std::vector<const LoweredVariable*>> vars;
	for (const auto& v : p.variables)
		for (const auto& l : p.layers)
			if (l.module->index == v.module_index && !l.module->is_function())
				vars[l.module].push_back(&v);
	std::map<std::string, int64_t> totals; // per collection

	std::printf("%s: %s, input %s -> output %s\n", o.model.c_str(), model.root.class_name.c_str(),
		    shape_str(in).c_str(), shape_str(p.output_shape).c_str());
	std::printf("%-30s %-14s %-18s %s\n", "module", "class", "output", "variables");
	for (const auto& l : p.layers) {
		const Module& m = *l.module;
		std::string label = std::string(2 * l.depth, ' ') +
				    (m.path.empty() && !m.is_function() ? "/" : m.is_function() ? "(" + m.class_name + ")"
												 : m.name);
		std::string vs;
		int64_t count = 0;
		auto it = vars.find(&m);
		if (it != vars.end()) {
			for (const auto* v : it->second) {
				std::string coll = v->path.substr(0, v->path.find('/'));
				std::string leaf = v->path.substr(v->path.rfind('/') + 1);
				vs += (vs.empty() ? "" : ", ") + (coll == "params" ? leaf : coll + "/" + leaf) + " " +
				      shape_str(v->shape);
				int64_t n = static_cast<int64_t>(num_elements(v->shape));
				count += n;
				totals[coll] += n;
			}
			vs += "  [" + with_commas(count) + "]";
		}
		std::printf("%-30s %-14s %-18s %s\n", label.c_str(), m.is_function() ? "" : m.class_name.c_str(),
			    shape_str(l.output).c_str(), vs.c_str());
	}
	int64_t all = 0;
	std::string line;
	for (const auto& [coll, n] : totals) {
		line += (line.empty() ? "" : ", ") + coll + " " + with_commas(n);
		all += n;
	}
	std::printf("total: %s%s(%s as float32); %zu ops\n", line.c_str(), line.empty() ? "no variables " : " ",
		    human_bytes(all * 4).c_str(), p.ops.size());
	if (!o.params.empty()) {
		Variables variables = read_variables(o.params);
		check_variables(model, variables, in, o.params);
		std::printf("%s: every variable present with the expected shape\n", o.params.c_str());
	}
	return 0;
}

cli::Registrar reg{"summary", "the model's module tree with output shapes, variables and parameter counts", 30,
		   [](CLI::App& sub) -> cli::Action {
			   auto o = std::make_shared<Options>();
			   sub.add_option("--model", o->model, "model JSON")->required();
			   sub.add_option("--input", o->input, "an input .npy (only its shape is used)");
			   sub.add_option("--input-shape", o->input_shape, "input shape, comma-separated (e.g. 1,8,8,1)");
			   sub.add_option("--params", o->params, "also check this checkpoint against the model");
			   return [o] { return cmd_summary(*o); };
		   }};

} // namespace
