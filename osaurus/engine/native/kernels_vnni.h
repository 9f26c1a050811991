// AVX-512 VNNI kernels for MLX's affine-quantized weights with int8 activations.
//
// The AVX2 int8 kernels (kernels.h) multiply 32 weights per instruction and then spend a
// widening, a conversion and scalar work on each group's scale; once several rows of x share
// the weights, those instructions, not memory, set the pace. Where the CPU has AVX-512 VNNI
// (Intel since Ice Lake, AMD since Zen 4), `vpdpbusd` multiplies 64 unsigned weight bytes by 64
// signed x bytes and adds them into 16 int32 sums in one instruction, and the scales of 16
// groups are converted and multiplied by x's in one vector each. Same arithmetic as the AVX2
// int8 kernels: x rounded per weight group (d = max|x| / 127), weights used exactly as stored.
//
// Every (output row, row of x) pair goes through the same operations in the same order
// whatever the tile and the batch, so a sequence gets bit-identical logits alone and batched.
#pragma once

#include <vector>

#include "kernels.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512VNNI__)
#define OSU_HAVE_VNNI 1
#else
#define OSU_HAVE_VNNI 0
#endif

#if OSU_HAVE_VNNI

namespace osaurus {

// x rounded to int8 for these kernels. Weights are read 64 at a time (a pair of 32-value
// blocks), so x is laid out pair by pair, the M rows of a pair side by side (64 bytes each),
// zero-padded to a whole pair. A 4-bit block unpacks as its 16 low nibbles (values 0, 2, ...,
// 30) then its 16 high nibbles (1, 3, ..., 31): x's values of a block are put in that order
// once here rather than the weights being shuffled for every row of the matrix. d and sum
// (d times the sum of the rounded values, for the bias term) are per row and group, rows
// padded with zeros to a multiple of 16 groups so that 16 groups load as one vector.
struct VnniX {
  std::vector<int8_t> q;
  std::vector<float> d, sum;
  int64_t rows = 0, pairs = 0, padded_groups = 0;

  const int8_t* pair(int64_t p, int64_t m) const { return q.data() + (p * rows + m) * 64; }
  const float* d_of(int64_t m, int64_t g) const { return d.data() + m * padded_groups + g; }
  const float* sum_of(int64_t m, int64_t g) const { return sum.data() + m * padded_groups + g; }
};

inline int vnni_order(int i) { return i < 16 ? 2 * i : 2 * (i - 16) + 1; }

inline void quantize_x_vnni(const float* x, int64_t M, int64_t K, int bits, int group_size,
                            VnniX& out) {
  const int64_t groups = K / group_size, blocks = K / 32;
  out.rows = M;
  out.pairs = (blocks + 1) / 2;
  out.padded_groups = (groups + 15) / 16 * 16;
  out.q.assign(out.pairs * M * 64, 0);
  out.d.assign(M * out.padded_groups, 0.0f);
  out.sum.assign(M * out.padded_groups, 0.0f);
  int order[32];
  for (int i = 0; i < 32; ++i) order[i] = bits == 4 ? vnni_order(i) : i;
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t first_block = g * group_size / 32;
      int sum = 0;
      const float d = round_group_int8(
          x + m * K + g * group_size, group_size, order,
          [&](int64_t b) {
            const int64_t block = first_block + b;
            return out.q.data() + ((block / 2) * M + m) * 64 + (block % 2) * 32;
          },
          &sum);
      out.d[m * out.padded_groups + g] = d;
      out.sum[m * out.padded_groups + g] = d * float(sum);
    }
  }
}

