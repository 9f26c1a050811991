// 16-bit floats as MLX stores them: IEEE half (float16) and bfloat16, converted to and from
// float32. Scales of quantized weights come in either; a float16 KV cache is read by attention
// and written by attention_inputs. With F16C (x86-64 from Haswell and Zen) the conversions
// are single instructions; elsewhere they are MLX's own float16_t conversions (native on arm64
// with FP16, on the bits otherwise), so they round as MLX's astype does.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__F16C__)
#include <immintrin.h>
#else
#include "mlx/types/half_types.h"
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
  mlx::core::float16_t half;
  std::memcpy(&half, &h, sizeof h);
  return static_cast<float>(half);
#endif
}

// float -> IEEE half, rounded to nearest even; beyond the half range, infinity.
inline uint16_t float_to_f16(float f) {
#if defined(__F16C__)
  return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
#else
  const mlx::core::float16_t half(f);
  uint16_t h;
  std::memcpy(&h, &half, sizeof h);
  return h;
#endif
}

inline float to_float(float x) { return x; }
inline float to_float(Half x) { return f16_to_float(x.bits); }

}  // namespace osaurus
