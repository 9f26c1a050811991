// e^x and SiLU over vectors of float lanes, for the softmax of attention.cpp and the SwiGLU of
// decoder_layer.cpp: the compiler does not vectorize std::exp, and a prompt's attention takes
// tens of millions of them.
#pragma once

#include <cstdint>
#include <cstring>

namespace osaurus {

typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

// e^x lane by lane (F: a float vector, I: the int32 vector of as many lanes): x = n ln 2 + r
// with |r| <= ln 2 / 2 (ln 2 split in two, as Cody and Waite do), e^r by Cephes' degree-6
// polynomial for expf, then scaled by 2^n through the exponent bits: ~1 ulp. x is clamped to
// [-87, 88], where e^x stays a normal float.
template <typename F, typename I>
inline F exp_lanes(F x) {
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
  const I bits = (__builtin_convertvector(n, I) + 127) << 23;
  F scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// Each lane's result is the same at either width. 16 lanes are two AVX2 vectors, for loops
// that have work enough for both; 8 are one, where GCC keeps everything in registers (at 16 it
// spilled on AVX2 in attention's softmax).
inline v16f exp16(v16f x) { return exp_lanes<v16f, v16i>(x); }
inline v8f exp8(v8f x) { return exp_lanes<v8f, v8i>(x); }

// out[i] = silu(gate[i]) * up[i] = gate[i] / (1 + e^-gate[i]) * up[i], as mlx-lm's swiglu.
inline void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const int64_t m = n - i < 16 ? n - i : 16;
    v16f g = {}, u = {};
    std::memcpy(&g, gate + i, m * sizeof(float));
    std::memcpy(&u, up + i, m * sizeof(float));
    const v16f y = g / (1.0f + exp16(-g)) * u;
    std::memcpy(out + i, &y, m * sizeof(float));
  }
}

}  // namespace osaurus
