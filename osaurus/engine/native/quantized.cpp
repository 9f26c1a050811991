// The ops and primitives of quantized.h: argument checks, graph construction, and eval_cpu,
// which hands our kernels to MLX's CPU command encoder.
#include "quantized.h"

#include <sstream>
#include <stdexcept>
#include <vector>

#include "array_utils.h"
#include "kernels.h"
#include "kernels_r16.h"
#include "kernels_vnni.h"
#include "mlx/backend/common/utils.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/utils.h"
#include "parallel.h"

namespace osaurus {

namespace {

// In "auto" mode, a sequence of at least this many rows (prompt processing) is multiplied by
// dequantizing w to float32 and calling the BLAS: with the AVX2 int8 kernels on MLX's layout,
// sgemm's blocking wins once there are enough rows to pay for writing the float32 copy
// (measured in bench/kernel.py). The r16 kernels beat it at every row count (AVX2, 3072 x 576
// at 64 / 256 / 512 rows: 2.0 / 8.9 / 18.8 ms against 6.4 / 10.0 / 21.7 ms with the BLAS), and
// the VNNI ones beat even a float32 sgemm that is handed the copy for free (14336 x 4096 at
// 128 rows: 49 ms against 85 ms, and 164 ms with the dequantize), so a repacked w, and every w
// on VNNI, always takes the int8 kernels (0: never the BLAS).
constexpr int64_t kBlasRows = OSU_HAVE_VNNI ? 0 : 64;

// The logical columns of a packed w: MLX packs 32 / bits values per uint32, the r16 layout
// keeps bytes (kernels_r16.h).
int64_t packed_cols(const mx::array& w, int bits) {
  return int64_t(w.shape(1)) * (w.dtype() == mx::uint8 ? 8 : 32) / bits;
}

bool is_scale_dtype(mx::Dtype t) {
  return t == mx::float32 || t == mx::float16 || t == mx::bfloat16;
}

ScaleType scale_type(mx::Dtype t) {
  return t == mx::float32 ? ScaleType::F32 : t == mx::float16 ? ScaleType::F16 : ScaleType::BF16;
}

// x's rows as float32: a float32 x's own contiguous bytes (its buffer, or Contiguous's copy of
// a view), else converted from half precision.
struct FloatRows {
  Contiguous contiguous;
  std::vector<float> converted;
  const float* data;