// The 64 weights of pair p of a row as bytes (4-bit: 0..15 in the order above; 8-bit: as
// stored, 0..255). `half` when the row's last pair holds one block only.
template <int BITS>
inline __m512i unpack_pair(const uint8_t* row, int64_t p, bool half) {
  if constexpr (BITS == 4) {
    const __m256i y = half ? _mm256_maskz_loadu_epi8(0xffffu, row + p * 32)
                           : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + p * 32));
    // 128-bit lanes [block 0, block 0, block 1, block 1]; the second of each shifted down a
    // nibble (16-bit elements 8..15 and 24..31); then every byte masked to its nibble.
    const __m512i twice =
        _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3), _mm512_castsi256_si512(y));
    const __m512i shifted = _mm512_mask_srli_epi16(twice, 0xff00ff00u, twice, 4);
    return _mm512_and_si512(shifted, _mm512_set1_epi8(0x0f));
  } else {
    return half ? _mm512_maskz_loadu_epi8(0xffffffffull, row + p * 64) : _mm512_loadu_si512(row + p * 64);
  }
}

// 16 consecutive scales (or biases) as float32; those past `mask` are 0.
inline __m512 load16(const void* p, int64_t i, __mmask16 mask, ScaleType type) {
  switch (type) {
    case ScaleType::F32:
      return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(p) + i);
    case ScaleType::F16:
      return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(p) + i));
    default: {
      const __m256i h = _mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(p) + i);
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
  }
}

// NR output rows (n, n+1, ...) against MT rows of x (m0, m0+1, ...): each pair of weight blocks
// is unpacked once for all MT rows. Groups go 16 at a time: their scales times x's d are the
// factors of the int32 dot products (one per group, moved to the lanes that hold that group's
// sums with a permute), their biases times x's sums the bias term.
template <int BITS, int G, int NR, int MT>
inline void qmm_t_vnni_tile(const VnniX& X, int64_t m0, const QuantizedMatrix& W, int64_t n,
                            float* out, int64_t ldo) {
  const int64_t groups = W.groups(), blocks = W.cols / 32;
  const uint8_t* rows[NR];
  __m512 acc[NR][MT], bias_acc[NR][MT];
  OSU_UNROLL for (int r = 0; r < NR; ++r) {
    rows[r] = W.packed + (n + r) * W.row_bytes();
    OSU_UNROLL for (int m = 0; m < MT; ++m) acc[r][m] = bias_acc[r][m] = _mm512_setzero_ps();
  }
  // The dot products' lanes: with groups of 32, lanes 0-7 of a pair are its first block's
  // group and lanes 8-15 its second's; larger groups fill all 16 lanes with one group.
  const __m512i second_half = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  for (int64_t c = 0; c < groups; c += 16) {
    const int64_t left = groups - c;
    const __mmask16 mask = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
    __m512 factor[NR][MT];
    OSU_UNROLL for (int r = 0; r < NR; ++r) {
      const int64_t at = (n + r) * groups + c;
      const __m512 s = load16(W.scales, at, mask, W.scale_type);
      const __m512 b = load16(W.biases, at, mask, W.scale_type);
      OSU_UNROLL for (int m = 0; m < MT; ++m) {
        factor[r][m] = _mm512_mul_ps(s, _mm512_loadu_ps(X.d_of(m0 + m, c)));
        bias_acc[r][m] = _mm512_fmadd_ps(b, _mm512_loadu_ps(X.sum_of(m0 + m, c)), bias_acc[r][m]);
      }
    }
    const int64_t chunk_groups = std::min<int64_t>(16, left);
    for (int64_t j = 0; j < chunk_groups; j += (G == 32 ? 2 : 1)) {  // G = 32: a pair is 2 groups
      const int64_t g = c + j;
      const __m512i lanes = G == 32 ? _mm512_add_epi32(_mm512_set1_epi32(int(j)), second_half)
                                    : _mm512_set1_epi32(int(j));
      constexpr int pairs_per_group = G == 32 ? 1 : G / 64;
      const int64_t p0 = G == 32 ? g / 2 : g * pairs_per_group;
      __m512i dot[NR][MT];
      OSU_UNROLL for (int r = 0; r < NR; ++r)
        OSU_UNROLL for (int m = 0; m < MT; ++m) dot[r][m] = _mm512_setzero_si512();
      OSU_UNROLL for (int p = 0; p < pairs_per_group; ++p) {
        const bool half = G == 32 && 2 * (p0 + p) + 1 >= blocks;
        __m512i w[NR];
        OSU_UNROLL for (int r = 0; r < NR; ++r) w[r] = unpack_pair<BITS>(rows[r], p0 + p, half);
        // x is read from memory by each dpbusd (L1): held in a register, GCC 12 spilled it
        // to an unaligned stack slot and reloaded it, stalling on store forwarding.
        OSU_UNROLL for (int m = 0; m < MT; ++m) {
          const int8_t* xv = X.pair(p0 + p, m0 + m);
          OSU_UNROLL for (int r = 0; r < NR; ++r)
            dot[r][m] = _mm512_dpbusd_epi32(dot[r][m], w[r], _mm512_loadu_si512(xv));
        }
      }
      OSU_UNROLL for (int r = 0; r < NR; ++r)
        OSU_UNROLL for (int m = 0; m < MT; ++m)
          acc[r][m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[r][m]),
                                      _mm512_permutexvar_ps(lanes, factor[r][m]), acc[r][m]);
    }
  }
  OSU_UNROLL for (int r = 0; r < NR; ++r)
    OSU_UNROLL for (int m = 0; m < MT; ++m)
      out[(m0 + m) * ldo + n + r] =
          _mm512_reduce_add_ps(acc[r][m]) + _mm512_reduce_add_ps(bias_acc[r][m]);
}

