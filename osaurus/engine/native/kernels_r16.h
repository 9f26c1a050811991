// Kernels on weights repacked 16 output rows to a vector ("r16"), bits 4 and 8: AVX-512 VNNI,
// and AVX2 where the CPU has no VNNI.
//
// In MLX's layout a row's weights are contiguous, so a SIMD dot product runs along one row and
// ends in a horizontal sum, and each group's scale must be moved to the lanes that hold that
// group (kernels_vnni.h). On a small model's matrices (576 columns: 18 groups a row) those
// per-row steps cost more than the multiplies, and with several rows of x each of them is paid
// again per row. llama.cpp repacks its weights at load for the same reason. Here the weights
// of 16 consecutive output rows are interleaved so that one 64-byte vector holds 4 bytes of
// each of the 16 rows at the same column: `vpdpbusd` against 4 bytes of x broadcast to every
// lane then adds 16 rows' partial dot products at once, a group's 16 scales are one load, and
// a tile's 16 results are one store. No horizontal sum, no permute, and each vector of weights
// is unpacked once for every row of x. Without VNNI, AVX2 does the same on each 32-byte half.
//
// Layout of a matrix of N rows (a multiple of 16) by K columns, bits 4 or 8:
//   packed: tile t (rows 16t..16t+15), block j (columns 32j..32j+31), chunk c, row r, byte i:
//           byte 4c + i of row 16t + r's block j as MLX packs it. A 4-bit block is 16 bytes
//           (4 chunks), an 8-bit one 32 (8 chunks); each (t, j, c) is one 64-byte vector.
//   scales, biases: tile t, group g, row r (16 contiguous values, of the stored type).
// It is a permutation of MLX's bytes: same size, and undone exactly (unrepack_r16).
//
// Same arithmetic as the other int8 kernels (x rounded per weight group, d = max|x| / 127),
// the terms of a row added in the same order whatever the batch, so a sequence gets the same
// bits alone and batched.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels_vnni.h"

namespace osaurus {

constexpr int64_t kTileRows = 16;

// These kernels take a third of the time of kernels_vnni.h's on a small model's matrices, and
// one core then no longer keeps up with memory: from this much work a matmul takes both cores
// (BatchGenerator steps of the 135M test model, 1 << 22 -> 1 << 18: 8.7 -> 8.2 ms at batch 1,
// 21 -> 19 ms at batch 8). The AVX2 r16 kernel takes the same bar (not tuned
// apart: on a shared 2-core AVX2 VM the difference was within the noise).
constexpr int64_t kR16MinWorkPerThread = 1 << 18;

// Weights (rows x columns) a thread takes at a time, at least: the 135M test model's matrices
// (0.3 to 1.8 M weights) then go in one contiguous share per thread, which streams from memory
// without restarting the prefetchers; larger ones still go in up to ~8 chunks per thread. Two
// servers side by side, paired rounds (Zen 4 VM, 2026-12-07): test model 1.13x tokens/s at one
// stream (7 of 8 rounds), 1.04x aggregate at eight; the 1B shape 1.04x and 1.05x. At batch 1 one
// thread alone had read the model's matrices as fast as two splitting them in 16 chunks.
constexpr int64_t kR16MinChunkWeights = int64_t(1) << 20;

inline int64_t r16_chunks(int bits) { return bits == 4 ? 4 : 8; }

// Where byte `byte` (0 .. row_bytes) of row n lives in the repacked buffer.
inline int64_t r16_offset(int64_t n, int64_t byte, int64_t row_bytes) {
  // A row's 4-byte chunks are consecutive across its blocks (a block is 4 or 8 of them).
  const int64_t t = n / kTileRows, r = n % kTileRows;
  return t * kTileRows * row_bytes + (byte / 4) * kTileRows * 4 + r * 4 + byte % 4;
}

// Copies of W's packed bytes, scales and biases (MLX's layout) into the r16 layout.
inline void repack_r16(const QuantizedMatrix& W, uint8_t* packed, uint8_t* scales,
                       uint8_t* biases) {
  const int64_t row_bytes = W.row_bytes(), groups = W.groups();
  const int64_t value_bytes = W.scale_type == ScaleType::F32 ? 4 : 2;
  for (int64_t n = 0; n < W.rows; ++n) {
    const uint8_t* src = W.packed + n * row_bytes;
    for (int64_t b = 0; b < row_bytes; b += 4)  // a row's bytes move 4 at a time
      std::memcpy(packed + r16_offset(n, b, row_bytes), src + b, 4);
    const int64_t t = n / kTileRows, r = n % kTileRows;
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t to = ((t * groups + g) * kTileRows + r) * value_bytes;
      const int64_t from = (n * groups + g) * value_bytes;
      std::memcpy(scales + to, static_cast<const uint8_t*>(W.scales) + from, value_bytes);
      std::memcpy(biases + to, static_cast<const uint8_t*>(W.biases) + from, value_bytes);
    }
  }
}

