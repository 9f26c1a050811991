// The ops and primitives of fast_ops.h. Both compute in float32 and round once to the output
// type; MLX's fallbacks round half-precision intermediates too, so in float16/bfloat16 the
// results agree to that rounding and in float32 to float32 tolerance.
#include "fast_ops.h"

#include <cmath>
#include <limits>
#include <vector>

#include "array_utils.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/fast.h"
#include "norm_rope.h"
#include "parallel.h"
#include "vector_math.h"

namespace osaurus {

namespace {

bool is_float_dtype(mx::Dtype t) {
  return t == mx::float32 || t == mx::float16 || t == mx::bfloat16;
}

// Calls f with a value of the C++ type of float dtype t (float, float16_t or bfloat16_t).
template <typename F>
void with_float_type(mx::Dtype t, F&& f) {
  if (t == mx::float32)
    f(float{});
  else if (t == mx::float16)
    f(mx::float16_t{});
  else
    f(mx::bfloat16_t{});
}

template <typename T>
void rope_rows(
    const mx::array& x, const RotaryTable& table, bool per_row_offset, int64_t rows_per_batch,
    int dims, bool traditional, T* out, int64_t r0, int64_t r1) {
  const int64_t D = x.shape(-1);
  const int64_t last_stride = x.strides().back();
  const bool contiguous = x.flags().row_contiguous;
  const T* base = x.data<T>();
  std::vector<float> row(D);
  for (int64_t r = r0; r < r1; ++r) {
    const T* src = base + (contiguous ? r * D : mx::elem_to_loc(int(r * D), x.shape(), x.strides()));
    for (int64_t i = 0; i < D; ++i) row[i] = float(src[i * last_stride]);
    const int64_t o = per_row_offset ? r / rows_per_batch : 0, t = r % table.T;
    rotate_row(row.data(), table.cos_at(o, t), table.sin_at(o, t), D, dims, traditional,
               out + r * D);
  }
}

}  // namespace

mx::array rms_norm(
    const mx::array& x, const std::optional<mx::array>& weight, float eps,
    mx::StreamOrDevice s) {
  const char* op = "rms_norm";
  if (x.ndim() == 0) fail(op, "x must have at least one dimension");
  if (!is_float_dtype(x.dtype()))
    fail(op, "x must be float32, float16 or bfloat16, got ", x.dtype());
  if (weight) {
    if (weight->ndim() != 1 || weight->shape(0) != x.shape(-1))
      fail(op, "weight must have shape (", x.shape(-1), ",) to fit x ", shape_of(x), ", got ",
           shape_of(*weight));
    if (!is_float_dtype(weight->dtype()))
      fail(op, "weight must be float32, float16 or bfloat16, got ", weight->dtype());
  }
  auto stream = mx::to_stream(s);
  if (stream.device != mx::Device::cpu) return mx::fast::rms_norm(x, weight, eps, stream);
  const auto out_type = weight ? mx::promote_types(x.dtype(), weight->dtype()) : x.dtype();
  std::vector<mx::array> inputs{x};
  if (weight) inputs.push_back(mx::astype(*weight, out_type, stream));
  return mx::array(
      x.shape(), out_type, std::make_shared<RMSNorm>(stream, eps, weight.has_value()),
      std::move(inputs));
}

mx::array rope(
    const mx::array& x, int dims, bool traditional, std::optional<float> base, float scale,
    const mx::array& offset, const std::optional<mx::array>& freqs, mx::StreamOrDevice s) {
  const char* op = "rope";
  if (x.ndim() < 3) fail(op, "x must have at least 3 dimensions, got shape ", shape_of(x));
  if (!is_float_dtype(x.dtype()))
    fail(op, "x must be float32, float16 or bfloat16, got ", x.dtype());
  if (dims <= 0 || dims % 2 != 0 || dims > x.shape(-1))
    fail(op, "dims must be even and between 2 and x's last dimension (", x.shape(-1), "), got ",
         dims);
  if (!mx::issubdtype(offset.dtype(), mx::integer) || offset.ndim() > 1 ||
      (offset.size() != 1 && offset.size() != size_t(x.shape(0))))
    fail(op, "offset must be an integer or integers, one per batch row (", x.shape(0),
         "), got dtype ", offset.dtype(), " and shape ", shape_of(offset));
  if (freqs.has_value() == base.has_value())
    fail(op, "give exactly one of base and freqs");
  if (freqs && (freqs->ndim() != 1 || freqs->shape(0) != dims / 2))
    fail(op, "freqs must have shape (", dims / 2, ",), got ", shape_of(*freqs));

  auto stream = mx::to_stream(s);
  if (stream.device != mx::Device::cpu)
    return mx::fast::rope(x, dims, traditional, base, scale, offset, freqs, stream);
  std::vector<mx::array> inputs{x, mx::astype(offset, mx::int32, stream)};
  if (freqs) inputs.push_back(mx::astype(*freqs, mx::float32, stream));
  return mx::array(
      x.shape(), x.dtype(),
      std::make_shared<RoPE>(stream, dims, traditional, base.value_or(1.0f), scale),
      std::move(inputs));
}

namespace {

// The inputs of the row reductions (logsumexp, argmax): float32 with values on the last axis.
void check_rows(const char* op, const mx::array& x) {
  if (x.ndim() == 0 || x.dtype() != mx::float32 || x.shape(-1) == 0)
    fail(op, "x must be float32 with a last axis of at least one value, got ", x.dtype(), " ",
         shape_of(x));
}

// out[r] = row_fn(row r of x, its length) for every row of x's last axis, the rows on both cores
// from 2 x 16K values: a vocabulary's row takes ~0.1 ms. (logsumexp ran on one, with a call to
// memcpy every 16 values: 2.4% of the CPU, serial, in a server decoding 8 streams of the test
// model.)
template <typename T, typename RowFn>
void eval_rows(mx::Stream stream, const mx::array& input, mx::array& out, RowFn row_fn) {
  out.set_data(mx::allocator::malloc(out.nbytes()));
  auto& encoder = mx::cpu::get_command_encoder(stream);
  encoder.set_input_array(input);
  encoder.set_output_array(out);
  encoder.dispatch([x = mx::array::unsafe_weak_copy(input),
                    out = mx::array::unsafe_weak_copy(out), row_fn]() mutable {
    const Contiguous cx(x);
    const int64_t n = x.shape(-1), rows = x.size() / n;
    const float* data = reinterpret_cast<const float*>(cx.data);
    T* o = out.data<T>();
    parallel_rows(rows, 1, rows * n, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) o[r] = row_fn(data + r * n, n);
    }, 1 << 14);
  });
}

}  // namespace