  explicit FloatRows(const mx::array& x) : contiguous(x) {
    if (x.dtype() == mx::float32) {
      data = reinterpret_cast<const float*>(contiguous.data);
      return;
    }
    converted.resize(x.size());
    const auto* h = reinterpret_cast<const uint16_t*>(contiguous.data);
    for (size_t i = 0; i < converted.size(); ++i)
      converted[i] = x.dtype() == mx::float16 ? f16_to_float(h[i]) : bf16_to_float(h[i]);
    data = converted.data();
  }
};

// acc into a float16 or bfloat16 out.
void store_half(const std::vector<float>& acc, mx::array& out) {
  if (out.dtype() == mx::float16) {
    auto* o = out.data<mx::float16_t>();
    for (size_t i = 0; i < acc.size(); ++i) o[i] = mx::float16_t(acc[i]);
  } else {
    auto* o = out.data<mx::bfloat16_t>();
    for (size_t i = 0; i < acc.size(); ++i) o[i] = mx::bfloat16_t(acc[i]);
  }
}

QuantizedMatrix matrix_of(
    const mx::array& w, const mx::array& scales, const Contiguous& cw, const Contiguous& cs,
    const Contiguous& cb, int group_size, int bits) {
  return QuantizedMatrix{cw.data, cs.data, cb.data, scale_type(scales.dtype()), w.shape(0),
                         packed_cols(w, bits), bits, group_size, w.dtype() == mx::uint8};
}

bool use_simd(KernelChoice k) { return OSU_HAVE_AVX2 && k != KernelChoice::Generic; }

}  // namespace

std::pair<int64_t, int64_t> check_quantized_weights(
    const char* op, const mx::array& w, const mx::array& scales, const mx::array& biases,
    int group_size, int bits) {
  if (bits != 4 && bits != 8) fail(op, "bits must be 4 or 8, got ", bits);
  if (group_size != 32 && group_size != 64 && group_size != 128)
    fail(op, "group_size must be 32, 64 or 128, got ", group_size);
  if (w.dtype() != mx::uint32 && w.dtype() != mx::uint8)
    fail(op, "w must be uint32 (packed weights) or uint8 (repacked), got ", w.dtype());
  if (w.ndim() != 2) fail(op, "w must be 2-D, got shape ", shape_of(w));
  if (w.dtype() == mx::uint8 && w.shape(0) % kTileRows != 0)
    fail(op, "a repacked w has a multiple of ", kTileRows, " rows, got ", w.shape(0));
  if (!is_scale_dtype(scales.dtype()) || scales.dtype() != biases.dtype())
    fail(op, "scales and biases must share a float dtype (float32, float16 or bfloat16), got ",
         scales.dtype(), " and ", biases.dtype());
  const int64_t rows = w.shape(0), cols = packed_cols(w, bits);
  if (scales.shape() != biases.shape() || scales.ndim() != 2 || scales.shape(0) != rows ||
      int64_t(scales.shape(1)) * group_size != cols)
    fail(op, "scales ", shape_of(scales), " and biases ", shape_of(biases), " do not fit w ",
         shape_of(w), " with bits=", bits, " and group_size=", group_size, " (expected (", rows,
         ", ", cols / group_size, "))");
  return {rows, cols};
}

QuantizedOperand::QuantizedOperand(
    const mx::array& w_, const mx::array& scales_, const mx::array& biases_, int group_size,
    int bits)
    : w(w_), scales(scales_), biases(biases_),
      matrix(matrix_of(w_, scales_, w, scales, biases, group_size, bits)) {}

void matmul_rows(
    const float* x, int64_t M, const QuantizedMatrix& W, KernelChoice kernel, float* out) {
  const int64_t N = W.rows, K = W.cols;
  const int64_t work = M * N * K;
  if (W.r16) {
#if OSU_HAVE_AVX2
    // VNNI's r16 kernel where it is built and asked for; AVX2's for "int8-avx2", or without VNNI.
    const bool vnni =
        OSU_HAVE_VNNI && (kernel == KernelChoice::Auto || kernel == KernelChoice::Int8);
    if (kernel == KernelChoice::Auto || kernel == KernelChoice::Int8 ||
        kernel == KernelChoice::Int8Avx2) {
      R16X xq;
      quantize_x_r16(x, M, K, W.bits, W.group_size, xq);
      parallel_rows(
          N, kTileRows, work,
          [&](int64_t n0, int64_t n1) { qmm_r16_tiles(vnni, xq, W, n0, n1, out, N); },
          kR16MinWorkPerThread, kR16MinChunkWeights / K);
      return;
    }
#endif
    // The other kernels read MLX's layout: a copy in it (tests and comparisons only; the
    // server repacks where the kernel above runs).
    const MlxLayoutCopy copy(W);
    matmul_rows(x, M, copy.matrix, kernel, out);
    return;
  }
#if OSU_HAVE_VNNI
  if (kernel == KernelChoice::Auto || kernel == KernelChoice::Int8) {
    VnniX xq;
    quantize_x_vnni(x, M, K, W.bits, W.group_size, xq);
    parallel_rows(N, 8, work, [&](int64_t n0, int64_t n1) {
      if (W.bits == 4)
        qmm_t_vnni<4>(xq, W, n0, n1, out, N);
      else
        qmm_t_vnni<8>(xq, W, n0, n1, out, N);
    });
    return;
  }
#endif
#if OSU_HAVE_AVX2
  if (kernel == KernelChoice::Auto || kernel == KernelChoice::Int8 ||
      kernel == KernelChoice::Int8Avx2) {
    std::vector<int8_t> xq(M * K);
    std::vector<float> xd(M * W.groups()), xsum(M * W.groups());
    quantize_x_int8(x, M, K, W.bits, W.group_size, xq.data(), xd.data(), xsum.data());
    parallel_rows(N, 8, work, [&](int64_t n0, int64_t n1) {
      if (W.bits == 4)
        qmm_t_int8<4>(xq.data(), xd.data(), xsum.data(), M, W, n0, n1, out, N);
      else
        qmm_t_int8<8>(xq.data(), xd.data(), xsum.data(), M, W, n0, n1, out, N);
    });
    return;
  }
  if (kernel == KernelChoice::Float) {
    std::vector<float> xp(M * K), xsum(M * W.groups());
    pack_x(x, M, K, W.bits, W.group_size, xp.data(), xsum.data());
    parallel_rows(N, 8, work, [&](int64_t n0, int64_t n1) {
      if (W.bits == 4)
        qmm_t_avx2<4>(xp.data(), xsum.data(), M, W, n0, n1, out, N);
      else
        qmm_t_avx2<8>(xp.data(), xsum.data(), M, W, n0, n1, out, N);
    });
    return;
  }
#endif
  parallel_rows(N, 8, work, [&](int64_t n0, int64_t n1) {
    qmm_t_generic(x, M, W, n0, n1, out, N);
  });
}


KernelChoice parse_kernel(const std::string& name) {
  if (name == "auto") return KernelChoice::Auto;
  if (name == "float") return KernelChoice::Float;
  if (name == "int8") return KernelChoice::Int8;
  if (name == "int8-avx2") return KernelChoice::Int8Avx2;
  if (name == "generic") return KernelChoice::Generic;
  fail("osaurus kernels", "kernel must be 'auto', 'float', 'int8', 'int8-avx2' or 'generic', got '",
       name, "'");
}

std::string simd_name() {
  if (OSU_HAVE_VNNI) return "avx512-vnni";  // the int8 kernels; the float ones are AVX2
  return OSU_HAVE_AVX2 ? "avx2" : "portable";
}

int num_threads() { return max_threads(); }

int blas_rows() { return int(kBlasRows); }

mx::array dequantize(
    const mx::array& w, const mx::array& scales, const mx::array& biases, int group_size,
    int bits, const std::string& kernel, mx::StreamOrDevice s) {
  const auto choice = parse_kernel(kernel);
  const auto [rows, cols] = check_quantized_weights("dequantize", w, scales, biases, group_size, bits);
  auto stream = mx::to_stream(s);
  if (stream.device != mx::Device::cpu)
    return mx::dequantize(w, scales, biases, group_size, bits, "affine", std::nullopt, mx::float32, stream);
  return mx::array(
      {int(rows), int(cols)}, mx::float32,
      std::make_shared<Dequantize>(stream, group_size, bits, choice), {w, scales, biases});
}

mx::array quantized_matmul(
    const mx::array& x, const mx::array& w, const mx::array& scales, const mx::array& biases,
    bool transpose, int group_size, int bits, const std::string& kernel, mx::StreamOrDevice s) {
  const char* op = "quantized_matmul";
  const auto choice = parse_kernel(kernel);
  const auto [rows, cols] = check_quantized_weights(op, w, scales, biases, group_size, bits);
  if (!is_scale_dtype(x.dtype()))
    fail(op, "x must be float32, float16 or bfloat16, got ", x.dtype());
  if (x.ndim() < 1) fail(op, "x must have at least one dimension");
  if (w.dtype() == mx::uint8 && !transpose)
    fail(op, "a repacked w is multiplied transposed only (x @ dequant(w).T)");
  const int64_t K = transpose ? cols : rows, N = transpose ? rows : cols;
  if (x.shape(-1) != K)
    fail(op, "x ", shape_of(x), " has ", x.shape(-1), " columns but w ", shape_of(w), " is a ",
         rows, " x ", cols, " matrix at ", bits, " bits, so x needs ", K, " (transpose=",
         transpose ? "True" : "False", ")");

  auto stream = mx::to_stream(s);
  if (stream.device != mx::Device::cpu && w.dtype() == mx::uint8)
    fail(op, "a repacked w is for the CPU kernels only");
  if (stream.device != mx::Device::cpu)  // Metal and CUDA: MLX's own kernels are the fast path
    return mx::quantized_matmul(x, w, scales, biases, transpose, group_size, bits, "affine", stream);

  // Decided per sequence (x's second-to-last axis), not by the total of rows: a sequence then
  // takes the same kernel, and gets the same numbers, alone or in a batch of any size.
  const int64_t rows_per_sequence = x.ndim() >= 2 ? x.shape(-2) : 1;
  const bool r16_kernel = w.dtype() == mx::uint8 && repack_available(bits);
  if (choice == KernelChoice::Auto && kBlasRows && !r16_kernel && rows_per_sequence >= kBlasRows) {
    auto wf = dequantize(w, scales, biases, group_size, bits, kernel, stream);
    auto xf = mx::astype(x, mx::float32, stream);
    auto y = mx::matmul(xf, transpose ? mx::transpose(wf, stream) : wf, stream);
    return mx::astype(y, x.dtype(), stream);
  }
  auto shape = x.shape();
  shape.back() = int(N);
  return mx::array(
      shape, x.dtype(), std::make_shared<QuantizedMatmul>(stream, transpose, group_size, bits, choice),
      {x, w, scales, biases});
}

void QuantizedMatmul::eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) {
  out.set_data(mx::allocator::malloc(out.nbytes()));
  auto& encoder = mx::cpu::get_command_encoder(stream());
  for (const auto& a : inputs) encoder.set_input_array(a);
  encoder.set_output_array(out);
  encoder.dispatch([x = mx::array::unsafe_weak_copy(inputs[0]),
                    w = mx::array::unsafe_weak_copy(inputs[1]),
                    scales = mx::array::unsafe_weak_copy(inputs[2]),
                    biases = mx::array::unsafe_weak_copy(inputs[3]),
                    out = mx::array::unsafe_weak_copy(out), transpose = transpose_,
                    group_size = group_size_, bits = bits_, kernel = kernel_]() mutable {
    const Contiguous cw(w), cs(scales), cb(biases);
    const auto W = matrix_of(w, scales, cw, cs, cb, group_size, bits);
    const int64_t rows = W.rows, cols = W.cols;
    const int64_t K = transpose ? cols : rows, N = transpose ? rows : cols;
    const int64_t M = x.size() / K;
    const FloatRows xf(x);
    // Straight into a float32 out (a tied lm head's 8 x 49,152 logits had been zeroed and
    // copied once more each step), else into float32 and converted.
    std::vector<float> converted(out.dtype() == mx::float32 ? 0 : M * N);
    float* acc = out.dtype() == mx::float32 ? out.data<float>() : converted.data();
    if (transpose) {
      matmul_rows(xf.data, M, W, kernel, acc);
    } else {
      // Threads split the output columns, in whole groups.
      parallel_rows(N, group_size, M * N * K, [&](int64_t n0, int64_t n1) {
        qmm_n_generic(xf.data, M, W, n0, n1, acc);
      });
    }
    if (out.dtype() != mx::float32) store_half(converted, out);
  });
}

