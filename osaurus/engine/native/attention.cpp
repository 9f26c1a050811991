// The op and primitive of attention.h.
#include "attention.h"

#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "array_utils.h"
#include "half.h"
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

typedef float v4f __attribute__((vector_size(16)));

inline v8f load8(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline v8f load8(const Half* p) {
  v8f v;
#if defined(__F16C__)
  const __m256 f = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  std::memcpy(&v, &f, sizeof v);
#else
  for (int i = 0; i < 8; ++i) v[i] = to_float(p[i]);
#endif
  return v;
}

// The lanes of a, b, c, d each added up, as {sum a, sum b, sum c, sum d}, by the same tree for
// every lane set: a key's score must not depend on which others share its pass (see softmax).
inline v4f sum_lanes4(v8f a, v8f b, v8f c, v8f d) {
  const auto halves = [](v8f x) -> v4f {
    return __builtin_shufflevector(x, x, 0, 1, 2, 3) + __builtin_shufflevector(x, x, 4, 5, 6, 7);
  };
  const v4f sa = halves(a), sb = halves(b), sc = halves(c), sd = halves(d);
  const auto pairs = [](v4f x, v4f y) -> v4f {  // {x0 + x2, y0 + y2, x1 + x3, y1 + y3}
    return __builtin_shufflevector(x, y, 0, 4, 1, 5) + __builtin_shufflevector(x, y, 2, 6, 3, 7);
  };
  const v4f ab = pairs(sa, sb), cd = pairs(sc, sd);
  return __builtin_shufflevector(ab, cd, 0, 1, 4, 5) + __builtin_shufflevector(ab, cd, 2, 3, 6, 7);
}

// Keys (and values) taken together by all the query rows of a unit of work, so that they are
// read from the L1 cache after the first row: 64 keys of 64 floats are 16 KB.
constexpr int64_t kKeyTile = 64;

// How far ahead float_rows fetches the next keys (16 and 32 measured the same).
constexpr int64_t kPrefetchRows = 16;

// Up to kRowsAtOnce query rows (of one key/value head) go through the keys together: each key
// and value vector loaded is used by all of them. Every (row, key) pair still goes through the
// same operations in the same order whatever the rows beside it, so a sequence gets the same
// bits alone and batched. With the 4-key dot products and the softmax below, a decode step's
// attention for 8 sequences of ~200 tokens (the 135M model's heads, one thread, Zen 1) went
// from 538 to 166 µs a layer (185 with a padding mask), and a 1,024-token prompt's from 119 to
// 35 ms a layer.
constexpr int kRowsAtOnce = 3;

// Keys or values of one head (float, or Half in a float16 KV cache): key s at
// base + s * stride.
template <typename T>
struct Rows {
  const T* base;
  int64_t stride;
  const T* operator()(int64_t s) const { return base + s * stride; }
};

// scores[r][s] = scale * q[r] . key(s) for s in [s0, s1), R rows, D a multiple of 8: 4 keys at
// a time, whose sums reduce together (sum_lanes4) rather than each in a horizontal sum of its
// own, the slow part of a 64-wide dot product.
template <int R>
inline void score_keys(const float* const* q, Rows<float> key, int64_t s0, int64_t s1,
                       int64_t D, float scale, float* const* scores) {
  for (int64_t s = s0; s < s1; s += 4) {
    // The last keys of an odd count: the last one again in the spare places (same tree).
    const float* k[4];
    for (int j = 0; j < 4; ++j) k[j] = key(std::min(s + j, s1 - 1));
    v8f a[R][4] = {};
    for (int64_t i = 0; i < D; i += 8) {
      v8f kv[4];
      for (int j = 0; j < 4; ++j) kv[j] = load8(k[j] + i);
      for (int r = 0; r < R; ++r) {
        const v8f x = load8(q[r] + i);
        for (int j = 0; j < 4; ++j) a[r][j] += x * kv[j];
      }
    }
    const int64_t m = std::min<int64_t>(4, s1 - s);
    for (int r = 0; r < R; ++r) {
      const v4f d = sum_lanes4(a[r][0], a[r][1], a[r][2], a[r][3]);
      for (int j = 0; j < m; ++j) scores[r][s + j] = scale * d[j];
    }
  }
}

// For head sizes that are not a multiple of 8.
inline void score_keys_any(const float* q, Rows<float> key, int64_t s0, int64_t s1, int64_t D,
                           float scale, float* scores) {
  for (int64_t s = s0; s < s1; ++s) {
    float sum = 0;
    for (int64_t i = 0; i < D; ++i) sum += q[i] * key(s)[i];
    scores[s] = scale * sum;
  }
}

// acc[r][0, Dv) += sum over s in [s0, s1) of w[r][s] * value(s), in the order of s, R rows; 32
// columns at a time stay in registers across the keys. With a mask (Masked), a key that no row
// weighs is skipped: its value may be anything. Without one a zero weight is a causal query's
// key beyond its position, a real value, and 0 * value adds nothing.
template <int R, bool Masked>
inline void add_values(const float* const* w, Rows<float> value, int64_t s0, int64_t s1,
                       int64_t Dv, float* const* acc) {
  // Which keys some row weighs, found 8 at a time (rows of w are padded to read past s1).
  int32_t weighed[kKeyTile];
  if constexpr (Masked) {
    for (int64_t s = s0; s < s1; s += 8) {
      v8i any = {};
      for (int r = 0; r < R; ++r) any |= load8(w[r] + s) != 0.0f;
      std::memcpy(weighed + (s - s0), &any, std::min<int64_t>(8, s1 - s) * sizeof(int32_t));
    }
  }
  int64_t c = 0;
  for (; c + 32 <= Dv; c += 32) {
    v8f a[R][4];
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < 4; ++j) a[r][j] = load8(acc[r] + c + 8 * j);
    for (int64_t s = s0; s < s1; ++s) {
      if (Masked && !weighed[s - s0]) continue;
      v8f v[4];
      for (int j = 0; j < 4; ++j) v[j] = load8(value(s) + c + 8 * j);
      for (int r = 0; r < R; ++r)
        for (int j = 0; j < 4; ++j) a[r][j] += w[r][s] * v[j];
    }
    for (int r = 0; r < R; ++r) std::memcpy(acc[r] + c, a[r], sizeof a[r]);
  }
  if (c == Dv) return;
  for (int64_t s = s0; s < s1; ++s)
    if (!Masked || weighed[s - s0])
      for (int r = 0; r < R; ++r)
        for (int64_t i = c; i < Dv; ++i) acc[r][i] += w[r][s] * value(s)[i];
}

