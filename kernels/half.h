// IEEE 754 binary16 ("half") in software: the fp16 wire format of the gradient allreduce. Not the
// compiler's _Float16, which clang 14 lacks on x86-64 (the sanitizer builds use it); conversions
// round to nearest even, keep infinities and NaN, and handle subnormals, as a hardware cast does.
#pragma once

#include <cstdint>
#include <cstring>

namespace horo::kernels {

struct Half {
  uint16_t bits = 0;
};
static_assert(sizeof(Half) == 2);

inline Half to_half(float value) {
  uint32_t x;
  std::memcpy(&x, &value, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  uint16_t out;
  if (x >= 0x47800000u) {  // 65536 and up, infinity, NaN
    out = x > 0x7f800000u ? 0x7e00u : 0x7c00u;
  } else if (x < 0x38800000u) {  // below 2^-14: a half subnormal or zero; float addition rounds it
    float magnitude;
    std::memcpy(&magnitude, &x, 4);
    magnitude += 0.5f;  // 2^-1: its ulp is 2^-24, the half subnormal step
    uint32_t y;
    std::memcpy(&y, &magnitude, 4);
    out = static_cast<uint16_t>(y - 0x3f000000u);
  } else {  // normal: rebias the exponent, round the 13 dropped bits to nearest even
    const uint32_t odd = (x >> 13) & 1u;
    x += 0xc8000fffu + odd;  // (15 - 127) << 23, plus the rounding bias
    out = static_cast<uint16_t>(x >> 13);
  }
  return Half{static_cast<uint16_t>(out | sign)};
}

inline float to_float(Half h) {
  uint32_t x = static_cast<uint32_t>(h.bits & 0x7fffu) << 13;
  const uint32_t exponent = x & (0x7c00u << 13);
  x += (127u - 15u) << 23;
  if (exponent == (0x7c00u << 13)) {
    x += (128u - 16u) << 23;  // infinity or NaN
  } else if (exponent == 0) {  // zero or subnormal: renormalise through a float subtraction
    x += 1u << 23;
    float value;
    std::memcpy(&value, &x, 4);
    value -= 6.103515625e-05f;  // 2^-14
    std::memcpy(&x, &value, 4);
  }
  x |= static_cast<uint32_t>(h.bits & 0x8000u) << 16;
  float out;
  std::memcpy(&out, &x, 4);
  return out;
}

}  // namespace horo::kernels