void Dequantize::eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) {
  out.set_data(mx::allocator::malloc(out.nbytes()));
  auto& encoder = mx::cpu::get_command_encoder(stream());
  for (const auto& a : inputs) encoder.set_input_array(a);
  encoder.set_output_array(out);
  encoder.dispatch([w = mx::array::unsafe_weak_copy(inputs[0]),
                    scales = mx::array::unsafe_weak_copy(inputs[1]),
                    biases = mx::array::unsafe_weak_copy(inputs[2]),
                    out = mx::array::unsafe_weak_copy(out), group_size = group_size_,
                    bits = bits_, kernel = kernel_]() mutable {
    const Contiguous cw(w), cs(scales), cb(biases);
    const auto W = matrix_of(w, scales, cw, cs, cb, group_size, bits);
    float* o = out.data<float>();
    const auto rows_of = [kernel](const QuantizedMatrix& M, int64_t r0, int64_t r1, float* to) {
#if OSU_HAVE_AVX2
      if (use_simd(kernel)) {
        if (M.bits == 4)
          dequantize_avx2<4>(M, r0, r1, to);
        else
          dequantize_avx2<8>(M, r0, r1, to);
        return;
      }
#endif
      dequantize_generic(M, r0, r1, to);
    };
    if (!W.r16) {
      parallel_rows(W.rows, 8, W.rows * W.cols / 4,
                    [&](int64_t r0, int64_t r1) { rows_of(W, r0, r1, o); });
      return;
    }
    // r16 (a prompt's matmul through the BLAS): each tile back in MLX's layout in a small
    // buffer, then dequantized; no copy of the whole matrix.
    parallel_rows(W.rows, kTileRows, W.rows * W.cols / 4, [&](int64_t r0, int64_t r1) {
      const int64_t value_bytes = W.scale_type == ScaleType::F32 ? 4 : 2;
      std::vector<uint8_t> packed(kTileRows * W.row_bytes());
      std::vector<uint8_t> scales(kTileRows * W.groups() * value_bytes), biases(scales.size());
      QuantizedMatrix tile = W;
      tile.packed = packed.data(), tile.scales = scales.data(), tile.biases = biases.data();
      tile.rows = kTileRows, tile.r16 = false;
      for (int64_t n = r0; n < r1; n += kTileRows) {
        unrepack_r16(W, n, n + kTileRows, packed.data(), scales.data(), biases.data());
        rows_of(tile, 0, kTileRows, o + n * W.cols);
      }
    });
  });
}