// Keys (or values) [s0, s1) as float32 rows, the first at 0: a float cache's own, in place; a
// float16 cache's converted into `tile` once for all the query rows that read them. (Converting
// inside the dot products took the registers their sums need: 1.6x slower on AVX2.) The rows
// kPrefetchRows ahead are fetched meanwhile: a perf profile of batch-8 decoding on Zen 3 had
// ~40% of attention's time waiting on these loads, with the cache in L3 as much as from memory
// (the prefetchers did not keep up with rows read 128 bytes at a time). With the prefetch, 30
// layers of decode attention at 8 sequences took 0.82x the time at 200 keys, 0.87x at 1,000.
inline Rows<float> float_rows(Rows<float> rows, int64_t s0, int64_t, int64_t, float*) {
  return {rows(s0), rows.stride};
}

inline Rows<float> float_rows(Rows<Half> rows, int64_t s0, int64_t s1, int64_t width,
                              float* tile) {
  for (int64_t s = s0; s < s1; ++s) {
    const Half* from = rows(s);
    const char* ahead = reinterpret_cast<const char*>(rows(s + kPrefetchRows));
    __builtin_prefetch(ahead);  // a row of 64 halves is two cache lines
    __builtin_prefetch(ahead + 64);
    float* to = tile + (s - s0) * width;
    int64_t i = 0;
    for (; i + 8 <= width; i += 8) {
      const v8f x = load8(from + i);
      std::memcpy(to + i, &x, sizeof x);
    }
    for (; i < width; ++i) to[i] = to_float(from[i]);
  }
  return {tile, width};
}

// fn.template operator()<R>(first) for rows [first, first + R) of [0, rows), R at most
// kRowsAtOnce (a compile-time count, so that the rows' sums stay in registers).
template <typename Fn>
inline void in_row_chunks(int64_t rows, Fn&& fn) {
  static_assert(kRowsAtOnce == 3);
  int64_t first = 0;
  for (; first + 3 <= rows; first += 3) fn.template operator()<3>(first);
  if (rows - first == 2) fn.template operator()<2>(first);
  if (rows - first == 1) fn.template operator()<1>(first);
}

// From this much work (multiply-adds) attention takes both cores. parallel_rows' default bar
// is the matmuls' one; with it, decoding a batch of 8 at ~300 tokens of context attended on
// one core while the other waited (BatchGenerator on the 135M test model, AVX2: 107-125 ->
// 137-155 tokens/s at 1 << 18; 1 << 16 and 1 << 20 measured no better).
constexpr int64_t kAttentionMinWorkPerThread = 1 << 18;

// Query positions per unit of work (see eval_cpu).
constexpr int64_t kQueryBlock = 16;