// The inverse: rows [n0, n1) of an r16 matrix back in MLX's layout (rows n0.. at packed, ...).
inline void unrepack_r16(const QuantizedMatrix& R, int64_t n0, int64_t n1, uint8_t* packed,
                         uint8_t* scales, uint8_t* biases) {
  const int64_t row_bytes = R.row_bytes(), groups = R.groups();
  const int64_t value_bytes = R.scale_type == ScaleType::F32 ? 4 : 2;
  for (int64_t n = n0; n < n1; ++n) {
    uint8_t* dst = packed + (n - n0) * row_bytes;
    for (int64_t b = 0; b < row_bytes; b += 4)
      std::memcpy(dst + b, R.packed + r16_offset(n, b, row_bytes), 4);
    const int64_t t = n / kTileRows, r = n % kTileRows;
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t from = ((t * groups + g) * kTileRows + r) * value_bytes;
      const int64_t to = ((n - n0) * groups + g) * value_bytes;
      std::memcpy(scales + to, static_cast<const uint8_t*>(R.scales) + from, value_bytes);
      std::memcpy(biases + to, static_cast<const uint8_t*>(R.biases) + from, value_bytes);
    }
  }
}

// An r16 matrix's bytes back in MLX's layout, for the kernels that read that one.
struct MlxLayoutCopy {
  std::vector<uint8_t> packed, scales, biases;
  QuantizedMatrix matrix;

  explicit MlxLayoutCopy(const QuantizedMatrix& R) : matrix(R) {
    const int64_t value_bytes = R.scale_type == ScaleType::F32 ? 4 : 2;
    packed.resize(R.rows * R.row_bytes());
    scales.resize(R.rows * R.groups() * value_bytes);
    biases.resize(scales.size());
    unrepack_r16(R, 0, R.rows, packed.data(), scales.data(), biases.data());
    matrix.packed = packed.data();
    matrix.scales = scales.data();
    matrix.biases = biases.data();
    matrix.r16 = false;
  }
};

#if OSU_HAVE_AVX2

// A model's weights are read from memory, and at a few rows of x these kernels compute faster
// than one core's loads arrive: the hardware prefetcher alone left both cores at ~17 GB/s of
// the ~30 this machine reads (bench/kernel.py, 14336 x 4096 from memory). So each group asks
// for the weights, scales and biases that its thread will read 32 KB further on (its tiles are
// contiguous) into the L2: 0.72-0.75x the time at 1 to 4 rows, 0.86x at 8 (32 KB ahead into L1,
// or 64 KB, no better; 128 KB worse). Where the weights sit in the cache: 0.96-1.06x, noise.
constexpr int64_t kR16PrefetchBytes = 32768;

