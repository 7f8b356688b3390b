// Builder functions: the public way to apply ops. Each one lives in the
// same file as its op's definition (ops/<family>.cpp).
#pragma once
#include <optional>
#include <vector>

#include "core/graph.h"

namespace xgrad {

using Axes = std::vector<std::int64_t>;

// Elementwise binary, numpy broadcasting (ops/binary.cpp).
Var add(Var a, Var b);
Var sub(Var a, Var b);
Var mul(Var a, Var b);
Var div(Var a, Var b);

// Elementwise unary (ops/unary.cpp).
Var neg(Var x);
Var exp(Var x);
Var log(Var x);
Var tanh(Var x);
Var sigmoid(Var x);
Var relu(Var x);
Var square(Var x);
Var sqrt(Var x);
Var pow(Var x, double exponent);
Var step(Var x);        // 1 where x > 0 else 0; relu's derivative
Var zeros_like(Var x);  // zeros of x's (run-time) shape

// Reductions (ops/reduce.cpp). Empty axes: all axes.
Var sum(Var x, const Axes& axes = {}, bool keepdims = false);
Var mean(Var x, const Axes& axes = {}, bool keepdims = false);
// Sums x down to the shape of `like` (undoes broadcasting); a no-op alias when equal.
Var sum_to_like(Var x, Var like);

// Linear algebra (ops/matmul.cpp).
Var matmul(Var a, Var b);

// Shape ops, zero-copy where the layout allows (ops/shape.cpp).
Var reshape(Var x, const Shape& shape);  // one -1 allowed
Var reshape_like(Var x, Var like);
Var transpose(Var x, const Axes& perm = {});  // empty: reverse the axes
Var unsqueeze(Var x, const Axes& axes);       // axes in the output
Var squeeze(Var x, const Axes& axes = {});
Var broadcast_to(Var x, const Shape& shape);
Var broadcast_like(Var x, Var like);

// Operators: nodes mixed with nodes or with scalars (scalars take the node's dtype).
Var operator+(Var a, Var b);
Var operator-(Var a, Var b);
Var operator*(Var a, Var b);
Var operator/(Var a, Var b);
Var operator-(Var a);
Var operator+(Var a, double b);
Var operator-(Var a, double b);
Var operator*(Var a, double b);
Var operator/(Var a, double b);
Var operator+(double a, Var b);
Var operator-(double a, Var b);
Var operator*(double a, Var b);
Var operator/(double a, Var b);

}  // namespace xgrad
