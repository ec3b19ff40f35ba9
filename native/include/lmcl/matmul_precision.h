// The float32 matrix-product precision the CUDA GEMM uses, process-wide (PyTorch's
// torch.set_float32_matmul_precision): 'highest' (the default) multiplies in FP32 on the CUDA
// cores; 'high' lets the GEMM use TF32 tensor cores (inputs rounded to 10 mantissa bits, products
// summed in FP32) on cards that have them (compute capability >= 8.0; older cards stay FP32).
// The CPU kernels always compute in FP32 and ignore it, and so do the CUDA convolution and fused
// contrastive kernels. 'medium' (BF16) is not implemented. (The Node loader applies
// LMCL_MATMUL_PRECISION through set_matmul_precision.)
#pragma once

#include <string>

#include "lmcl/status.h"

namespace lmcl {

enum class MatmulPrecision : int { kHighest = 0, kHigh = 1 };

MatmulPrecision matmul_precision();
void set_matmul_precision(MatmulPrecision precision);
// "highest" / "high"; anything else (including "medium") is an invalid_argument naming the choices.
Status parse_matmul_precision(const std::string& name, MatmulPrecision* precision);
const char* matmul_precision_name(MatmulPrecision precision);

}  // namespace lmcl