// Prefetch for the group whose weights start at `group` and whose 16 scales and biases are
// element `at` of theirs. Always inlined: GCC 12 takes a function that only prefetches for one
// without effects and drops the calls to it (seen here).
template <int BITS, int G>
[[gnu::always_inline]] inline void r16_prefetch_ahead(const QuantizedMatrix& W,
                                                      const uint8_t* group, int64_t at) {
  constexpr int64_t group_bytes = kTileRows * G * BITS / 8;
  // Scales and biases are 16 values a group, so they run kR16PrefetchBytes / group_bytes
  // groups ahead too.
  constexpr int64_t values_ahead = kR16PrefetchBytes / group_bytes * kTileRows;
  const char* ahead = reinterpret_cast<const char*>(group) + kR16PrefetchBytes;
  OSU_UNROLL for (int64_t i = 0; i < group_bytes; i += 64) _mm_prefetch(ahead + i, _MM_HINT_T1);
  const int64_t offset = (at + values_ahead) * (W.scale_type == ScaleType::F32 ? 4 : 2);
  _mm_prefetch(static_cast<const char*>(W.scales) + offset, _MM_HINT_T1);
  _mm_prefetch(static_cast<const char*>(W.biases) + offset, _MM_HINT_T1);
}

// x rounded to int8 for the r16 kernels (VNNI and AVX2): per row and 32-column block, the 32
// values in the order the chunks take them. 8-bit: chunk c's 4 bytes are columns 4c..4c+3. 4-bit: chunk c's
// 4 bytes hold columns 8c..8c+7, low nibbles the even ones, high the odd; the low nibbles
// multiply x's dword 2c (columns 8c, 8c+2, 8c+4, 8c+6) and the high ones dword 2c+1.
//
// Block-major: block j of every row, then block j + 1. The rows a tile takes together then sit 32
// bytes apart, at offsets the compiler knows, so that each of their dwords is a broadcast
// operand of vpdpbusd itself, not one more register to keep.
struct R16X {
  std::vector<int8_t> q;  // K / 32 blocks x rows x 32
  std::vector<float> d, sum;  // rows x groups
  int64_t rows = 0, K = 0, groups = 0;

  const int8_t* block(int64_t m, int64_t j) const { return q.data() + (j * rows + m) * 32; }
};

// Row m of x's two dwords against 4-bit chunk c of block j: the 4 values its low nibbles
// multiply, then the 4 its high nibbles do.
inline void r16_x_dwords(const R16X& X, int64_t m, int64_t j, int c, int32_t& lo, int32_t& hi) {
  const int8_t* xb = X.block(m, j) + c * 8;
  std::memcpy(&lo, xb, 4);
  std::memcpy(&hi, xb + 4, 4);
}

inline int r16_order(int i, int bits) {
  if (bits == 8) return i;
  const int c = i / 8, within = i % 8;
  return 8 * c + (within < 4 ? 2 * within : 2 * (within - 4) + 1);
}

inline void quantize_x_r16(const float* x, int64_t M, int64_t K, int bits, int group_size,
                           R16X& out) {
  const int64_t groups = K / group_size;
  out.rows = M;
  out.K = K;
  out.groups = groups;
  out.q.resize(M * K);
  out.d.resize(M * groups);
  out.sum.resize(M * groups);
  int order[32];
  for (int i = 0; i < 32; ++i) order[i] = r16_order(i, bits);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t g = 0; g < groups; ++g) {
      int sum = 0;
      const float d = round_group_int8(
          x + m * K + g * group_size, group_size, order,
          [&](int64_t b) { return out.q.data() + ((g * group_size / 32 + b) * M + m) * 32; },
          &sum);
      out.d[m * groups + g] = d;
      out.sum[m * groups + g] = d * float(sum);
    }
}

#endif  // OSU_HAVE_AVX2

#if OSU_HAVE_VNNI

// acc += w (unsigned bytes) . x's dword at `x`, broadcast to every lane, read by vpdpbusd itself
// ({1to16}): GCC 12 does not fold _mm512_set1_epi32 of a load into vpdpbusd, and a broadcast
// of its own per multiply took a vector slot of the ones the multiplies need.
inline __m512i dpbusd_x(__m512i acc, __m512i w, const int8_t* x) {
  const auto& dword = *reinterpret_cast<const int8_t(*)[4]>(x);  // bytes: no aliasing question
  __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(dword));
  return acc;
}

