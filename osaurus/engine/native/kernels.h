// CPU kernels for MLX's affine-quantized weights: x @ dequant(w).T and friends.
//
// MLX packs a quantized matrix row by row: each uint32 holds 32/bits values, the first in the
// lowest bits, and each group of `group_size` values along a row has a scale and a bias
// (value = scale * q + bias). MLX's own CPU kernel (mlx/backend/cpu/quantized.cpp) is a scalar
// loop on one thread that walks every weight again for each row of x; these kernels read each
// weight once per call for all rows of x, use SIMD, and run on all cores (see parallel.h).
//
// Implementations, chosen when the extension is built: AVX2+FMA+F16C on x86-64, and a portable
// one written with GCC/Clang vector extensions (the compiler emits NEON on arm64, SSE
// elsewhere). The portable and the AVX2 float kernels accumulate x in float32, so results match
// MLX's reference to float32 rounding; the AVX2 int8 kernels (the default when decoding) first
// round x to int8 per weight group, as llama.cpp does, and are exact given that rounding.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "half.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define OSU_HAVE_AVX2 1
#else
#define OSU_HAVE_AVX2 0
#endif

namespace osaurus {

enum class ScaleType { F32, F16, BF16 };

// A quantized matrix as MLX stores it: `rows` x `cols` logical values, packed along a row.
struct QuantizedMatrix {
  const uint8_t* packed;  // rows * cols * bits / 8 bytes
  const void* scales;     // rows * (cols / group_size)
  const void* biases;
  ScaleType scale_type;
  int64_t rows, cols;
  int bits, group_size;
  bool r16 = false;  // repacked 16 rows to a vector (kernels_r16.h), not MLX's layout

  int64_t row_bytes() const { return cols * bits / 8; }
  int64_t groups() const { return cols / group_size; }
  float scale(int64_t i) const { return load(scales, i); }
  float bias(int64_t i) const { return load(biases, i); }

 private:
  float load(const void* p, int64_t i) const {
    switch (scale_type) {
      case ScaleType::F32:
        return static_cast<const float*>(p)[i];
      case ScaleType::F16:
        return f16_to_float(static_cast<const uint16_t*>(p)[i]);
      default:
        return bf16_to_float(static_cast<const uint16_t*>(p)[i]);
    }
  }
};

// ------------------------------------------------------------------------------------------
// Portable kernels (vector extensions)

typedef float v8f __attribute__((vector_size(32)));

// The 32 values of one block of a row, in their natural order.
inline void unpack_block(const uint8_t* p, int bits, float* q) {
  if (bits == 4) {
    for (int j = 0; j < 16; ++j) {
      q[2 * j] = float(p[j] & 0x0f);
      q[2 * j + 1] = float(p[j] >> 4);
    }
  } else {
    for (int j = 0; j < 32; ++j) q[j] = float(p[j]);
  }
}

// out[m * ldo + n] = x[m, :] . dequant(W[n, :]) for n in [n0, n1), all M rows of x (M x K,
// row-major). Rows of x are taken 8 at a time so that a block of weights, once unpacked, is
// used by every row.
inline void qmm_t_generic(
    const float* x, int64_t M, const QuantizedMatrix& W, int64_t n0, int64_t n1, float* out,
    int64_t ldo) {
  const int64_t K = W.cols, G = W.group_size, groups = W.groups();
  const int block_bytes = 32 * W.bits / 8;
  alignas(32) float q[32];
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* row = W.packed + n * W.row_bytes();
    for (int64_t m0 = 0; m0 < M; m0 += 8) {
      const int64_t mt = std::min<int64_t>(8, M - m0);
      v8f acc[8] = {};
      for (int64_t g = 0; g < groups; ++g) {
        const float s = W.scale(n * groups + g), b = W.bias(n * groups + g);
        for (int64_t k = g * G; k < (g + 1) * G; k += 32) {
          unpack_block(row + k / 32 * block_bytes, W.bits, q);
          v8f w[4];
          for (int i = 0; i < 4; ++i) {
            v8f qi;
            std::memcpy(&qi, q + 8 * i, sizeof qi);
            w[i] = qi * s + b;
          }
          for (int64_t m = 0; m < mt; ++m) {
            const float* xr = x + (m0 + m) * K + k;
            for (int i = 0; i < 4; ++i) {
              v8f xi;
              std::memcpy(&xi, xr + 8 * i, sizeof xi);
              acc[m] += w[i] * xi;
            }
          }
        }
      }
      for (int64_t m = 0; m < mt; ++m) {
        float sum = 0;
        for (int i = 0; i < 8; ++i) sum += acc[m][i];
        out[(m0 + m) * ldo + n] = sum;
      }
    }
  }
}