void QuantizedMatmul::eval_gpu(const std::vector<mx::array>&, mx::array&) {
  throw std::runtime_error("OsaurusQuantizedMatmul runs on the CPU only");
}

void Dequantize::eval_gpu(const std::vector<mx::array>&, mx::array&) {
  throw std::runtime_error("OsaurusDequantize runs on the CPU only");
}

bool QuantizedMatmul::is_equivalent(const mx::Primitive& other) const {
  const auto& o = static_cast<const QuantizedMatmul&>(other);
  return transpose_ == o.transpose_ && group_size_ == o.group_size_ && bits_ == o.bits_ &&
         kernel_ == o.kernel_;
}

std::vector<mx::Shape> QuantizedMatmul::output_shapes(const std::vector<mx::array>& inputs) {
  auto shape = inputs[0].shape();
  const int64_t cols = packed_cols(inputs[1], bits_);
  shape.back() = int(transpose_ ? inputs[1].shape(0) : cols);
  return {shape};
}

bool Dequantize::is_equivalent(const mx::Primitive& other) const {
  const auto& o = static_cast<const Dequantize&>(other);
  return group_size_ == o.group_size_ && bits_ == o.bits_ && kernel_ == o.kernel_;
}

bool repack_available(int bits) { return OSU_HAVE_AVX2 && (bits == 4 || bits == 8); }