// One tile (16 output rows from t * 16) against MT rows of x from m0.
template <int BITS, int G, int MT>
inline void qmm_r16_tile(const R16X& X, int64_t m0, const QuantizedMatrix& W, int64_t t,
                         float* out, int64_t ldo) {
  constexpr int chunks = BITS == 4 ? 4 : 8, blocks_per_group = G / 32;
  const int64_t groups = W.groups(), row_bytes = W.row_bytes();
  const uint8_t* tile = W.packed + t * kTileRows * row_bytes;
  const __m512i low = _mm512_set1_epi8(0x0f);
  __m512 acc[MT];
  OSU_UNROLL for (int m = 0; m < MT; ++m) acc[m] = _mm512_setzero_ps();
  // Independent int32 sums per row of x (A of them, added at the end of the group: integer
  // sums, so the order changes nothing), so that vpdpbusd's latency does not chain; 8 rows
  // are 8 chains already, and 16 more registers would not fit.
  constexpr int A = MT == 1 ? 4 : MT <= 4 ? 2 : 1;
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t at = (t * groups + g) * kTileRows;
    if (m0 == 0)  // the first rows of x to pass over this tile
      r16_prefetch_ahead<BITS, G>(W, tile + g * blocks_per_group * chunks * 64, at);
    __m512i dot[MT][A];
    OSU_UNROLL for (int m = 0; m < MT; ++m)
      OSU_UNROLL for (int a = 0; a < A; ++a) dot[m][a] = _mm512_setzero_si512();
    OSU_UNROLL for (int b = 0; b < blocks_per_group; ++b) {
      const int64_t j = g * blocks_per_group + b;
      const uint8_t* v = tile + j * chunks * 64;
      OSU_UNROLL for (int c = 0; c < chunks; ++c) {
        const __m512i bytes = _mm512_loadu_si512(v + c * 64);
        if constexpr (BITS == 4) {
          const __m512i lo = _mm512_and_si512(bytes, low);
          const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(bytes, 4), low);
          const int8_t* xb = X.block(m0, j) + c * 8;  // rows of x 32 bytes apart
          OSU_UNROLL for (int m = 0; m < MT; ++m) {
            __m512i& d_lo = dot[m][(2 * c) % A];
            __m512i& d_hi = dot[m][(2 * c + 1) % A];
            d_lo = dpbusd_x(d_lo, lo, xb + m * 32);
            d_hi = dpbusd_x(d_hi, hi, xb + m * 32 + 4);
          }
        } else {
          const int8_t* xb = X.block(m0, j) + c * 4;
          OSU_UNROLL for (int m = 0; m < MT; ++m) {
            __m512i& d = dot[m][c % A];
            d = dpbusd_x(d, bytes, xb + m * 32);
          }
        }
      }
    }
    const __m512 s = load16(W.scales, at, 0xffff, W.scale_type);
    const __m512 bias = load16(W.biases, at, 0xffff, W.scale_type);
    OSU_UNROLL for (int m = 0; m < MT; ++m) {
      const int64_t xg = (m0 + m) * groups + g;
      __m512i total = dot[m][0];
      OSU_UNROLL for (int a = 1; a < A; ++a) total = _mm512_add_epi32(total, dot[m][a]);
      acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total),
                               _mm512_mul_ps(s, _mm512_set1_ps(X.d[xg])), acc[m]);
      acc[m] = _mm512_fmadd_ps(bias, _mm512_set1_ps(X.sum[xg]), acc[m]);
    }
  }
  OSU_UNROLL for (int m = 0; m < MT; ++m)
    _mm512_storeu_ps(out + (m0 + m) * ldo + t * kTileRows, acc[m]);
}