mx::array logsumexp(const mx::array& x, mx::StreamOrDevice s) {
  check_rows("logsumexp", x);
  auto stream = mx::to_stream(s);
  if (stream.device != mx::Device::cpu) return mx::logsumexp(x, -1, true, stream);
  auto shape = x.shape();
  shape.back() = 1;
  return mx::array(shape, mx::float32, std::make_shared<LogSumExp>(stream), {x});
}

namespace {

// log(sum(e^row)) of one row, as mx.logsumexp: the max first (8 lanes; max is exact, so the
// order does not matter, and a NaN is passed over as std::max passes it), then e^(x - max)
// summed in 16 lanes (the tail padded with -inf, which adds nothing), added up in lane order.
float logsumexp_row(const float* row, int64_t n) {
  const float inf = std::numeric_limits<float>::infinity();
  v8f top8 = v8f{} - inf;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    v8f v;
    std::memcpy(&v, row + i, sizeof v);
    top8 = v > top8 ? v : top8;
  }
  float top = -inf;
  for (int j = 0; j < 8; ++j) top = std::max(top, top8[j]);
  for (; i < n; ++i) top = std::max(top, row[i]);
  if (std::isinf(top)) return top;  // all -inf (a fully masked row), or an inf among the values
  // 16 lanes (the sums' order since this was written) as two vectors of 8, one exp8 each.
  const auto add = [top, inf](v8f& sum, v8f v) { sum += v == -inf ? v8f{} : exp8(v - top); };
  v8f low = {}, high = {};
  for (i = 0; i + 16 <= n; i += 16) {  // whole vectors: fixed-size copies, no call to memcpy
    v8f a, b;
    std::memcpy(&a, row + i, sizeof a);
    std::memcpy(&b, row + i + 8, sizeof b);
    add(low, a);  // masked values add nothing
    add(high, b);
  }
  if (i < n) {
    float tail[16];
    std::fill(tail, tail + 16, -inf);
    std::memcpy(tail, row + i, (n - i) * sizeof(float));
    v8f a, b;
    std::memcpy(&a, tail, sizeof a);
    std::memcpy(&b, tail + 8, sizeof b);
    add(low, a);
    add(high, b);
  }
  float total = 0;
  for (int j = 0; j < 8; ++j) total += low[j];
  for (int j = 0; j < 8; ++j) total += high[j];
  return top + std::log(total);
}

}  // namespace

void LogSumExp::eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) {
  eval_rows<float>(stream(), inputs[0], out, logsumexp_row);
}

void LogSumExp::eval_gpu(const std::vector<mx::array>&, mx::array&) {
  throw std::runtime_error("OsaurusLogSumExp runs on the CPU only");
}

mx::array argmax(const mx::array& x, mx::StreamOrDevice s) {
  check_rows("argmax", x);
  auto stream = mx::to_stream(s);
  if (stream.device != mx::Device::cpu) return mx::argmax(x, -1, false, stream);
  auto shape = x.shape();
  shape.pop_back();
  return mx::array(shape, mx::uint32, std::make_shared<ArgMax>(stream), {x});
}

