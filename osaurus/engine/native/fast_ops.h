// RMS norm and rotary embedding as single CPU primitives.
//
// MLX's mx.fast.rms_norm and mx.fast.rope have kernels on Metal and CUDA only; on the CPU they
// expand into their fallbacks (mlx/fast.cpp): 11 small ops for a norm, 29 for a rope. A decoder
// layer calls two of each, so a 30-layer model builds and schedules ~2,400 extra ops per token,
// each with a fixed cost of ~10 µs in MLX's CPU scheduler: half of a small model's decode step.
// These ops compute the same results (same arguments as mx.fast's) in one primitive each.
#pragma once

#include <optional>

#include "mlx/ops.h"
#include "mlx/primitives.h"

namespace osaurus {

namespace mx = mlx::core;

// x * rsqrt(mean(x², -1) + eps) * weight, as mx.fast.rms_norm.
mx::array rms_norm(
    const mx::array& x, const std::optional<mx::array>& weight, float eps,
    mx::StreamOrDevice s = {});

// Rotary position embedding over the last axis, positions along axis -2 starting at `offset`
// (a scalar, or one per batch row), as mx.fast.rope.
mx::array rope(
    const mx::array& x, int dims, bool traditional, std::optional<float> base, float scale,
    const mx::array& offset, const std::optional<mx::array>& freqs = std::nullopt,
    mx::StreamOrDevice s = {});

// log(sum(exp(x))) over the last axis, kept as an axis of 1, x float32: as
// mx.logsumexp(x, axis=-1, keepdims=True). mlx-lm normalizes the logits with it every decode
// step, and MLX's CPU exp is scalar (~17 ns a value here): 6.5 ms a step for 8 sequences of a
// 49k vocabulary, a quarter of the test model's step. This one takes ~0.1 ms (vector_math.h).
mx::array logsumexp(const mx::array& x, mx::StreamOrDevice s = {});

class LogSumExp : public mx::UnaryPrimitive {
 public:
  explicit LogSumExp(mx::Stream stream) : mx::UnaryPrimitive(stream) {}

  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override;
  void eval_gpu(const std::vector<mx::array>& inputs, mx::array& out) override;
  const char* name() const override { return "OsaurusLogSumExp"; }
  bool is_equivalent(const mx::Primitive&) const override { return true; }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    auto shape = inputs[0].shape();
    shape.back() = 1;
    return {shape};
  }
};

// The index of each row's largest value (the first of equals; a row with a NaN: its first NaN),
// x float32: as mx.argmax(x, axis=-1), uint32. A greedy decode step picks its tokens with it:
// MLX's CPU argmax is scalar, 0.36 ms for 8 rows of a 49k vocabulary (2% of a test-model step).
mx::array argmax(const mx::array& x, mx::StreamOrDevice s = {});

class ArgMax : public mx::UnaryPrimitive {
 public:
  explicit ArgMax(mx::Stream stream) : mx::UnaryPrimitive(stream) {}

  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override;
  void eval_gpu(const std::vector<mx::array>& inputs, mx::array& out) override;
  const char* name() const override { return "OsaurusArgMax"; }
  bool is_equivalent(const mx::Primitive&) const override { return true; }
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    auto shape = inputs[0].shape();
    shape.pop_back();
    return {shape};
  }
};

class RMSNorm : public mx::UnaryPrimitive {
 public:
  RMSNorm(mx::Stream stream, float eps, bool has_weight)
      : mx::UnaryPrimitive(stream), eps_(eps), has_weight_(has_weight) {}

  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override;
  void eval_gpu(const std::vector<mx::array>& inputs, mx::array& out) override;
  const char* name() const override { return "OsaurusRMSNorm"; }
  bool is_equivalent(const mx::Primitive& other) const override;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    return {inputs[0].shape()};
  }

 private:
  float eps_;
  bool has_weight_;
};

class RoPE : public mx::UnaryPrimitive {
 public:
  RoPE(mx::Stream stream, int dims, bool traditional, float base, float scale)
      : mx::UnaryPrimitive(stream),
        dims_(dims),
        traditional_(traditional),
        base_(base),
        scale_(scale) {}

  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override;
  void eval_gpu(const std::vector<mx::array>& inputs, mx::array& out) override;
  const char* name() const override { return "OsaurusRoPE"; }
  bool is_equivalent(const mx::Primitive& other) const override;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    return {inputs[0].shape()};
  }

 private:
  int dims_;
  bool traditional_;
  float base_, scale_;  // base is unused when freqs are given (a third input)
};

}  // namespace osaurus