// All rows of x against output rows [n0, n1) (multiples of 16).
template <int BITS, int G>
inline void qmm_r16_g(const R16X& X, const QuantizedMatrix& W, int64_t n0, int64_t n1,
                      float* out, int64_t ldo) {
  for (int64_t t = n0 / kTileRows; t < n1 / kTileRows; ++t)
    for (int64_t m = 0; m < X.rows;) {
      // Rows of x 8 at a time: each vector of weights is unpacked once for all 8 (measured on
      // 14336 x 4096 at 8 and 16 rows: 10% faster than 4 at a time; 2-8% on a 135M model's).
      const int64_t left = X.rows - m, mt = left >= 8 ? 8 : std::min<int64_t>(left, 4);
      switch (mt) {
        case 8: qmm_r16_tile<BITS, G, 8>(X, m, W, t, out, ldo); break;
        case 4: qmm_r16_tile<BITS, G, 4>(X, m, W, t, out, ldo); break;
        case 3: qmm_r16_tile<BITS, G, 3>(X, m, W, t, out, ldo); break;
        case 2: qmm_r16_tile<BITS, G, 2>(X, m, W, t, out, ldo); break;
        default: qmm_r16_tile<BITS, G, 1>(X, m, W, t, out, ldo); break;
      }
      m += mt;
    }
}

template <int BITS>
inline void qmm_r16(const R16X& X, const QuantizedMatrix& W, int64_t n0, int64_t n1, float* out,
                    int64_t ldo) {
  switch (W.group_size) {
    case 32: return qmm_r16_g<BITS, 32>(X, W, n0, n1, out, ldo);
    case 64: return qmm_r16_g<BITS, 64>(X, W, n0, n1, out, ldo);
    default: return qmm_r16_g<BITS, 128>(X, W, n0, n1, out, ldo);
  }
}

#endif  // OSU_HAVE_VNNI

#if OSU_HAVE_AVX2

// The AVX2 kernel for r16 weights, where the CPU has no VNNI (AMD before Zen 4, Intel before
// Ice Lake). A 64-byte vector of the layout is two 32-byte halves, rows 0-7 and 8-15 of the
// tile, and each half is multiplied as VNNI multiplies the whole: `vpmaddubsw` (weight bytes
// times x bytes, adjacent pairs added into int16) then `vpmaddwd` (pairs of those into int32)
// add the 4 products of each row's 4 bytes. `vpmaddubsw` takes factors of at most 15 without
// overflow: with |x| at most 127, the int16 sums of a whole 32-column block (8 products of
// pairs) stay below 2^15, so one widening per block, not per vector. A 4-bit weight is one
// such factor. An 8-bit weight w (up to 255, which would overflow) is taken as its two
// nibbles, w = 16 hi + lo, each multiplied as a 4-bit weight; the widening of the high
// nibbles' sums multiplies them by 16. The int32 dot products, and so the results, are those
// of the VNNI kernel bit for bit.

// 8 consecutive scales (or biases) as float32.
inline __m256 load8(const void* p, int64_t i, ScaleType type) {
  switch (type) {
    case ScaleType::F32:
      return _mm256_loadu_ps(static_cast<const float*>(p) + i);
    case ScaleType::F16:
      return _mm256_cvtph_ps(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i)));
    default: {
      const __m128i h =
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i));
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
  }
}