// Rows [r0, r1) of dequant(W), as float32, into out (row-major, W.cols wide).
inline void dequantize_generic(const QuantizedMatrix& W, int64_t r0, int64_t r1, float* out) {
  const int64_t K = W.cols, G = W.group_size, groups = W.groups();
  const int block_bytes = 32 * W.bits / 8;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = W.packed + r * W.row_bytes();
    for (int64_t g = 0; g < groups; ++g) {
      const float s = W.scale(r * groups + g), b = W.bias(r * groups + g);
      for (int64_t k = g * G; k < (g + 1) * G; k += 32) {
        float* o = out + r * K + k;
        unpack_block(row + k / 32 * block_bytes, W.bits, o);
        for (int i = 0; i < 32; ++i) o[i] = o[i] * s + b;
      }
    }
  }
}

// out[m, n] = x[m, :] . dequant(W)[:, n] where W is K x N (not transposed, groups run along n):
// columns [n0, n1) of out. Each row of W is dequantized once and added into every row of out.
inline void qmm_n_generic(
    const float* x, int64_t M, const QuantizedMatrix& W, int64_t n0, int64_t n1, float* out) {
  const int64_t K = W.rows, N = W.cols, G = W.group_size, groups = W.groups();
  const int block_bytes = 32 * W.bits / 8;
  alignas(32) float q[32];
  for (int64_t m = 0; m < M; ++m) std::fill(out + m * N + n0, out + m * N + n1, 0.0f);
  for (int64_t k = 0; k < K; ++k) {
    const uint8_t* row = W.packed + k * W.row_bytes();
    for (int64_t n = n0; n < n1; n += 32) {  // n0 and n1 are multiples of the group size
      const int64_t g = n / G;
      const float s = W.scale(k * groups + g), b = W.bias(k * groups + g);
      unpack_block(row + n / 32 * block_bytes, W.bits, q);
      for (int i = 0; i < 32; ++i) q[i] = q[i] * s + b;
      for (int64_t m = 0; m < M; ++m) {
        const float xv = x[m * K + k];
        float* o = out + m * N + n;
        for (int i = 0; i < 32; ++i) o[i] += xv * q[i];
      }
    }
  }
}

// ------------------------------------------------------------------------------------------
// AVX2 kernels

#if OSU_HAVE_AVX2

// The order in which the AVX2 kernel unpacks a 4-bit block: the low nibbles of its 16 bytes
// are values 0, 2, ..., 30 and the high nibbles 1, 3, ..., 31. Rather than shuffle the weights
// back into order for every row of the matrix, x is permuted once per call to match.
inline int nibble_order(int i) {
  const int quarter = i / 8, j = i % 8;  // 4 vectors of 8 lanes
  return (quarter >= 2 ? 1 : 0) + 2 * j + (quarter % 2) * 16;
}

// x (M x K, row-major) repacked for the AVX2 kernels: block by block (32 values), the M rows of
// a block side by side, so the rows a kernel reads together are adjacent in memory (rows of x
// a power of two apart would otherwise share L1 cache sets). For 4-bit weights each block is
// also put in nibble order. xsum gets each row's sum of x per group (M x groups).
inline void pack_x(const float* x, int64_t M, int64_t K, int bits, int group_size, float* xp,
                   float* xsum) {
  int order[32];
  for (int i = 0; i < 32; ++i) order[i] = bits == 4 ? nibble_order(i) : i;
  const int64_t groups = K / group_size;
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t g = 0; g < groups; ++g) xsum[m * groups + g] = 0;
    for (int64_t k = 0; k < K; k += 32) {
      float* dst = xp + (k / 32 * M + m) * 32;
      const float* src = x + m * K + k;
      float sum = 0;
      for (int i = 0; i < 32; ++i) {
        dst[i] = src[order[i]];
        sum += src[i];
      }
      xsum[m * groups + k / group_size] += sum;
    }
  }
}