// Tiles: measured on a Zen 5 VM (bench/kernel.py), one output row at a time streams the
// weights fastest while few rows of x share them (decoding: 14336 x 4096, batch 1, 0.75 ms
// against 1.3 ms for two rows at a time); from 5 rows of x, two output rows per tile reuse each
// x load twice and win. The tile shape does not change any row's result (see the tile).
template <int BITS, int G>
inline void qmm_t_vnni_g(const VnniX& X, const QuantizedMatrix& W, int64_t n0, int64_t n1,
                         float* out, int64_t ldo) {
  const int64_t M = X.rows;
  for (int64_t n = n0; n < n1;) {
    const int nr = M > 4 && n + 2 <= n1 ? 2 : 1;
    for (int64_t m = 0; m < M; m += 4) {  // rows of x, four at a time; the weights stay in L1
#define OSU_TILE(NR, MT) qmm_t_vnni_tile<BITS, G, NR, MT>(X, m, W, n, out, ldo)
      switch (std::min<int64_t>(4, M - m)) {
        case 4: nr == 2 ? OSU_TILE(2, 4) : OSU_TILE(1, 4); break;
        case 3: nr == 2 ? OSU_TILE(2, 3) : OSU_TILE(1, 3); break;
        case 2: nr == 2 ? OSU_TILE(2, 2) : OSU_TILE(1, 2); break;
        default: nr == 2 ? OSU_TILE(2, 1) : OSU_TILE(1, 1); break;
      }
#undef OSU_TILE
    }
    n += nr;
  }
}

// All rows of x (quantized by quantize_x_vnni) against output rows [n0, n1).
template <int BITS>
inline void qmm_t_vnni(const VnniX& X, const QuantizedMatrix& W, int64_t n0, int64_t n1,
                       float* out, int64_t ldo) {
  switch (W.group_size) {
    case 32: return qmm_t_vnni_g<BITS, 32>(X, W, n0, n1, out, ldo);
    case 64: return qmm_t_vnni_g<BITS, 64>(X, W, n0, n1, out, ldo);
    default: return qmm_t_vnni_g<BITS, 128>(X, W, n0, n1, out, ldo);
  }
}

}  // namespace osaurus

#endif  // OSU_HAVE_VNNI