// Halves [h0, h0 + H) of tile t (output rows 16t + 8h .. + 7) against MT rows of x from m0.
// Both halves in one pass (H = 2) share x's broadcasts and the loop around them. 8-bit weights
// need twice the int16 sums (low and high nibbles), and at 4 rows both halves' sums no longer
// fit in the 16 registers: there one half a pass (H = 1; both: 1.1x the time, spilled).
// Measured on Zen 3 (2048 x 2048 in cache, one thread), against one half a pass without the
// barriers below: 4-bit 0.63-0.69x the time at 1 to 16 rows; 8-bit 0.67-0.74x at 1 to 3 rows,
// the same at 4 and 8.
template <int BITS, int G, int MT, int H>
inline void qmm_r16_avx2_tile(const R16X& X, int64_t m0, const QuantizedMatrix& W, int64_t t,
                              int h0, float* out, int64_t ldo) {
  constexpr int chunks = BITS == 4 ? 4 : 8, blocks_per_group = G / 32;
  const int64_t groups = W.groups(), row_bytes = W.row_bytes();
  const uint8_t* tile = W.packed + t * kTileRows * row_bytes + h0 * 32;
  const __m256i low = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
  const __m256i sixteens = _mm256_set1_epi16(16);
  __m256 acc[MT][H];
  OSU_UNROLL for (int m = 0; m < MT; ++m)
    OSU_UNROLL for (int h = 0; h < H; ++h) acc[m][h] = _mm256_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t at = (t * groups + g) * kTileRows;
    if (m0 == 0 && h0 == 0)  // the first pass over this tile
      r16_prefetch_ahead<BITS, G>(W, tile + g * blocks_per_group * chunks * 64, at);
    __m256i dot[MT][H];
    OSU_UNROLL for (int m = 0; m < MT; ++m)
      OSU_UNROLL for (int h = 0; h < H; ++h) dot[m][h] = _mm256_setzero_si256();
    OSU_UNROLL for (int b = 0; b < blocks_per_group; ++b) {
      const int64_t j = g * blocks_per_group + b;
      const uint8_t* v = tile + j * chunks * 64;
      // 4-bit: the block's sums of low and high nibbles together; 8-bit: of low nibbles (lo)
      // and of high nibbles (hi, to be multiplied by 16).
      __m256i lo_pairs[MT][H], hi_pairs[MT][H];
      OSU_UNROLL for (int m = 0; m < MT; ++m) OSU_UNROLL for (int h = 0; h < H; ++h) {
        lo_pairs[m][h] = _mm256_setzero_si256();
        hi_pairs[m][h] = _mm256_setzero_si256();
      }
      OSU_UNROLL for (int c = 0; c < chunks; ++c) {
        __m256i lo[H], hi[H];
        OSU_UNROLL for (int h = 0; h < H; ++h) {
          const __m256i bytes =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + c * 64 + h * 32));
          lo[h] = _mm256_and_si256(bytes, low);
          hi[h] = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low);
        }
        OSU_UNROLL for (int m = 0; m < MT; ++m) {
          if constexpr (BITS == 4) {
            int32_t x_lo, x_hi;
            r16_x_dwords(X, m0 + m, j, c, x_lo, x_hi);
            const __m256i xl = _mm256_set1_epi32(x_lo), xh = _mm256_set1_epi32(x_hi);
            OSU_UNROLL for (int h = 0; h < H; ++h) {
              lo_pairs[m][h] = _mm256_add_epi16(lo_pairs[m][h], _mm256_maddubs_epi16(lo[h], xl));
              lo_pairs[m][h] = _mm256_add_epi16(lo_pairs[m][h], _mm256_maddubs_epi16(hi[h], xh));
              // The sums chain chunk after chunk: without this GCC 12 reassociates them into
              // a tree, keeps every product on the stack, and takes 1.3x the time at 4 rows.
              asm("" : "+x"(lo_pairs[m][h]));
            }
          } else {
            int32_t xs;
            std::memcpy(&xs, X.block(m0 + m, j) + c * 4, 4);
            const __m256i xv = _mm256_set1_epi32(xs);
            OSU_UNROLL for (int h = 0; h < H; ++h) {
              lo_pairs[m][h] = _mm256_add_epi16(lo_pairs[m][h], _mm256_maddubs_epi16(lo[h], xv));
              hi_pairs[m][h] = _mm256_add_epi16(hi_pairs[m][h], _mm256_maddubs_epi16(hi[h], xv));
              asm("" : "+x"(lo_pairs[m][h]), "+x"(hi_pairs[m][h]));  // as for 4-bit
            }
          }
        }
      }
      OSU_UNROLL for (int m = 0; m < MT; ++m) OSU_UNROLL for (int h = 0; h < H; ++h) {
        dot[m][h] = _mm256_add_epi32(dot[m][h], _mm256_madd_epi16(lo_pairs[m][h], ones));
        if constexpr (BITS == 8)
          dot[m][h] = _mm256_add_epi32(dot[m][h], _mm256_madd_epi16(hi_pairs[m][h], sixteens));
      }
    }
    OSU_UNROLL for (int h = 0; h < H; ++h) {
      const __m256 s = load8(W.scales, at + (h0 + h) * 8, W.scale_type);
      const __m256 bias = load8(W.biases, at + (h0 + h) * 8, W.scale_type);
      OSU_UNROLL for (int m = 0; m < MT; ++m) {
        const int64_t xg = (m0 + m) * groups + g;
        acc[m][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[m][h]),
                                    _mm256_mul_ps(s, _mm256_set1_ps(X.d[xg])), acc[m][h]);
        acc[m][h] = _mm256_fmadd_ps(bias, _mm256_set1_ps(X.sum[xg]), acc[m][h]);
      }
    }
  }
  OSU_UNROLL for (int m = 0; m < MT; ++m) OSU_UNROLL for (int h = 0; h < H; ++h)
    _mm256_storeu_ps(out + (m0 + m) * ldo + t * kTileRows + (h0 + h) * 8, acc[m][h]);
}

