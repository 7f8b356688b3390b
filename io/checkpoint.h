// Checkpoints of a graph's params, in the .npz format that Python's xg.save /
// xg.load and np.load use: a model trained in Python loads into a C++ service
// and back.
#pragma once
#include <string>
#include <vector>

#include "core/graph.h"

namespace xgrad::io {

// Every param of g (weights, running statistics, optimizer state) by name.
void save_params(const Graph& g, const std::string& path);

// Copies saved values into g's params, matched by name. Every name, shape and
// dtype is checked before anything is written: a mismatch, a param the file
// lacks or (when strict) an entry g lacks is a ValueError naming the param.
// Returns the names loaded.
std::vector<std::string> load_params(Graph& g, const std::string& path, bool strict = true);

}  // namespace xgrad::io