// The 32 values of a block as 4 vectors of float(q), in the kernel's order.
template <int BITS>
inline void unpack_block_avx2(const uint8_t* p, __m256 q[4]) {
  if constexpr (BITS == 4) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i mask = _mm_set1_epi8(0x0f);
    const __m128i lo = _mm_and_si128(bytes, mask);
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), mask);
    q[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo));
    q[1] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_unpackhi_epi64(lo, lo)));
    q[2] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi));
    q[3] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_unpackhi_epi64(hi, hi)));
  } else {
    for (int i = 0; i < 4; ++i) {
      const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8 * i));
      q[i] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
    }
  }
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

#define OSU_UNROLL _Pragma("GCC unroll 16")

// One row of x (decoding one sequence): bound by memory, so the fewest instructions per
// weight. Per group it sums float(q) * x in four independent partial sums (no long FMA chain)
// and applies the scale once; bias * sum(x) is added per group from xsum. NR output rows are
// interleaved so that their accumulators' FMA latencies overlap. Sizes are template
// parameters so that the compiler unrolls the small loops and keeps every accumulator in a
// register.
template <int BITS, int G, int NR>
inline void qmv_t_avx2_rows(const float* xp, const float* xsum, const QuantizedMatrix& W,
                            int64_t n, float* out) {
  const int64_t groups = W.groups();
  constexpr int block_bytes = 32 * BITS / 8, group_bytes = G * BITS / 8;
  const uint8_t* rows[NR];
  __m256 acc[NR];
  float bias_total[NR];
  OSU_UNROLL for (int r = 0; r < NR; ++r) {
    rows[r] = W.packed + (n + r) * W.row_bytes();
    acc[r] = _mm256_setzero_ps();
    bias_total[r] = 0;
  }
  for (int64_t g = 0; g < groups; ++g) {
    const float* xg = xp + g * G;
    OSU_UNROLL for (int r = 0; r < NR; ++r) {
      const uint8_t* p = rows[r] + g * group_bytes;
      __m256 q[4], part[4];
      unpack_block_avx2<BITS>(p, q);
      OSU_UNROLL for (int i = 0; i < 4; ++i) part[i] = _mm256_mul_ps(q[i], _mm256_loadu_ps(xg + 8 * i));
      OSU_UNROLL for (int b = 1; b < G / 32; ++b) {
        unpack_block_avx2<BITS>(p + b * block_bytes, q);
        OSU_UNROLL for (int i = 0; i < 4; ++i)
          part[i] = _mm256_fmadd_ps(q[i], _mm256_loadu_ps(xg + 32 * b + 8 * i), part[i]);
      }
      const __m256 dot = _mm256_add_ps(_mm256_add_ps(part[0], part[1]), _mm256_add_ps(part[2], part[3]));
      const int64_t gi = (n + r) * groups + g;
      acc[r] = _mm256_fmadd_ps(dot, _mm256_set1_ps(W.scale(gi)), acc[r]);
      bias_total[r] += W.bias(gi) * xsum[g];
    }
  }
  OSU_UNROLL for (int r = 0; r < NR; ++r) out[n + r] = hsum(acc[r]) + bias_total[r];
}

