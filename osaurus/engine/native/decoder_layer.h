// A llama-family decoder layer as two CPU primitives.
//
// With the native matmul, norms, RoPE and attention, a decode step of the 135M test model is
// still ~820 MLX ops, ~27 per layer (reshapes, transposes, splits, residual adds, the SwiGLU),
// and each pays MLX's fixed cost of ~5 µs on the CPU: about half the step. These two
// primitives compute a layer in two ops, around mlx-lm's KV cache (so every cache type, prompt
// cache and batch layout works as before):
//
//   attention_inputs:      h = rms_norm(x); q, k, v = split(h @ Wqkv.T) as heads; RoPE on q, k
//                          (k, v written into the cache's buffers, or mlx-lm's
//                          keys, values = cache.update_and_fetch(k, v))
//   attention_output_mlp:  h = x + attention(q, keys, values) @ Wo.T
//                          out = h + (silu(g) * u) @ Wdown.T, with g, u = rms_norm(h) @ Wgu.T
//
// They call the same row functions as the single-op primitives (matmul_rows, rms_norm_rows,
// rotate_row, attention_into), so a layer computes what the unfused native path computes; the
// SwiGLU is the one new piece (vector_math.h).
#pragma once

#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "mlx/ops.h"
#include "mlx/primitives.h"
#include "quantized.h"

namespace osaurus {

namespace mx = mlx::core;

// A quantized weight as the layer ops take it: (w, scales, biases, group_size, bits).
using QuantizedWeight = std::tuple<mx::array, mx::array, mx::array, int, int>;

// x (B, L, D) float32 -> q (B, H, L, Dh) float32, k and v (B, Hkv, L, Dh) as kv_dtype:
// float32, or float16 for a float16 KV cache. qkv stacks the q, k and v projections' rows
// (H + 2 Hkv) * Dh. RoPE as mx.fast.rope over each head, with `offset` a scalar or one per
// batch row, and exactly one of base and freqs.
//
// With cache_keys and cache_values (a KV cache's buffers, (B, Hkv, T, Dh) as kv_dtype, with room
// for L positions from write_pos), k and v come out as those buffers with the new positions
// written at write_pos: in place when nothing else holds a buffer (as MLX's slice_update
// donates its input), else into a copy. That is the KV cache update of mlx-lm's KVCache and
// BatchKVCache without its four ops a layer (two slice_updates, two slices).
std::vector<mx::array> attention_inputs(
    const mx::array& x, const mx::array& norm_weight, float eps, const QuantizedWeight& qkv,
    int n_heads, int n_kv_heads, int head_dim, int rope_dims, bool traditional,
    std::optional<float> base, float rope_scale, const mx::array& offset,
    const std::optional<mx::array>& freqs, const std::string& kernel = "auto",
    mx::Dtype kv_dtype = mx::float32, const std::optional<mx::array>& cache_keys = std::nullopt,
    const std::optional<mx::array>& cache_values = std::nullopt, int write_pos = 0,
    mx::StreamOrDevice s = {});

// How many times attention_inputs copied a KV cache buffer instead of writing in place (for
// tests: a decode step should not copy).
int64_t kv_cache_copies();

// The rest of the layer: x (B, L, D) the layer's input, q as attention_inputs made it, k and v
// the cache's keys and values (B, Hkv, S, Dh), both float32 or both float16, of which the
// first kv_length positions are attended over (0: all S). mask and causal as in attention(),
// for kv_length keys. gate_up stacks the gate and up projections (2 I rows); down is D x I.
mx::array attention_output_mlp(
    const mx::array& x, const mx::array& q, const mx::array& k, const mx::array& v, float scale,
    bool causal, const std::optional<mx::array>& mask, const QuantizedWeight& o,
    const mx::array& norm_weight, float eps, const QuantizedWeight& gate_up,
    const QuantizedWeight& down, const std::string& kernel = "auto", int kv_length = 0,
    mx::StreamOrDevice s = {});

class AttentionInputs : public mx::Primitive {
 public:
  struct Params {
    float eps;
    int n_heads, n_kv_heads, head_dim, rope_dims;
    bool traditional;
    float base, rope_scale;  // base is unused when freqs are given (the last input)
    int group_size, bits;
    KernelChoice kernel;
    bool kv_half;  // k and v as float16
    int capacity;  // positions of the KV cache buffers k and v are written into; 0: none
    int write_pos;  // where in them
    bool operator==(const Params&) const = default;
  };

  AttentionInputs(mx::Stream stream, Params p) : mx::Primitive(stream), p_(p) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  void eval_gpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  const char* name() const override { return "OsaurusAttentionInputs"; }
  bool is_equivalent(const mx::Primitive& other) const override;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override;

 private:
  Params p_;
};

class AttentionOutputMlp : public mx::UnaryPrimitive {
 public:
  struct Params {
    float scale;
    bool causal, has_mask;
    float eps;
    int o_group_size, o_bits, gate_up_group_size, gate_up_bits, down_group_size, down_bits;
    KernelChoice kernel;
    int kv_length;  // keys attended over; 0: all
    bool operator==(const Params&) const = default;
  };

  AttentionOutputMlp(mx::Stream stream, Params p) : mx::UnaryPrimitive(stream), p_(p) {}

  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override;
  void eval_gpu(const std::vector<mx::array>& inputs, mx::array& out) override;
  const char* name() const override { return "OsaurusAttentionOutputMlp"; }
  bool is_equivalent(const mx::Primitive& other) const override;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    return {inputs[0].shape()};
  }

 private:
  Params p_;
};

}  // namespace osaurus
