// The row loops of RMS norm and RoPE, shared by their own primitives (fast_ops.cpp) and the
// decoder-layer primitives (decoder_layer.cpp), so both compute the same numbers.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace osaurus {

template <typename In, typename Out>
void rms_norm_rows(
    const In* x, const Out* w, Out* out, int64_t r0, int64_t r1, int64_t D, float eps) {
  for (int64_t r = r0; r < r1; ++r) {
    const In* xr = x + r * D;
    float partial[8] = {};  // independent sums so the loop vectorizes
    int64_t i = 0;
    for (; i + 8 <= D; i += 8)
      for (int j = 0; j < 8; ++j) partial[j] += float(xr[i + j]) * float(xr[i + j]);
    for (; i < D; ++i) partial[0] += float(xr[i]) * float(xr[i]);
    float sum = 0;
    for (float p : partial) sum += p;
    const float inv = 1.0f / std::sqrt(sum / float(D) + eps);
    Out* o = out + r * D;
    for (i = 0; i < D; ++i) {
      const Out y = Out(float(xr[i]) * inv);  // MLX rounds to the output type before the weight
      o[i] = w ? Out(float(y) * float(w[i])) : y;
    }
  }
}

// cos and sin of every (offset row, position, frequency), computed once and shared by heads.
struct RotaryTable {
  int64_t T, half;
  std::vector<float> cos, sin;

  RotaryTable(const int32_t* offsets, int64_t n_offsets, int64_t T, int64_t half, float base,
              float scale, const float* freqs)
      : T(T), half(half), cos(n_offsets * T * half), sin(n_offsets * T * half) {
    std::vector<float> inv_freq(half);
    const float step = std::log(base) / float(half);
    for (int64_t i = 0; i < half; ++i)
      inv_freq[i] = freqs ? 1.0f / freqs[i] : std::exp(float(-i) * step);
    for (int64_t o = 0; o < n_offsets; ++o)
      for (int64_t t = 0; t < T; ++t) {
        const float position = (float(t) + float(offsets[o])) * scale;
        for (int64_t i = 0; i < half; ++i) {
          const float theta = position * inv_freq[i];
          cos[(o * T + t) * half + i] = std::cos(theta);
          sin[(o * T + t) * half + i] = std::sin(theta);
        }
      }
  }

  // The cos and sin of offset row o at position t (half values each).
  const float* cos_at(int64_t o, int64_t t) const { return cos.data() + (o * T + t) * half; }
  const float* sin_at(int64_t o, int64_t t) const { return sin.data() + (o * T + t) * half; }
};

// One row of D values (as float32 in `row`) rotated over its first `dims` into dst; the rest
// copied. Traditional rotates adjacent pairs (x0, x1), the default the two halves of `dims`.
template <typename T>
inline void rotate_row(const float* row, const float* c, const float* s, int64_t D, int dims,
                       bool traditional, T* dst) {
  const int64_t half = dims / 2;
  for (int64_t i = 0; i < half; ++i) {
    const int64_t a = traditional ? 2 * i : i, b = traditional ? 2 * i + 1 : i + half;
    dst[a] = T(row[a] * c[i] - row[b] * s[i]);
    dst[b] = T(row[a] * s[i] + row[b] * c[i]);
  }
  for (int64_t i = dims; i < D; ++i) dst[i] = T(row[i]);
}

}  // namespace osaurus