// MT rows of x (1 <= MT <= 4) against one output row n: each block of the row is dequantized
// once (q * scale + bias) and used by all MT rows. Two accumulators per row keep enough
// independent FMAs in flight to hide their latency.
template <int BITS, int G, int MT>
inline void qmm_t_avx2_row(const float* xp, int64_t M, const QuantizedMatrix& W, int64_t n,
                           float* out, int64_t ldo) {
  const int64_t groups = W.groups();
  constexpr int block_bytes = 32 * BITS / 8;
  const uint8_t* row = W.packed + n * W.row_bytes();
  __m256 acc[MT][2];
  OSU_UNROLL for (int m = 0; m < MT; ++m) acc[m][0] = acc[m][1] = _mm256_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    const __m256 vs = _mm256_set1_ps(W.scale(n * groups + g));
    const __m256 vb = _mm256_set1_ps(W.bias(n * groups + g));
    OSU_UNROLL for (int b = 0; b < G / 32; ++b) {
      const int64_t blk = g * (G / 32) + b;
      __m256 w[4];
      unpack_block_avx2<BITS>(row + blk * block_bytes, w);
      OSU_UNROLL for (int i = 0; i < 4; ++i) w[i] = _mm256_fmadd_ps(w[i], vs, vb);
      const float* xb = xp + blk * M * 32;  // this block's rows, side by side
      OSU_UNROLL for (int m = 0; m < MT; ++m)
        OSU_UNROLL for (int i = 0; i < 4; ++i)
          acc[m][i & 1] = _mm256_fmadd_ps(w[i], _mm256_loadu_ps(xb + m * 32 + 8 * i), acc[m][i & 1]);
    }
  }
  OSU_UNROLL for (int m = 0; m < MT; ++m) out[m * ldo + n] = hsum(_mm256_add_ps(acc[m][0], acc[m][1]));
}

template <int BITS, int G>
inline void qmm_t_avx2_g(const float* xp, const float* xsum, int64_t M, const QuantizedMatrix& W,
                         int64_t n0, int64_t n1, float* out, int64_t ldo) {
  if (M == 1) {
    int64_t n = n0;
    for (; n + 2 <= n1; n += 2) qmv_t_avx2_rows<BITS, G, 2>(xp, xsum, W, n, out);
    for (; n < n1; ++n) qmv_t_avx2_rows<BITS, G, 1>(xp, xsum, W, n, out);
    return;
  }
  // Rows of x in passes of 4 per output row: the row's weights stay in L1 between passes.
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t m = 0; m < M; m += 4) {
      const float* xm = xp + m * 32;  // within each block, rows m.. start here
      float* o = out + m * ldo;
      switch (std::min<int64_t>(4, M - m)) {
        case 4: qmm_t_avx2_row<BITS, G, 4>(xm, M, W, n, o, ldo); break;
        case 3: qmm_t_avx2_row<BITS, G, 3>(xm, M, W, n, o, ldo); break;
        case 2: qmm_t_avx2_row<BITS, G, 2>(xm, M, W, n, o, ldo); break;
        default: qmm_t_avx2_row<BITS, G, 1>(xm, M, W, n, o, ldo); break;
      }
    }
  }
}

// All M rows of x (packed by pack_x) against output rows [n0, n1).
template <int BITS>
inline void qmm_t_avx2(const float* xp, const float* xsum, int64_t M, const QuantizedMatrix& W,
                       int64_t n0, int64_t n1, float* out, int64_t ldo) {
  switch (W.group_size) {
    case 32: return qmm_t_avx2_g<BITS, 32>(xp, xsum, M, W, n0, n1, out, ldo);
    case 64: return qmm_t_avx2_g<BITS, 64>(xp, xsum, M, W, n0, n1, out, ldo);
    default: return qmm_t_avx2_g<BITS, 128>(xp, xsum, M, W, n0, n1, out, ldo);
  }
}

