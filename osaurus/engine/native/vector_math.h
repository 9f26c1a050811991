// e^x and SiLU over vectors of 8 float lanes, for the softmax of attention.cpp, the logsumexp
// of fast_ops.cpp and the SwiGLU of decoder_layer.cpp: the compiler does not vectorize
// std::exp, and a prompt's attention takes tens of millions of them. 8 lanes are one AVX2
// vector, where GCC keeps everything in registers; 16 (two vectors) spilled on AVX2, and the
// logsumexp and SwiGLU loops took 2-4x the time (their lanes' results are the same at 8).
#pragma once

#include <cstdint>
#include <cstring>

namespace osaurus {

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

// e^x lane by lane: x = n ln 2 + r with |r| <= ln 2 / 2 (ln 2 split in two, as Cody and Waite
// do), e^r by Cephes' degree-6 polynomial for expf, then scaled by 2^n through the exponent
// bits: ~1 ulp. x is clamped to [-87, 88], where e^x stays a normal float.
inline v8f exp8(v8f x) {
  using F = v8f;
  x = x < -87.0f ? F{} - 87.0f : x;
  x = x > 88.0f ? F{} + 88.0f : x;
  const F n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  const F r = x - n * 0.693359375f + n * 2.12194440e-4f;
  F p = 1.9875691500e-4f + F{};
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const v8i bits = (__builtin_convertvector(n, v8i) + 127) << 23;
  F scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// out[i] = silu(gate[i]) * up[i] = gate[i] / (1 + e^-gate[i]) * up[i], as mlx-lm's swiglu.
inline void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  const auto silu_times = [](v8f g, v8f u) { return g / (1.0f + exp8(-g)) * u; };
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {  // whole vectors: fixed-size copies, no call to memcpy
    v8f g, u;
    std::memcpy(&g, gate + i, sizeof g);
    std::memcpy(&u, up + i, sizeof u);
    const v8f y = silu_times(g, u);
    std::memcpy(out + i, &y, sizeof y);
  }
  if (i < n) {
    v8f g = {}, u = {};
    std::memcpy(&g, gate + i, (n - i) * sizeof(float));
    std::memcpy(&u, up + i, (n - i) * sizeof(float));
    const v8f y = silu_times(g, u);
    std::memcpy(out + i, &y, (n - i) * sizeof(float));
  }
}

}  // namespace osaurus