// row[s] = op(row[s], mask[s * stride]) for s in [0, n); a dense mask row (stride 1, the usual
// case) in a loop the compiler vectorizes.
template <typename T, typename Op>
inline void apply_mask(float* row, int64_t n, const T* mask, int64_t stride, Op op) {
  if (stride == 1) {
    for (int64_t s = 0; s < n; ++s) row[s] = op(row[s], mask[s]);
  } else {
    for (int64_t s = 0; s < n; ++s) row[s] = op(row[s], mask[s * stride]);
  }
}

// row[0, n) <- softmax(row[0, n)); -inf entries (masked) get 0, and so does a row that is
// all -inf (a query that sees no key). A key's weight must not depend on where the row starts:
// in a batch, mlx-lm pads shorter prompts on the left (masked keys before the real ones), and
// a sequence must get the same numbers alone and batched. So every entry goes through the same
// exponential (the tail too, padded), and the sum runs in 8 lanes counted from the first key
// with a weight: masked zeros before it add nothing, and the keys after it fall in the same
// lanes and the same tree however many there are before. (A sum in key order, one add after
// another, is just as stable but a chain of dependent adds, ~4 cycles a key.)
inline void softmax(float* row, int64_t n) {
  const float minus_inf = -std::numeric_limits<float>::infinity();
  v8f top8 = v8f{} + minus_inf;
  int64_t s = 0;
  for (; s + 8 <= n; s += 8) {
    const v8f x = load8(row + s);
    top8 = x > top8 ? x : top8;
  }
  float top = minus_inf;
  for (int j = 0; j < 8; ++j) top = std::max(top, top8[j]);
  for (; s < n; ++s) top = std::max(top, row[s]);
  if (top == minus_inf) {
    std::fill(row, row + n, 0.0f);
    return;
  }
  const auto exp_from_top = [top, minus_inf](v8f x) {
    return x == minus_inf ? v8f{} : exp8(x - top);
  };
  for (s = 0; s + 8 <= n; s += 8) {  // whole vectors: fixed-size copies, no call to memcpy
    const v8f x = exp_from_top(load8(row + s));
    std::memcpy(row + s, &x, sizeof x);
  }
  if (s < n) {
    v8f x = v8f{} + minus_inf;
    std::memcpy(&x, row + s, (n - s) * sizeof(float));
    x = exp_from_top(x);
    std::memcpy(row + s, &x, (n - s) * sizeof(float));
  }
  int64_t first = 0;
  while (row[first] == 0.0f) ++first;  // there is one: the top's weight is 1
  v8f lanes = {};
  for (s = first; s + 8 <= n; s += 8) lanes += load8(row + s);
  v8f tail = {};
  std::memcpy(&tail, row + s, (n - s) * sizeof(float));
  lanes += tail;
  const v4f sum4 = __builtin_shufflevector(lanes, lanes, 0, 1, 2, 3) +
                   __builtin_shufflevector(lanes, lanes, 4, 5, 6, 7);
  const float total = (sum4[0] + sum4[2]) + (sum4[1] + sum4[3]);
  const float norm = 1.0f / total;
  for (s = 0; s < n; ++s) row[s] *= norm;
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
  check_attention_dtypes(op, q, k, v);
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

namespace {

// attention_into for keys and values stored as T.
template <typename T>
void attend(const mx::array& q, const mx::array& k, const mx::array& v, const mx::array* mask,
            float scale, bool causal, bool heads_last, float* out, int64_t S) {
  const int64_t B = q.shape(0), H = q.shape(1), L = q.shape(2), D = q.shape(3);
  const int64_t Hkv = k.shape(1), Dv = v.shape(3), group = H / Hkv;
  const Strided4<float> qs(q);
  const Strided4<T> ks(k), vs(v);
  const bool has_mask = mask != nullptr, bool_mask = has_mask && mask->dtype() == mx::bool_;
  const int64_t* ms = has_mask ? mask->strides().data() : nullptr;
  const float minus_inf = -std::numeric_limits<float>::infinity();
  // One unit of work per (sequence, key/value head, block of query positions): its keys
  // and values are read once for the `group` query heads that share them; a prompt's
  // positions split into blocks so that all cores get work.
  const int64_t blocks = (L + kQueryBlock - 1) / kQueryBlock;
  parallel_rows(B * Hkv * blocks, 1, B * H * L * S * (D + Dv), [&](int64_t u0, int64_t u1) {
    const int64_t most_rows = group * std::min<int64_t>(L, kQueryBlock);
    thread_local std::vector<float> scores_reused, acc_reused, tile_reused;
    const Scratch<float> scores(scores_reused, most_rows * S + 8);  // + 8: see add_values
    std::fill(scores.data() + most_rows * S, scores.data() + most_rows * S + 8, 0.0f);
    const Scratch<float> acc(acc_reused, most_rows * Dv);
    const Scratch<float> tile(tile_reused,
                              std::is_same_v<T, float> ? 0 : kKeyTile * std::max(D, Dv));
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t b = u / (Hkv * blocks), g = u / blocks % Hkv, l0 = u % blocks * kQueryBlock;
      const int64_t n = std::min<int64_t>(kQueryBlock, L - l0), rows = group * n;
      // Keys a position sees: all, or (causal) up to S - L + l.
      auto seen = [&](int64_t l) { return causal ? std::min(S, S - L + l + 1) : S; };
      const int64_t keys_seen = seen(l0 + n - 1);  // by the block's last position, the most
      const Rows<T> key{ks.at(b, g, 0), ks.stride[2]}, value{vs.at(b, g, 0), vs.stride[2]};
      // Row r * n + i of scores and acc: query head g * group + r at position l0 + i.
      const auto position = [&](int64_t row) { return l0 + row % n; };
      // Keys and values by tiles of kKeyTile, numbered from the tile's first in the calls below.
      for (int64_t s0 = 0; s0 < keys_seen; s0 += kKeyTile) {
        const Rows<float> keys =
            float_rows(key, s0, std::min(s0 + kKeyTile, keys_seen), D, tile.data());
        in_row_chunks(rows, [&]<int R>(int64_t first) {
          const float* q[R];
          float* to[R];
          int64_t s1 = s0;
          for (int j = 0; j < R; ++j) {
            q[j] = qs.at(b, g * group + (first + j) / n, position(first + j));
            to[j] = scores.data() + (first + j) * S + s0;
            s1 = std::max(s1, std::min(s0 + kKeyTile, seen(position(first + j))));
          }
          if (D % 8 == 0) return score_keys<R>(q, keys, 0, s1 - s0, D, scale, to);
          for (int j = 0; j < R; ++j) score_keys_any(q[j], keys, 0, s1 - s0, D, scale, to[j]);
        });
      }
      for (int64_t r = 0; r < group; ++r) {
        const int64_t h = g * group + r;
        for (int64_t i = 0; i < n; ++i) {
          const int64_t l = l0 + i, valid = seen(l);
          float* row = scores.data() + (r * n + i) * S;
          if (has_mask) {
            const int64_t base = b * ms[0] + h * ms[1] + l * ms[2];
            if (bool_mask)
              apply_mask(row, valid, mask->data<bool>() + base, ms[3],
                         [minus_inf](float x, bool keep) { return keep ? x : minus_inf; });
            else
              apply_mask(row, valid, mask->data<float>() + base, ms[3],
                         [](float x, float add) { return x + add; });
          }
          softmax(row, valid);
          std::fill(row + valid, row + S, 0.0f);
        }
      }
      std::fill(acc.data(), acc.data() + rows * Dv, 0.0f);
      for (int64_t s0 = 0; s0 < keys_seen; s0 += kKeyTile) {
        const int64_t s1 = std::min(s0 + kKeyTile, keys_seen);
        const Rows<float> values = float_rows(value, s0, s1, Dv, tile.data());
        in_row_chunks(rows, [&]<int R>(int64_t first) {
          const float* w[R];
          float* to[R];
          for (int j = 0; j < R; ++j) {
            w[j] = scores.data() + (first + j) * S + s0;
            to[j] = acc.data() + (first + j) * Dv;
          }
          if (has_mask)
            add_values<R, true>(w, values, 0, s1 - s0, Dv, to);
          else
            add_values<R, false>(w, values, 0, s1 - s0, Dv, to);
        });
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

}  // namespace

void attention_into(
    const mx::array& q, const mx::array& k, const mx::array& v, const mx::array* mask,
    float scale, bool causal, bool heads_last, float* out, int64_t keys) {
  const int64_t S = keys ? keys : k.shape(2);
  if (k.dtype() == mx::float16)
    attend<Half>(q, k, v, mask, scale, causal, heads_last, out, S);
  else
    attend<float>(q, k, v, mask, scale, causal, heads_last, out, S);
}

void check_attention_dtypes(const char* op, const mx::array& q, const mx::array& k,
                            const mx::array& v) {
  if (q.dtype() != mx::float32 || k.dtype() != v.dtype() ||
      (k.dtype() != mx::float32 && k.dtype() != mx::float16))
    fail(op, "q must be float32 and k and v both float32 or both float16 (a float16 KV cache), "
         "got ", q.dtype(), ", ", k.dtype(), " and ", v.dtype());
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