// Rows [r0, r1) of dequant(W) as float32, in natural order.
template <int BITS>
inline void dequantize_avx2(const QuantizedMatrix& W, int64_t r0, int64_t r1, float* out) {
  const int64_t K = W.cols, G = W.group_size, groups = W.groups();
  constexpr int block_bytes = 32 * BITS / 8;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = W.packed + r * W.row_bytes();
    for (int64_t g = 0; g < groups; ++g) {
      const __m256 vs = _mm256_set1_ps(W.scale(r * groups + g));
      const __m256 vb = _mm256_set1_ps(W.bias(r * groups + g));
      for (int64_t k = g * G; k < (g + 1) * G; k += 32) {
        const uint8_t* p = row + k / 32 * block_bytes;
        __m128i v[4];
        if constexpr (BITS == 4) {
          const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
          const __m128i mask = _mm_set1_epi8(0x0f);
          const __m128i lo = _mm_and_si128(bytes, mask);
          const __m128i hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), mask);
          const __m128i first = _mm_unpacklo_epi8(lo, hi), second = _mm_unpackhi_epi8(lo, hi);
          v[0] = first;
          v[1] = _mm_unpackhi_epi64(first, first);
          v[2] = second;
          v[3] = _mm_unpackhi_epi64(second, second);
        } else {
          for (int i = 0; i < 4; ++i) v[i] = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8 * i));
        }
        for (int i = 0; i < 4; ++i) {
          const __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v[i]));
          _mm256_storeu_ps(out + r * K + k + 8 * i, _mm256_fmadd_ps(q, vs, vb));
        }
      }
    }
  }
}


// ------------------------------------------------------------------------------------------
// AVX2 kernels with int8 activations
//
// The float kernels above spend one FMA per weight per row of x, more than a CPU core can
// issue while memory delivers 4-bit weights. llama.cpp's answer, taken here too: quantize x to
// int8 and multiply bytes with `maddubs` (32 multiply-adds per instruction). The weights stay
// exactly as stored; x is rounded per weight group (d = max|x| / 127, q = round(x / d);
// llama.cpp rounds per 32 or 256 values), an error of ~0.4% of the group's largest value,
// well below the 4-bit weights' own. Sharing d across a group lets the integer products of
// all its blocks be summed before one conversion to float.

// One group of x rounded to int8 as every int8 kernel rounds it: d = max|x| / 127 and
// q = round(x / d). The group's 32-value block b goes to block_out(b), its values in `order`;
// returns d and adds the rounded values to *sum.
template <typename BlockOut>
inline float round_group_int8(const float* src, int group_size, const int* order,
                              BlockOut block_out, int* sum) {
  // In 8-lane vectors, in x's order, then placed in `order`: the same numbers as the scalar
  // loop it replaced (max is exact; rounding is to nearest even, as nearbyint's), which ran
  // serially before every matmul: ~1.3 ms of a batch-8 step of the test model on Zen 1.
  // group_size is a multiple of 32.
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 top = _mm256_setzero_ps();
  for (int i = 0; i < group_size; i += 8)  // max(|x|, top): a NaN in x is passed over
    top = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(src + i), magnitude), top);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, top);
  float amax = 0;
  for (float lane : lanes) amax = std::max(amax, lane);
  const float id = amax > 0 ? 127.0f / amax : 0.0f;
  const __m256 scale = _mm256_set1_ps(id);
  __m256i sums = _mm256_setzero_si256();
  for (int k = 0; k < group_size; k += 32) {
    alignas(32) int32_t q[32];
    for (int j = 0; j < 4; ++j) {
      const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(src + k + 8 * j), scale);
      const __m256i r = _mm256_cvtps_epi32(
          _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      sums = _mm256_add_epi32(sums, r);
      _mm256_store_si256(reinterpret_cast<__m256i*>(q + 8 * j), r);
    }
    int8_t* dst = block_out(k / 32);
    for (int i = 0; i < 32; ++i) dst[i] = int8_t(q[order[i]]);
  }
  alignas(32) int32_t partial[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(partial), sums);
  for (int32_t p : partial) *sum += p;
  return amax / 127.0f;
}

