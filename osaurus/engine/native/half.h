// 16-bit floats as MLX stores them: IEEE half (float16) and bfloat16, converted to and from
// float32. Scales of quantized weights come in either; a float16 KV cache is read by attention
// and written by attention_inputs. With F16C (x86-64 from Haswell and Zen) the conversions
// are single instructions; elsewhere they are done on the bits, rounding to nearest even as
// MLX's astype does.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace osaurus {

// An IEEE half, as its bits: a distinct type, so that float16 data is never read as integers.
struct Half {
  uint16_t bits;
};

inline float bf16_to_float(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline float f16_to_float(uint16_t h) {
#if defined(__F16C__)
  return _cvtsh_ss(h);
#else
  // IEEE half -> float, including subnormals, infinities and NaN.
  uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000 | (mant << 13);
  } else if (exp != 0) {
    u = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    u = sign;
  } else {  // subnormal: normalise
    exp = 113;
    while (!(mant & 0x400)) {
      mant <<= 1;
      --exp;
    }
    u = sign | (exp << 23) | ((mant & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// float -> IEEE half, rounded to nearest even; beyond the half range, infinity.
inline uint16_t float_to_f16(float f) {
#if defined(__F16C__)
  return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  const uint16_t sign = (u >> 16) & 0x8000;
  u &= 0x7fffffff;
  if (u > 0x7f800000) return sign | 0x7e00;   // NaN (quiet)
  if (u >= 0x477ff000) return sign | 0x7c00;  // 65520 and up round to infinity
  if (u < 0x38800000) {                       // below 2^-14: a half subnormal (or zero)
    float magnitude;
    std::memcpy(&magnitude, &u, sizeof magnitude);
    return sign | uint16_t(std::nearbyint(magnitude * 16777216.0f));  // units of 2^-24
  }
  // Normal: the exponent rebiased (127 -> 15) and 23 mantissa bits rounded to 10, a carry
  // running into the exponent as it should.
  return sign | uint16_t((u - 0x38000000 + 0xfff + ((u >> 13) & 1)) >> 13);
#endif
}

inline float to_float(float x) { return x; }
inline float to_float(Half x) { return f16_to_float(x.bits); }

}  // namespace osaurus
