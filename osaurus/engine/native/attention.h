// Scaled dot-product attention as one CPU primitive.
//
// On the CPU mx.fast.scaled_dot_product_attention expands into its fallback: the query scaled,
// heads reshaped for grouped-query attention, keys transposed, a mask built, two matmuls and a
// softmax, each a separate op, with the grouped keys and values broadcast to every query head.
// For one new token per sequence that is a dozen ops per layer with almost no work in each
// (measured on the 135M test model at ~340 tokens of context: 5-10 ms of a ~17 ms decode step
// at batch 1, ~30 ms of ~60 at batch 8), and for a prompt chunk the broadcasts and the
// full-size mask outweigh the matmuls (prefill of 1,024 tokens: 160 tokens/s with MLX's
// attention, ~400 with this one). This primitive computes the same in float32 in one pass: per
// sequence, key/value head and block of query positions, each key and value is read once for
// the query heads that share it, straight from the KV cache's strided view, and a causal
// query skips the keys it does not see.
#pragma once

#include <optional>

#include "mlx/ops.h"
#include "mlx/primitives.h"

namespace osaurus {

namespace mx = mlx::core;

// softmax(scale * q @ k.T + mask) @ v for q (B, H, L, D), k (B, Hkv, S, D), v (B, Hkv, S, Dv),
// H a multiple of Hkv; q float32, k and v both float32 or both float16 (a float16 KV cache,
// read into float32: half the memory traffic of a long context); the result is float32.
// mask: none, causal (query l sees keys up to S - L + l), or an array broadcastable to
// (B, H, L, S), boolean (true keeps) or additive. As mx.fast.scaled_dot_product_attention,
// except that a query that sees no key gets zeros.
mx::array attention(
    const mx::array& q, const mx::array& k, const mx::array& v, float scale, bool causal,
    const std::optional<mx::array>& mask, mx::StreamOrDevice s = {});

// For primitives that attend inside their own eval (decoder_layer.cpp):

// Fails unless the dtypes are as attention() takes them.
void check_attention_dtypes(const char* op, const mx::array& q, const mx::array& k,
                            const mx::array& v);

// The mask as Attention takes it: checked, float masks as float32, broadcast to (B, H, L, S).
mx::array attention_mask_input(
    const char* op, const mx::array& mask, int B, int H, int L, int S, mx::Stream stream);

// What Attention computes, from evaluated inputs into out: (B, H, L, Dv), or (B, L, H, Dv)
// when heads_last (the layout the output projection takes). mask: as attention_mask_input
// made it, or null. keys: how many of k's and v's first positions to attend over (0: all), for
// a KV cache buffer with room to spare.
void attention_into(
    const mx::array& q, const mx::array& k, const mx::array& v, const mx::array* mask,
    float scale, bool causal, bool heads_last, float* out, int64_t keys = 0);

class Attention : public mx::UnaryPrimitive {
 public:
  Attention(mx::Stream stream, float scale, bool causal, bool has_mask)
      : mx::UnaryPrimitive(stream), scale_(scale), causal_(causal), has_mask_(has_mask) {}

  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override;
  void eval_gpu(const std::vector<mx::array>& inputs, mx::array& out) override;
  const char* name() const override { return "OsaurusAttention"; }
  bool is_equivalent(const mx::Primitive& other) const override;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override;

 private:
  float scale_;
  bool causal_, has_mask_;
};

}  // namespace osaurus