// x (M x K) as int8 for the int8 kernels, laid out like pack_x: block by block (32 values),
// the M rows of a block side by side, 4-bit blocks in nibble order. xd gets d per (group,
// row) and xsum the sum of the rounded x per (row, group), for the bias term. (The rounded
// sum, as llama.cpp's Q8_1 keeps, not the exact one: then the product is exactly that of the
// rounded x with w, whose rounding errors meet weights centred on zero and mostly cancel;
// the exact sum would leave them to meet w - bias, all of one sign.)
inline void quantize_x_int8(const float* x, int64_t M, int64_t K, int bits, int group_size,
                            int8_t* xq, float* xd, float* xsum) {
  int order[32];
  for (int i = 0; i < 32; ++i) order[i] = bits == 4 ? nibble_order(i) : i;
  const int64_t groups = K / group_size;
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t first_block = g * group_size / 32;
      int sum = 0;
      const float d = round_group_int8(
          x + m * K + g * group_size, group_size, order,
          [&](int64_t b) { return xq + ((first_block + b) * M + m) * 32; }, &sum);
      xd[g * M + m] = d;
      xsum[m * groups + g] = d * float(sum);
    }
  }
}

// A block of 32 weights as bytes in the kernel's order: 4-bit values as they are (0..15),
// 8-bit values minus 128 (as int8), so that every product fits maddubs' int16 pairs.
template <int BITS>
inline __m256i unpack_block_bytes(const uint8_t* p) {
  if constexpr (BITS == 4) {
    // The 16 bytes in both halves; the high half shifted down a nibble; one mask for both.
    const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    const __m256i shifted = _mm256_blend_epi32(both, _mm256_srli_epi16(both, 4), 0xf0);
    return _mm256_and_si256(shifted, _mm256_set1_epi8(0x0f));
  } else {
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return _mm256_xor_si256(bytes, _mm256_set1_epi8(char(0x80)));
  }
}

// The dot product of one weight group (G / 32 blocks from w) with x's int8 values of that
// group (blocks x_stride bytes apart), as 8 float partial sums. 4-bit: the int16 pairs of all
// blocks are summed before widening (|pair| <= 2*15*127, four blocks still fit int16).
// 8-bit: maddubs wants one unsigned operand, so |w| times x with w's sign (|pair| <=
// 2*128*127), widened per block.
template <int BITS, int G>
inline __m256 group_dot_int8(const uint8_t* w, const int8_t* x, int64_t x_stride) {
  constexpr int block_bytes = 32 * BITS / 8;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i sum = _mm256_setzero_si256();
  OSU_UNROLL for (int b = 0; b < G / 32; ++b) {
    const __m256i wb = unpack_block_bytes<BITS>(w + b * block_bytes);
    const __m256i xb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + b * x_stride));
    if constexpr (BITS == 4) {
      sum = _mm256_add_epi16(sum, _mm256_maddubs_epi16(wb, xb));
    } else {
      const __m256i pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(wb, wb), _mm256_sign_epi8(xb, wb));
      sum = _mm256_add_epi32(sum, _mm256_madd_epi16(pairs, ones));
    }
  }
  if constexpr (BITS == 4) sum = _mm256_madd_epi16(sum, ones);
  return _mm256_cvtepi32_ps(sum);
}

// The bias applied to the stored values: 8-bit blocks hold q - 128, and
// s * q + b = s * (q - 128) + (b + 128 s).
template <int BITS>
inline float stored_bias(float scale, float bias) {
  return BITS == 8 ? bias + 128.0f * scale : bias;
}

