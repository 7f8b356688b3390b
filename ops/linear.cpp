// linear(x, w, b, activation) = act(x @ w + b): a matrix product with its epilogue (bias, activation) fused. The
// compiler rewrites matmul -> add(bias) -> relu/tanh/sigmoid chains into it (autodiff/fusion.cpp), and users may
// call it directly. The kernel runs the GEMM in row panels of about 256 KB and applies the epilogue to each
// panel while it is still in cache, so the output is written once and read once instead of three times.
#include <algorithm>

#include "core/onnx_lowering.h"
#include "ops/elementwise.h"
#include "ops/gemm.h"
#include "ops/ops.h"

namespace xgrad {

namespace {

using G = std::vector<Var>;

enum Activation : std::int64_t { kNone = 0, kRelu = 1, kTanh = 2, kSigmoid = 3 };
const char* const kActivationNames[] = {"", "relu", "tanh", "sigmoid"};
const char* const kOnnxActivations[] = {"", "Relu", "Tanh", "Sigmoid"};

TensorType infer_linear(const std::vector<TensorType>& in, const Attrs&) {
  const TensorType &x = in[0], &w = in[1], &b = in[2];
  infer::require_floating(x);
  infer::require_same_dtype(x, w);
  infer::require_same_dtype(x, b);
  if (x.shape.size() != 2 || w.shape.size() != 2 || b.shape.size() != 1)
    throw ValueError("expects x (m, k), w (k, n) and b (n,), got shapes " + to_string(x.shape) + ", " +
                     to_string(w.shape) + " and " + to_string(b.shape));
  const auto known = [](std::int64_t a, std::int64_t c) { return a == c || a == kDynamic || c == kDynamic; };
  if (!known(x.shape[1], w.shape[0]) || !known(w.shape[1], b.shape[0]))
    throw ValueError("shapes do not chain: x " + to_string(x.shape) + " @ w " + to_string(w.shape) + " + b " +
                     to_string(b.shape));
  return {x.dtype, {x.shape[0], w.shape[1]}};
}

// c[r, :] = act(c[r, :] + bias) for `rows` rows of n.
template <class T, class Act>
void bias_and_activation(T* c, const T* bias, std::int64_t rows, std::int64_t n, const Act& act) {
  using B = kernels::Batch<T>;
  constexpr std::int64_t lanes = B::size;
  if (n == 1) {  // one column (a regression's X @ w + b): the rows are one contiguous run with one bias
    const B b(bias[0]);
    std::int64_t i = 0;
    for (; i + lanes <= rows; i += lanes) act(B::load_unaligned(c + i) + b).store_unaligned(c + i);
    for (; i < rows; ++i) c[i] = act(c[i] + bias[0]);
    return;
  }
  for (std::int64_t r = 0; r < rows; ++r) {
    T* row = c + r * n;
    std::int64_t j = 0;
    for (; j + lanes <= n; j += lanes) act(B::load_unaligned(row + j) + B::load_unaligned(bias + j)).store_unaligned(row + j);
    for (; j < n; ++j) row[j] = act(row[j] + bias[j]);
  }
}

template <class T>
void epilogue(T* c, const T* bias, std::int64_t rows, std::int64_t n, std::int64_t activation) {
  switch (activation) {
    case kRelu: return bias_and_activation(c, bias, rows, n, ew::ReluF{});
    case kTanh: return bias_and_activation(c, bias, rows, n, ew::TanhF{});
    case kSigmoid: return bias_and_activation(c, bias, rows, n, ew::SigmoidF{});
    default: return bias_and_activation(c, bias, rows, n, [](auto v) { return v; });
  }
}

void linear_kernel(const Tensor* const* in, Tensor& out, const Attrs& attrs) {
  const std::int64_t activation = attrs.get_int("activation");
  // BLAS reads x and w in place when their strides allow (transposed views included); else once packed.
  auto operand = [](const Tensor& t, Tensor& packed, blas::MatrixArg& arg) {
    if (!blas::as_blas_operand(t.raw_data(), t.shape()[0], t.shape()[1], t.strides()[0], t.strides()[1], arg)) {
      packed = t.contiguous();
      blas::as_blas_operand(packed.raw_data(), t.shape()[0], t.shape()[1], packed.strides()[0], packed.strides()[1], arg);
    }
  };
  Tensor x_packed, w_packed;
  blas::MatrixArg a{}, b{};
  operand(*in[0], x_packed, a);
  operand(*in[1], w_packed, b);
  const Tensor bias = in[2]->contiguous();  // a param: already contiguous, so no copy
  const std::int64_t m = out.shape()[0], n = out.shape()[1], k = in[0]->shape()[1];
  if (out.numel() == 0) return;
  kernels::dispatch_floating(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* c = static_cast<T*>(out.raw_data());
    const T* bp = static_cast<const T*>(bias.raw_data());
    if (k == 0) {  // an empty product: BLAS's gemv would leave c unwritten
      std::fill(c, c + m * n, T(0));
      return epilogue(c, bp, m, n, activation);
    }
    constexpr std::int64_t kPanelBytes = 256 << 10, kMinPanelRows = 64;
    const std::int64_t panel = std::max<std::int64_t>(kMinPanelRows, kPanelBytes / std::max<std::int64_t>(1, n * static_cast<std::int64_t>(sizeof(T))));
    for (std::int64_t r0 = 0; r0 < m; r0 += panel) {
      const std::int64_t rows = std::min(panel, m - r0);
      blas::MatrixArg a_rows = a;  // rows r0.. of x: ld rows apart, or (stored transposed) one element apart
      a_rows.data = static_cast<const T*>(a.data) + (a.transposed ? r0 : r0 * a.ld);
      if constexpr (std::is_same_v<T, float>) blas::gemm_f32(rows, n, k, a_rows, b, c + r0 * n);
      else blas::gemm_f64(rows, n, k, a_rows, b, c + r0 * n);
      epilogue(c + r0 * n, bp, rows, n, activation);
    }
  });
}

std::string linear_note(const std::vector<TensorType>&, const TensorType& out, const Attrs& attrs) {
  const std::int64_t act = std::clamp<std::int64_t>(attrs.get_int("activation"), kNone, kSigmoid);
  return blas::product_note(out.dtype, out.shape[0], out.shape[1]) + ", epilogue fused: + bias" +
         (act == kNone ? "" : std::string(", ") + kActivationNames[act]);
}

const OpDef& linear_op = register_op(
    OpDef("linear").arity(3).infer(infer_linear).kernel(linear_kernel).kernel_note(linear_note)
        .grad([](const GradCtx& c) {
          Var dz = c.dy;  // the gradient at x @ w + b, from the output
          switch (c.attrs.get_int("activation")) {
            case kRelu: dz = where(gt(c.output, 0.0), c.dy, 0.0); break;
            case kTanh: dz = c.dy * (1.0 - square(c.output)); break;
            case kSigmoid: dz = c.dy * c.output * (1.0 - c.output); break;
            default: break;
          }
          return G{matmul(dz, transpose(c.x(1))), matmul(transpose(c.x(0)), dz), sum(dz, {0})};
        })
        .onnx([](OnnxLowerCtx& c) {
          const std::string z = c.op("Add", {c.op("MatMul", {c.in(0), c.in(1)}), c.in(2)});
          const std::int64_t act = c.attrs().get_int("activation");
          return act == kNone ? z : c.op(kOnnxActivations[act], {z});
        }));

}  // namespace

Var linear(Var x, Var w, Var b, const std::string& activation) {
  for (std::int64_t code = kNone; code <= kSigmoid; ++code)
    if (activation == kActivationNames[code]) return x.graph().apply(linear_op, {x, w, b}, {{"activation", code}});
  throw ValueError("linear: unknown activation '" + activation + "' (expected '', 'relu', 'tanh' or 'sigmoid')");
}

}  // namespace xgrad