namespace {

// mx.argmax of one row: the largest value and whether there is a NaN in one pass of 8 lanes
// (the max is exact, so its order does not matter), then the first index that holds it.
uint32_t argmax_row(const float* row, int64_t n) {
  v8f top8 = v8f{} - std::numeric_limits<float>::infinity();
  v8f nan8 = {};  // lanes that saw a NaN: 1
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    v8f v;
    std::memcpy(&v, row + i, sizeof v);
    top8 = v > top8 ? v : top8;
    nan8 = v != v ? v8f{} + 1 : nan8;
  }
  float top = top8[0];
  bool nan = false;
  for (int j = 0; j < 8; ++j) top = std::max(top, top8[j]), nan = nan || nan8[j] != 0;
  for (; i < n; ++i) top = std::max(top, row[i]), nan = nan || std::isnan(row[i]);
  for (i = 0; i < n; ++i)
    if (nan ? std::isnan(row[i]) : row[i] == top) return uint32_t(i);
  return 0;  // not reached: the row holds its max
}

}  // namespace

void ArgMax::eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) {
  eval_rows<uint32_t>(stream(), inputs[0], out, argmax_row);
}

void ArgMax::eval_gpu(const std::vector<mx::array>&, mx::array&) {
  throw std::runtime_error("OsaurusArgMax runs on the CPU only");
}

void RMSNorm::eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) {
  out.set_data(mx::allocator::malloc(out.nbytes()));
  auto& encoder = mx::cpu::get_command_encoder(stream());
  for (const auto& a : inputs) encoder.set_input_array(a);
  encoder.set_output_array(out);
  encoder.dispatch([x = mx::array::unsafe_weak_copy(inputs[0]),
                    w = has_weight_ ? mx::array::unsafe_weak_copy(inputs[1]) : mx::array(0.0f),
                    out = mx::array::unsafe_weak_copy(out), eps = eps_,
                    has_weight = has_weight_]() mutable {
    const Contiguous cx(x);
    const std::optional<Contiguous> cw = has_weight ? std::optional<Contiguous>(w) : std::nullopt;
    const int64_t D = x.shape(-1), rows = x.size() / D;
    with_float_type(x.dtype(), [&](auto in_tag) {
      with_float_type(out.dtype(), [&](auto out_tag) {
        using In = decltype(in_tag);
        using Out = decltype(out_tag);
        const auto* xs = reinterpret_cast<const In*>(cx.data);
        const auto* ws = cw ? reinterpret_cast<const Out*>(cw->data) : nullptr;
        parallel_rows(rows, 1, rows * D * 4, [&](int64_t r0, int64_t r1) {
          rms_norm_rows(xs, ws, out.data<Out>(), r0, r1, D, eps);
        });
      });
    });
  });
}

void RoPE::eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) {
  out.set_data(mx::allocator::malloc(out.nbytes()));
  auto& encoder = mx::cpu::get_command_encoder(stream());
  for (const auto& a : inputs) encoder.set_input_array(a);
  encoder.set_output_array(out);
  const bool has_freqs = inputs.size() == 3;
  encoder.dispatch([x = mx::array::unsafe_weak_copy(inputs[0]),
                    offset = mx::array::unsafe_weak_copy(inputs[1]),
                    freqs = has_freqs ? mx::array::unsafe_weak_copy(inputs[2]) : mx::array(0.0f),
                    out = mx::array::unsafe_weak_copy(out), dims = dims_,
                    traditional = traditional_, base = base_, scale = scale_,
                    has_freqs]() mutable {
    const Contiguous co(offset);
    const std::optional<Contiguous> cf = has_freqs ? std::optional<Contiguous>(freqs) : std::nullopt;
    const int64_t D = x.shape(-1), T = x.shape(-2), rows = x.size() / D;
    const int64_t n_offsets = offset.size();
    const RotaryTable table(
        reinterpret_cast<const int32_t*>(co.data), n_offsets, T, dims / 2, base, scale,
        cf ? reinterpret_cast<const float*>(cf->data) : nullptr);
    const int64_t rows_per_batch = rows / x.shape(0);
    with_float_type(x.dtype(), [&](auto tag) {
      using T_ = decltype(tag);
      parallel_rows(rows, 1, rows * D * 4, [&](int64_t r0, int64_t r1) {
        rope_rows<T_>(x, table, n_offsets > 1, rows_per_batch, dims, traditional,
                      out.data<T_>(), r0, r1);
      });
    });
  });
}

void RMSNorm::eval_gpu(const std::vector<mx::array>&, mx::array&) {
  throw std::runtime_error("OsaurusRMSNorm runs on the CPU only");
}

void RoPE::eval_gpu(const std::vector<mx::array>&, mx::array&) {
  throw std::runtime_error("OsaurusRoPE runs on the CPU only");
}

bool RMSNorm::is_equivalent(const mx::Primitive& other) const {
  const auto& o = static_cast<const RMSNorm&>(other);
  return eps_ == o.eps_ && has_weight_ == o.has_weight_;
}

bool RoPE::is_equivalent(const mx::Primitive& other) const {
  const auto& o = static_cast<const RoPE&>(other);
  return dims_ == o.dims_ && traditional_ == o.traditional_ && base_ == o.base_ &&
         scale_ == o.scale_;
}

}  // namespace osaurus
