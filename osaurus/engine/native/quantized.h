// MLX ops backed by our CPU kernels (kernels.h): quantized matmul and dequantize for MLX's
// affine quantization. Same arguments and results as mx.quantized_matmul / mx.dequantize.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "array_utils.h"
#include "kernels.h"

#include "mlx/ops.h"
#include "mlx/primitives.h"

namespace osaurus {

namespace mx = mlx::core;

// Which kernels run: "auto" (the int8-activation SIMD kernels; many rows of x go through
// dequantize + the BLAS sgemm), "int8" (those kernels only: AVX-512 VNNI where the build has
// it, else AVX2), "int8-avx2" (the AVX2 ones even where VNNI is there, to compare and test
// both), "float" (the SIMD kernels that keep x in float32: exact to float32 rounding, slower)
// or "generic" (the portable kernels). On a build without AVX2 every choice runs the portable
// kernels, which keep x in float32.
enum class KernelChoice { Auto, Float, Int8, Int8Avx2, Generic };

KernelChoice parse_kernel(const std::string& name);

// x @ dequant(w).T (transpose) or x @ dequant(w), for bits 4 or 8 and group size 32, 64 or 128.
mx::array quantized_matmul(
    const mx::array& x, const mx::array& w, const mx::array& scales, const mx::array& biases,
    bool transpose, int group_size, int bits, const std::string& kernel = "auto",
    mx::StreamOrDevice s = {});

// dequant(w) as float32.
mx::array dequantize(
    const mx::array& w, const mx::array& scales, const mx::array& biases, int group_size,
    int bits, const std::string& kernel = "auto", mx::StreamOrDevice s = {});

// The instruction set the SIMD kernels were built for ("avx2" or "portable") and the threads
// they use.
std::string simd_name();
int num_threads();

// Rows per sequence from which "auto" dequantizes a w in MLX's layout and calls the BLAS
// (0: never). A repacked w always takes its r16 kernel.
int blas_rows();

// w, scales and biases in the r16 layout (kernels_r16.h: the same bytes, 16 output rows to a
// vector), which quantized_matmul (transposed) and dequantize take as they take MLX's: w is
// then uint8. The r16 kernels (bits 4 and 8) are built for AVX-512 VNNI and AVX2; elsewhere
// the kernels read it through a copy in MLX's layout, so repack only where
// repack_available(bits).
std::vector<mx::array> repack(
    const mx::array& w, const mx::array& scales, const mx::array& biases, int group_size,
    int bits, mx::StreamOrDevice s = {});
bool repack_available(int bits);

class Repack : public mx::Primitive {
 public:
  Repack(mx::Stream stream, int group_size, int bits)
      : mx::Primitive(stream), group_size_(group_size), bits_(bits) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  void eval_gpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  const char* name() const override { return "OsaurusRepack"; }
  bool is_equivalent(const mx::Primitive& other) const override;

 private:
  int group_size_, bits_;
};

// For primitives that multiply inside their own eval (decoder_layer.cpp):

// Checks a quantized weight's w, scales and biases (naming `op`); returns the logical
// (rows, cols) of dequant(w).
std::pair<int64_t, int64_t> check_quantized_weights(
    const char* op, const mx::array& w, const mx::array& scales, const mx::array& biases,
    int group_size, int bits);

// A quantized weight's evaluated arrays as the kernels read them.
struct QuantizedOperand {
  Contiguous w, scales, biases;
  QuantizedMatrix matrix;
  QuantizedOperand(const mx::array& w, const mx::array& scales, const mx::array& biases,
                   int group_size, int bits);
};

// out (M x N, row-major) = x (M x K, row-major) @ dequant(W).T, W being N x K, on the SIMD
// kernels `kernel` picks (never the BLAS); threads split the output columns.
void matmul_rows(
    const float* x, int64_t M, const QuantizedMatrix& W, KernelChoice kernel, float* out);

class QuantizedMatmul : public mx::UnaryPrimitive {
 public:
  QuantizedMatmul(mx::Stream stream, bool transpose, int group_size, int bits, KernelChoice kernel)
      : mx::UnaryPrimitive(stream),
        transpose_(transpose),
        group_size_(group_size),
        bits_(bits),
        kernel_(kernel) {}

  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override;
  void eval_gpu(const std::vector<mx::array>& inputs, mx::array& out) override;
  const char* name() const override { return "OsaurusQuantizedMatmul"; }
  bool is_equivalent(const mx::Primitive& other) const override;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override;

 private:
  bool transpose_;
  int group_size_, bits_;
  KernelChoice kernel_;
};

class Dequantize : public mx::UnaryPrimitive {
 public:
  Dequantize(mx::Stream stream, int group_size, int bits, KernelChoice kernel)
      : mx::UnaryPrimitive(stream), group_size_(group_size), bits_(bits), kernel_(kernel) {}

  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override;
  void eval_gpu(const std::vector<mx::array>& inputs, mx::array& out) override;
  const char* name() const override { return "OsaurusDequantize"; }
  bool is_equivalent(const mx::Primitive& other) const override;

 private:
  int group_size_, bits_;
  KernelChoice kernel_;
};

}  // namespace osaurus
