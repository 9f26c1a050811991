// The op and primitive of attention.h.
#include "attention.h"

#include <cmath>
#include <limits>
#include <vector>

#include "array_utils.h"
#include "mlx/backend/cpu/encoder.h"
#include "parallel.h"
#include "vector_math.h"

namespace osaurus {

namespace {

// A 4-D input read in place through its strides (a KV cache is a strided view of a larger
// buffer); copied only when its last axis is not dense.
template <typename T>
struct Strided4 {
  const T* data;
  int64_t stride[4];
  std::optional<Contiguous> copy;

  explicit Strided4(const mx::array& a) {
    if (a.strides().back() == 1 || a.shape(-1) == 1) {
      data = a.data<T>();
      for (int i = 0; i < 4; ++i) stride[i] = a.strides()[i];
    } else {
      copy.emplace(a);
      data = reinterpret_cast<const T*>(copy->data);
      int64_t s = 1;
      for (int i = 3; i >= 0; --i) {
        stride[i] = s;
        s *= a.shape(i);
      }
    }
  }

  const T* at(int64_t i0, int64_t i1, int64_t i2) const {
    return data + i0 * stride[0] + i1 * stride[1] + i2 * stride[2];
  }
};

typedef float v8f __attribute__((vector_size(32)));

inline float dot(const float* a, const float* b, int64_t n) {
  int64_t i = 0;
  v8f acc = {};
  for (; i + 8 <= n; i += 8) {
    v8f x, y;
    std::memcpy(&x, a + i, sizeof x);
    std::memcpy(&y, b + i, sizeof y);
    acc += x * y;
  }
  float sum = 0;
  for (int j = 0; j < 8; ++j) sum += acc[j];
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

inline void axpy(float w, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += w * x[i];
}

// From this much work (multiply-adds) attention takes both cores. parallel_rows' default bar
// is the matmuls' one; with it, decoding a batch of 8 at ~300 tokens of context attended on
// one core while the other waited (BatchGenerator on the 135M test model, AVX2: 107-125 ->
// 137-155 tokens/s at 1 << 18; 1 << 16 and 1 << 20 measured no better).
constexpr int64_t kAttentionMinWorkPerThread = 1 << 18;

// Query positions per unit of work (see eval_cpu).
constexpr int64_t kQueryBlock = 16;

// row[0, n) <- softmax(row[0, n)); -inf entries (masked) get 0, and so does a row that is
// all -inf (a query that sees no key). A key's weight must not depend on where the row starts:
// in a batch, mlx-lm pads shorter prompts on the left (masked keys before the real ones), and
// a sequence must get the same numbers alone and batched. So every entry goes through the same
// exp16 (the tail too, padded), and the sum is taken in key order, where masked zeros add
// nothing.
inline void softmax(float* row, int64_t n) {
  const float minus_inf = -std::numeric_limits<float>::infinity();
  float top = minus_inf;
  for (int64_t s = 0; s < n; ++s) top = std::max(top, row[s]);
  if (top == minus_inf) {
    std::fill(row, row + n, 0.0f);
    return;
  }
  for (int64_t s = 0; s < n; s += 16) {
    const int64_t m = std::min<int64_t>(16, n - s);
    v16f x = v16f{} + minus_inf;
    std::memcpy(&x, row + s, m * sizeof(float));
    const v16f e = x == minus_inf ? v16f{} : exp16(x - top);
    std::memcpy(row + s, &e, m * sizeof(float));
  }
  float total = 0;
  for (int64_t s = 0; s < n; ++s) total += row[s];
  const float norm = 1.0f / total;
  for (int64_t s = 0; s < n; ++s) row[s] *= norm;
}

}  // namespace

mx::array attention_mask_input(
    const char* op, const mx::array& mask, int B, int H, int L, int S, mx::Stream stream) {
  if (mask.dtype() != mx::bool_ && !mx::issubdtype(mask.dtype(), mx::floating))
    fail(op, "mask must be boolean or floating point, got ", mask.dtype());
  const auto m = mask.dtype() == mx::bool_ ? mask : mx::astype(mask, mx::float32, stream);
  try {
    return mx::broadcast_to(m, {B, H, L, S}, stream);
  } catch (const std::invalid_argument&) {
    fail(op, "mask ", shape_of(mask), " does not broadcast to (", B, ", ", H, ", ", L, ", ", S,
         ")");
  }
}

mx::array attention(
    const mx::array& q, const mx::array& k, const mx::array& v, float scale, bool causal,
    const std::optional<mx::array>& mask, mx::StreamOrDevice s) {
  const char* op = "attention";
  if (q.ndim() != 4 || k.ndim() != 4 || v.ndim() != 4)
    fail(op, "q, k and v must be 4-D (batch, heads, positions, dims), got ", shape_of(q), ", ",
         shape_of(k), " and ", shape_of(v));
  if (q.dtype() != mx::float32 || k.dtype() != mx::float32 || v.dtype() != mx::float32)
    fail(op, "q, k and v must be float32, got ", q.dtype(), ", ", k.dtype(), " and ", v.dtype());
  const int B = q.shape(0), H = q.shape(1), L = q.shape(2), D = q.shape(3);
  const int Hkv = k.shape(1), S = k.shape(2);
  if (k.shape(0) != B || v.shape(0) != B || v.shape(1) != Hkv || v.shape(2) != S ||
      k.shape(3) != D)
    fail(op, "k ", shape_of(k), " and v ", shape_of(v), " do not fit q ", shape_of(q));
  if (Hkv == 0 || H % Hkv != 0)
    fail(op, "q's ", H, " heads are not a multiple of k's ", Hkv);
  if (causal && mask) fail(op, "give a mask or causal, not both");

  auto stream = mx::to_stream(s);
  std::vector<mx::array> inputs{q, k, v};
  if (mask) inputs.push_back(attention_mask_input(op, *mask, B, H, L, S, stream));
  return mx::array(
      {B, H, L, int(v.shape(3))}, mx::float32,
      std::make_shared<Attention>(stream, scale, causal, mask.has_value()), std::move(inputs));
}

void attention_into(
    const mx::array& q, const mx::array& k, const mx::array& v, const mx::array* mask,
    float scale, bool causal, bool heads_last, float* out) {
  const int64_t B = q.shape(0), H = q.shape(1), L = q.shape(2), D = q.shape(3);
  const int64_t Hkv = k.shape(1), S = k.shape(2), Dv = v.shape(3), group = H / Hkv;
  const Strided4<float> qs(q), ks(k), vs(v);
  const bool has_mask = mask != nullptr, bool_mask = has_mask && mask->dtype() == mx::bool_;
  const int64_t* ms = has_mask ? mask->strides().data() : nullptr;
  const float minus_inf = -std::numeric_limits<float>::infinity();
  // One unit of work per (sequence, key/value head, block of query positions): its keys
  // and values are read once for the `group` query heads that share them; a prompt's
  // positions split into blocks so that all cores get work.
  const int64_t blocks = (L + kQueryBlock - 1) / kQueryBlock;
  parallel_rows(B * Hkv * blocks, 1, B * H * L * S * (D + Dv), [&](int64_t u0, int64_t u1) {
    const int64_t most_rows = group * std::min<int64_t>(L, kQueryBlock);
    std::vector<float> scores(most_rows * S), acc(most_rows * Dv);
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t b = u / (Hkv * blocks), g = u / blocks % Hkv, l0 = u % blocks * kQueryBlock;
      const int64_t n = std::min<int64_t>(kQueryBlock, L - l0), rows = group * n;
      // Keys a position sees: all, or (causal) up to S - L + l.
      auto seen = [&](int64_t l) { return causal ? std::min(S, S - L + l + 1) : S; };
      for (int64_t s = 0; s < S; ++s) {
        const float* key = ks.at(b, g, s);
        for (int64_t r = 0; r < group; ++r)
          for (int64_t i = 0; i < n; ++i)
            if (s < seen(l0 + i))
              scores[(r * n + i) * S + s] = scale * dot(qs.at(b, g * group + r, l0 + i), key, D);
      }
      for (int64_t r = 0; r < group; ++r) {
        const int64_t h = g * group + r;
        for (int64_t i = 0; i < n; ++i) {
          const int64_t l = l0 + i, valid = seen(l);
          float* row = scores.data() + (r * n + i) * S;
          if (has_mask) {
            const int64_t base = b * ms[0] + h * ms[1] + l * ms[2];
            for (int64_t s = 0; s < valid; ++s) {
              const int64_t at = base + s * ms[3];
              if (bool_mask) {
                if (!mask->data<bool>()[at]) row[s] = minus_inf;
              } else {
                row[s] += mask->data<float>()[at];
              }
            }
          }
          softmax(row, valid);
          std::fill(row + valid, row + S, 0.0f);
        }
      }
      std::fill(acc.begin(), acc.begin() + rows * Dv, 0.0f);
      for (int64_t s = 0; s < S; ++s) {
        const float* value = vs.at(b, g, s);
        for (int64_t i = 0; i < rows; ++i) {
          const float w = scores[i * S + s];
          if (w != 0.0f) axpy(w, value, acc.data() + i * Dv, Dv);
        }
      }
      for (int64_t r = 0; r < group; ++r)
        for (int64_t i = 0; i < n; ++i) {
          const int64_t h = g * group + r, l = l0 + i;
          std::memcpy(out + (heads_last ? (b * L + l) * H + h : (b * H + h) * L + l) * Dv,
                      acc.data() + (r * n + i) * Dv, Dv * sizeof(float));
        }
    }
  }, kAttentionMinWorkPerThread);
}

void Attention::eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) {
  out.set_data(mx::allocator::malloc(out.nbytes()));
  auto& encoder = mx::cpu::get_command_encoder(stream());
  for (const auto& a : inputs) encoder.set_input_array(a);
  encoder.set_output_array(out);
  encoder.dispatch([q = mx::array::unsafe_weak_copy(inputs[0]),
                    k = mx::array::unsafe_weak_copy(inputs[1]),
                    v = mx::array::unsafe_weak_copy(inputs[2]),
                    mask = has_mask_ ? mx::array::unsafe_weak_copy(inputs[3]) : mx::array(0.0f),
                    out = mx::array::unsafe_weak_copy(out), scale = scale_, causal = causal_,
                    has_mask = has_mask_]() mutable {
    attention_into(q, k, v, has_mask ? &mask : nullptr, scale, causal, false,
                   out.data<float>());
  });
}

void Attention::eval_gpu(const std::vector<mx::array>&, mx::array&) {
  throw std::runtime_error("OsaurusAttention runs on the CPU only");
}

bool Attention::is_equivalent(const mx::Primitive& other) const {
  const auto& o = static_cast<const Attention&>(other);
  return scale_ == o.scale_ && causal_ == o.causal_ && has_mask_ == o.has_mask_;
}

std::vector<mx::Shape> Attention::output_shapes(const std::vector<mx::array>& inputs) {
  const auto& q = inputs[0];
  return {{q.shape(0), q.shape(1), q.shape(2), inputs[2].shape(3)}};
}

}  // namespace osaurus