std::vector<mx::array> repack(
    const mx::array& w, const mx::array& scales, const mx::array& biases, int group_size,
    int bits, mx::StreamOrDevice s) {
  const char* op = "repack";
  if (w.dtype() != mx::uint32) fail(op, "w must be uint32 (MLX's packed weights), got ", w.dtype());
  const auto [rows, cols] = check_quantized_weights(op, w, scales, biases, group_size, bits);
  if (rows % kTileRows != 0)
    fail(op, "the r16 layout takes a multiple of ", kTileRows, " rows, got ", rows);
  auto stream = mx::to_stream(s);
  if (stream.device != mx::Device::cpu) fail(op, "the r16 layout is for the CPU kernels only");
  return mx::array::make_arrays(
      {{int(rows), int(cols * bits / 8)}, scales.shape(), biases.shape()},
      {mx::uint8, scales.dtype(), biases.dtype()},
      std::make_shared<Repack>(stream, group_size, bits), {w, scales, biases});
}

void Repack::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  for (auto& o : outputs) o.set_data(mx::allocator::malloc(o.nbytes()));
  auto& encoder = mx::cpu::get_command_encoder(stream());
  for (const auto& a : inputs) encoder.set_input_array(a);
  for (auto& o : outputs) encoder.set_output_array(o);
  encoder.dispatch([w = mx::array::unsafe_weak_copy(inputs[0]),
                    scales = mx::array::unsafe_weak_copy(inputs[1]),
                    biases = mx::array::unsafe_weak_copy(inputs[2]),
                    packed = mx::array::unsafe_weak_copy(outputs[0]),
                    out_scales = mx::array::unsafe_weak_copy(outputs[1]),
                    out_biases = mx::array::unsafe_weak_copy(outputs[2]), group_size = group_size_,
                    bits = bits_]() mutable {
    const Contiguous cw(w), cs(scales), cb(biases);
    repack_r16(matrix_of(w, scales, cw, cs, cb, group_size, bits), packed.data<uint8_t>(),
               out_scales.data<uint8_t>(), out_biases.data<uint8_t>());
  });
}

void Repack::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  throw std::runtime_error("OsaurusRepack runs on the CPU only");
}

bool Repack::is_equivalent(const mx::Primitive& other) const {
  const auto& o = static_cast<const Repack&>(other);
  return group_size_ == o.group_size_ && bits_ == o.bits_;
}

}  // namespace osaurus