// NR output rows (n, n+1, ...) against MT rows of x: each weight group is read once from
// memory for all MT rows (and stays in L1 for the next MT rows). xq and xd point at the first
// of the MT rows within block / group 0 (M rows side by side), xsum at that row's group sums.
//
// Every (output row, row of x) pair goes through the same operations in the same order
// whatever NR, MT and M are, so a sequence decoded alone and in a batch gets bit-identical
// logits (explicit fma where the compiler could otherwise fuse or not, per instantiation).
template <int BITS, int G, int NR, int MT>
inline void qmm_t_int8_tile(const int8_t* xq, const float* xd, const float* xsum, int64_t M,
                            const QuantizedMatrix& W, int64_t n, float* out, int64_t ldo) {
  const int64_t groups = W.groups();
  constexpr int group_bytes = G * BITS / 8;
  const uint8_t* rows[NR];
  __m256 acc[NR][MT];
  float bias_total[NR][MT];
  OSU_UNROLL for (int r = 0; r < NR; ++r) {
    rows[r] = W.packed + (n + r) * W.row_bytes();
    OSU_UNROLL for (int m = 0; m < MT; ++m) {
      acc[r][m] = _mm256_setzero_ps();
      bias_total[r][m] = 0;
    }
  }
  for (int64_t g = 0; g < groups; ++g) {
    OSU_UNROLL for (int r = 0; r < NR; ++r) {
      const int64_t gi = (n + r) * groups + g;
      const float s = W.scale(gi), b = stored_bias<BITS>(s, W.bias(gi));
      const uint8_t* w = rows[r] + g * group_bytes;
      OSU_UNROLL for (int m = 0; m < MT; ++m) {
        bias_total[r][m] = std::fma(b, xsum[m * groups + g], bias_total[r][m]);
        const int8_t* x = xq + (g * G / 32 * M + m) * 32;
        const __m256 factor = _mm256_set1_ps(s * xd[g * M + m]);
        acc[r][m] = _mm256_fmadd_ps(group_dot_int8<BITS, G>(w, x, M * 32), factor, acc[r][m]);
      }
    }
  }
  OSU_UNROLL for (int r = 0; r < NR; ++r)
    OSU_UNROLL for (int m = 0; m < MT; ++m) out[m * ldo + n + r] = hsum(acc[r][m]) + bias_total[r][m];
}

template <int BITS, int G>
inline void qmm_t_int8_g(const int8_t* xq, const float* xd, const float* xsum, int64_t M,
                         const QuantizedMatrix& W, int64_t n0, int64_t n1, float* out, int64_t ldo) {
  if (M == 1) {  // one sequence decoding: four streams of weights in flight
    int64_t n = n0;
    for (; n + 4 <= n1; n += 4) qmm_t_int8_tile<BITS, G, 4, 1>(xq, xd, xsum, M, W, n, out, ldo);
    for (; n < n1; ++n) qmm_t_int8_tile<BITS, G, 1, 1>(xq, xd, xsum, M, W, n, out, ldo);
    return;
  }
  const int64_t groups = W.groups();
  for (int64_t n = n0; n < n1; n += 2) {
    const bool pair = n + 2 <= n1;
    for (int64_t m = 0; m < M; m += 4) {  // rows of x, four at a time
      const int8_t* q = xq + m * 32;
      const float* d = xd + m;
      const float* s = xsum + m * groups;
      float* o = out + m * ldo;
#define OSU_TILE(NR, MT) qmm_t_int8_tile<BITS, G, NR, MT>(q, d, s, M, W, n, o, ldo)
      switch (std::min<int64_t>(4, M - m)) {
        case 4: pair ? OSU_TILE(2, 4) : OSU_TILE(1, 4); break;
        case 3: pair ? OSU_TILE(2, 3) : OSU_TILE(1, 3); break;
        case 2: pair ? OSU_TILE(2, 2) : OSU_TILE(1, 2); break;
        default: pair ? OSU_TILE(2, 1) : OSU_TILE(1, 1); break;
      }
#undef OSU_TILE
    }
  }
}

// All M rows of x (quantized by quantize_x_int8) against output rows [n0, n1).
template <int BITS>
inline void qmm_t_int8(const int8_t* xq, const float* xd, const float* xsum, int64_t M,
                       const QuantizedMatrix& W, int64_t n0, int64_t n1, float* out, int64_t ldo) {
  switch (W.group_size) {
    case 32: return qmm_t_int8_g<BITS, 32>(xq, xd, xsum, M, W, n0, n1, out, ldo);
    case 64: return qmm_t_int8_g<BITS, 64>(xq, xd, xsum, M, W, n0, n1, out, ldo);
    default: return qmm_t_int8_g<BITS, 128>(xq, xd, xsum, M, W, n0, n1, out, ldo);
  }
}

#endif  // OSU_HAVE_AVX2

}  // namespace osaurus