// MT rows of x from m0 against tile t: both halves at once where their sums fit (see above).
template <int BITS, int G, int MT>
inline void qmm_r16_avx2_rows(const R16X& X, int64_t m0, const QuantizedMatrix& W, int64_t t,
                              float* out, int64_t ldo) {
  if constexpr (BITS == 4 || MT <= 3) {
    qmm_r16_avx2_tile<BITS, G, MT, 2>(X, m0, W, t, 0, out, ldo);
  } else {
    for (int h = 0; h < 2; ++h) qmm_r16_avx2_tile<BITS, G, MT, 1>(X, m0, W, t, h, out, ldo);
  }
}

// All rows of x against output rows [n0, n1) (multiples of 16).
template <int BITS, int G>
inline void qmm_r16_avx2_g(const R16X& X, const QuantizedMatrix& W, int64_t n0, int64_t n1,
                           float* out, int64_t ldo) {
  for (int64_t t = n0 / kTileRows; t < n1 / kTileRows; ++t)
    for (int64_t m = 0; m < X.rows; m += 4) {
      switch (std::min<int64_t>(4, X.rows - m)) {
        case 4: qmm_r16_avx2_rows<BITS, G, 4>(X, m, W, t, out, ldo); break;
        case 3: qmm_r16_avx2_rows<BITS, G, 3>(X, m, W, t, out, ldo); break;
        case 2: qmm_r16_avx2_rows<BITS, G, 2>(X, m, W, t, out, ldo); break;
        default: qmm_r16_avx2_rows<BITS, G, 1>(X, m, W, t, out, ldo); break;
      }
    }
}

template <int BITS>
inline void qmm_r16_avx2(const R16X& X, const QuantizedMatrix& W, int64_t n0, int64_t n1,
                         float* out, int64_t ldo) {
  switch (W.group_size) {
    case 32: return qmm_r16_avx2_g<BITS, 32>(X, W, n0, n1, out, ldo);
    case 64: return qmm_r16_avx2_g<BITS, 64>(X, W, n0, n1, out, ldo);
    default: return qmm_r16_avx2_g<BITS, 128>(X, W, n0, n1, out, ldo);
  }
}

// Tiles [n0, n1) by the VNNI kernel (where built, and `vnni`) or the AVX2 one, for W's bits.
inline void qmm_r16_tiles(bool vnni, const R16X& X, const QuantizedMatrix& W, int64_t n0,
                          int64_t n1, float* out, int64_t ldo) {
#if OSU_HAVE_VNNI
  if (vnni) return W.bits == 4 ? qmm_r16<4>(X, W, n0, n1, out, ldo)
                               : qmm_r16<8>(X, W, n0, n1, out, ldo);
#endif
  (void)vnni;
  return W.bits == 4 ? qmm_r16_avx2<4>(X, W, n0, n1, out, ldo)
                     : qmm_r16_avx2<8>(X, W, n0, n1, out, ldo);
}

#endif  // OSU_HAVE_AVX2

}  // namespace osaurus
