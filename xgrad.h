// xgrad's C++ API in one header: tensors, graphs and their ops, gradients,
// compiled Programs (CPU or CUDA), optimizers, checkpoints and ONNX files.
// It includes no xtensor, xsimd, ONNX or protobuf headers.
//
//   #include <xgrad/xgrad.h>      // installed; find_package(xgrad CONFIG REQUIRED), link xgrad::xgrad
#pragma once

#include "autodiff/grad.h"
#include "autodiff/gradcheck.h"
#include "autodiff/init.h"
#include "autodiff/nn.h"
#include "autodiff/optim.h"
#include "autodiff/program.h"
#include "core/device.h"
#include "core/graph.h"
#include "core/tensor.h"
#include "core/version.h"
#include "distributed/distributed.h"
#include "io/checkpoint.h"
#include "io/onnx.h"
#include "ops/conv.h"
#include "ops/linalg.h"
#include "ops/ops.h"
