// libFuzzer target: one small fixed graph (a linear layer, a gather, a reduction, with gradients and an SGD
// update) run on feeds whose names, dtypes, shapes and values come from the fuzzer. Every run either works
// or throws ValueError / TypeError, and a failed run leaves the params exactly as they were; a run that
// works gives the same outputs when repeated (the cached plan of that shape signature).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "autodiff/grad.h"
#include "autodiff/program.h"
#include "core/error.h"
#include "ops/ops.h"

namespace {

using namespace xgrad;

struct Model {
  Graph g;
  Var w, b;
  Program step;
  Model() : w(g.param("w", ones(Shape{3, 4}))), b(g.param("b", ones(Shape{4}))), step(build()) {}
  static Tensor ones(const Shape& s) {
    Tensor t = Tensor::empty(DType::float32, s);
    for (std::int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = 0.25f * static_cast<float>(i % 7) - 0.5f;
    return t;
  }
  Program build() {
    const Var x = g.input("x", Shape{kDynamic, 3});
    const Var idx = g.input("idx", Shape{kDynamic}, DType::int64);
    const Var h = relu(add(matmul(x, w), b));
    const Var loss = sum(take(h, idx, 0));
    const std::vector<Var> dw = grad(loss, {w, b});
    Tensor rate = Tensor::empty(DType::float32, Shape{});
    rate.data<float>()[0] = 0.01f;
    const Var lr = g.constant(rate);
    return compile({loss, h}, {{w, sub(w, mul(dw[0], lr))}, {b, sub(b, mul(dw[1], lr))}});
  }
};

// Reads the fuzzer's bytes front to back; zeros once they run out.
struct Bytes {
  const std::uint8_t* p;
  std::size_t n;
  std::uint8_t next() {
    if (!n) return 0;
    --n;
    return *p++;
  }
};

Tensor make_feed(Bytes& in) {
  static const DType dtypes[] = {DType::float32, DType::float64, DType::int64, DType::bool_};
  const DType dtype = dtypes[in.next() % 4];
  Shape shape(in.next() % 4);
  for (auto& d : shape) d = in.next() % 9;  // 0..8: empty axes included
  Tensor t = Tensor::empty(dtype, shape);
  auto* raw = static_cast<std::uint8_t*>(t.raw_data());
  const std::size_t bytes = static_cast<std::size_t>(t.numel()) * itemsize(dtype);
  for (std::size_t i = 0; i < bytes; ++i) raw[i] = in.next();
  if (dtype == DType::bool_)
    for (std::size_t i = 0; i < bytes; ++i) raw[i] &= 1;  // a bool is 0 or 1
  return t;
}

std::vector<float> values(const Tensor& t) {
  const Tensor c = t.contiguous();
  return std::vector<float>(c.data<float>(), c.data<float>() + c.numel());
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Model* model = new Model;  // one graph and Program for the whole run: its plan cache is fuzzed too
  Bytes in{data, size};
  Program::Feeds feeds;
  const int count = in.next() % 4;
  static const char* names[] = {"x", "idx", "y", ""};
  for (int k = 0; k < count; ++k) {
    const std::uint8_t which = in.next();
    feeds.emplace_back(names[which % 4], make_feed(in));
  }
  const std::vector<float> w0 = values(model->w->value()), b0 = values(model->b->value());
  std::vector<Tensor> out;
  try {
    out = model->step.run(feeds);
  } catch (const ValueError&) {
  } catch (const TypeError&) {
  }
  if (out.empty()) {  // refused: the params are untouched
    if (!same_bits(values(model->w->value()), w0) || !same_bits(values(model->b->value()), b0)) std::abort();
    return 0;
  }
  // It ran: the params moved. Put them back and run again: the same outputs, bit for bit.
  const std::vector<float> h = values(out[1]);
  model->w->set_value(model->ones(Shape{3, 4}));
  model->b->set_value(model->ones(Shape{4}));
  if (!same_bits(w0, values(model->w->value())) || !same_bits(b0, values(model->b->value())))
    return 0;  // an earlier input had moved them from the start values: this run began elsewhere
  const std::vector<Tensor> again = model->step.run(feeds);
  if (!same_bits(values(again[1]), h)) std::abort();
  return 0;
}
