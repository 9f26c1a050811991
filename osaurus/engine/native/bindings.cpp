// Python bindings of the osaurus CPU kernels (module osaurus.engine.native._kernels).
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/variant.h>
#include <nanobind/stl/vector.h>

#include "attention.h"
#include "decoder_layer.h"
#include "fast_ops.h"
#include "quantized.h"

namespace nb = nanobind;
namespace mx = mlx::core;
using namespace nb::literals;

// An offset given as a Python int or an array.
mx::array scalar_or_array(const std::variant<int, mx::array>& value) {
  return std::holds_alternative<int>(value) ? mx::array(std::get<int>(value))
                                            : std::get<mx::array>(value);
}

NB_MODULE(_kernels, m) {
  m.doc() = "CPU kernels for MLX: quantized matmul (kernels.h), RMS norm and RoPE (fast_ops.h), "
            "attention (attention.h), a llama decoder layer in two ops (decoder_layer.h)";

  m.def("quantized_matmul", &osaurus::quantized_matmul, "x"_a, "w"_a, "scales"_a, "biases"_a,
        "transpose"_a = true, "group_size"_a = 64, "bits"_a = 4, nb::kw_only(),
        "kernel"_a = "auto", "stream"_a = nb::none(),
        "x @ dequant(w).T (or x @ dequant(w) when transpose is False), as "
        "mx.quantized_matmul computes it for mode 'affine'.");
  m.def("dequantize", &osaurus::dequantize, "w"_a, "scales"_a, "biases"_a,
        "group_size"_a = 64, "bits"_a = 4, nb::kw_only(), "kernel"_a = "auto",
        "stream"_a = nb::none(), "dequant(w) as float32.");
  m.def("rms_norm", &osaurus::rms_norm, "x"_a, "weight"_a.none(), "eps"_a, nb::kw_only(),
        "stream"_a = nb::none(), "As mx.fast.rms_norm, as one CPU primitive.");
  m.def(
      "rope",
      [](const mx::array& x, int dims, bool traditional, std::optional<float> base, float scale,
         const std::variant<int, mx::array>& offset, const std::optional<mx::array>& freqs,
         mx::StreamOrDevice s) {
        return osaurus::rope(x, dims, traditional, base, scale, scalar_or_array(offset), freqs, s);
      },
      "x"_a, "dims"_a, nb::kw_only(), "traditional"_a, "base"_a.none(), "scale"_a, "offset"_a,
      "freqs"_a = nb::none(), "stream"_a = nb::none(),
      "As mx.fast.rope, as one CPU primitive.");
  m.def("attention", &osaurus::attention, "q"_a, "k"_a, "v"_a, nb::kw_only(), "scale"_a,
        "causal"_a = false, "mask"_a = nb::none(), "stream"_a = nb::none(),
        "softmax(scale * q @ k.T + mask) @ v with grouped key/value heads, as "
        "mx.fast.scaled_dot_product_attention, as one CPU primitive (q float32; k and v float32 or "
        "float16).");
  m.def(
      "attention_inputs",
      [](const mx::array& x, const mx::array& norm_weight, float eps,
         const osaurus::QuantizedWeight& qkv, int n_heads, int n_kv_heads, int head_dim,
         int rope_dims, bool traditional, std::optional<float> base, float rope_scale,
         const std::variant<int, mx::array>& offset, const std::optional<mx::array>& freqs,
         const std::string& kernel, mx::Dtype kv_dtype,
         const std::optional<mx::array>& cache_keys, const std::optional<mx::array>& cache_values,
         int write_pos, mx::StreamOrDevice s) {
        return osaurus::attention_inputs(x, norm_weight, eps, qkv, n_heads, n_kv_heads, head_dim,
                                         rope_dims, traditional, base, rope_scale,
                                         scalar_or_array(offset), freqs, kernel, kv_dtype,
                                         cache_keys, cache_values, write_pos, s);
      },
      "x"_a, "norm_weight"_a, "eps"_a, "qkv"_a, nb::kw_only(), "n_heads"_a, "n_kv_heads"_a,
      "head_dim"_a, "rope_dims"_a, "traditional"_a, "base"_a.none(), "rope_scale"_a, "offset"_a,
      "freqs"_a = nb::none(), "kernel"_a = "auto", "kv_dtype"_a = mx::float32,
      "cache_keys"_a = nb::none(), "cache_values"_a = nb::none(), "write_pos"_a = 0,
      "stream"_a = nb::none(),
      "A llama decoder layer up to its KV cache: (q, k, v) = RoPE(split(rms_norm(x) @ qkv.T)) "
      "as heads, qkv = (w, scales, biases, group_size, bits); k and v as kv_dtype (float32 or "
      "float16). With cache_keys and cache_values (a KV cache's buffers), k and v are those "
      "buffers with the new positions written at write_pos. See decoder_layer.h.");
  m.def("kv_cache_copies", &osaurus::kv_cache_copies,
        "How many times attention_inputs copied a KV cache buffer instead of writing in place.");
  m.def("attention_output_mlp", &osaurus::attention_output_mlp, "x"_a, "q"_a, "k"_a, "v"_a,
        nb::kw_only(), "scale"_a, "causal"_a, "mask"_a.none(), "o"_a, "norm_weight"_a, "eps"_a,
        "gate_up"_a, "down"_a, "kernel"_a = "auto", "kv_length"_a = 0, "stream"_a = nb::none(),
        "The rest of a llama decoder layer: h = x + attention(q, k, v) @ o.T, then "
        "h + swiglu(split(rms_norm(h) @ gate_up.T)) @ down.T. See decoder_layer.h.");
  m.def("repack", &osaurus::repack, "w"_a, "scales"_a, "biases"_a, "group_size"_a = 64,
        "bits"_a = 4, nb::kw_only(), "stream"_a = nb::none(),
        "(w, scales, biases) in the r16 layout (16 output rows to a vector; w as uint8), which "
        "quantized_matmul (transposed) and dequantize take. See kernels_r16.h.");
  m.def("repack_available", &osaurus::repack_available, "bits"_a,
        "Whether an r16 kernel for these bits is built here (AVX-512 VNNI or AVX2: 4 and 8); "
        "elsewhere repacked weights are slower.");
  m.def("logsumexp", &osaurus::logsumexp, "x"_a, nb::kw_only(), "stream"_a = nb::none(),
        "As mx.logsumexp(x, axis=-1, keepdims=True) for float32 x, as one CPU primitive.");
  m.def("argmax", &osaurus::argmax, "x"_a, nb::kw_only(), "stream"_a = nb::none(),
        "As mx.argmax(x, axis=-1) for float32 x (uint32 indices), as one CPU primitive.");
  m.def("simd", &osaurus::simd_name, "The instruction set the kernels were built for.");
  m.def("blas_rows", &osaurus::blas_rows,
        "Rows per sequence from which kernel='auto' dequantizes a w in MLX's layout and calls "
        "the BLAS (0: never). A repacked w always takes its r16 kernel.");
  m.def("num_threads", &osaurus::num_threads, "Threads a large matmul is split over.");
}
