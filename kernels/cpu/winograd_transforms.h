// The tile transforms of Winograd F(M x M, 3 x 3), M = 2 or 4, for conv_winograd.cpp: the filters'
// (U = G g G^T), the padded input planes and their tiles' (V = B^T d B), and the products' back to
// output rows (Y = A^T M A). All are vectorised: the filters over output channels, the input tiles
// over the tiles of a tile row, the outputs over channels. Internal to the CPU kernels.
// A per-target header: included from kernel files compiled once per SIMD target.
#if defined(HORO_KERNELS_CPU_WINOGRAD_TRANSFORMS_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef HORO_KERNELS_CPU_WINOGRAD_TRANSFORMS_H_
#undef HORO_KERNELS_CPU_WINOGRAD_TRANSFORMS_H_
#else
#define HORO_KERNELS_CPU_WINOGRAD_TRANSFORMS_H_
#endif

#include <hwy/highway.h>

#include <algorithm>
#include <cstdint>

#include "kernels/conv2d.h"
#include "kernels/cpu/conv_padded.h"
#include "kernels/cpu/simd.h"

HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE::winograd {
#if HWY_TARGET != HWY_SCALAR  // one lane: no Winograd (and no ConcatEven)

using namespace padded;

// The 1-D transforms of F(M, 3), M = 2 or 4 output cells from M + 2 input cells. F(4, 3) uses the
// points 0, +-1, +-2 and infinity (Lavin and Gray's matrices).
// G g: one filter column (3 taps) to M + 2 values.
template <int M>
HWY_INLINE void filter_1d(V g0, V g1, V g2, V* t) {
  const D d;
  if constexpr (M == 2) {
    const V half = hn::Set(d, 0.5f);
    t[0] = g0;
    t[1] = hn::Mul(half, hn::Add(hn::Add(g0, g1), g2));
    t[2] = hn::Mul(half, hn::Add(hn::Sub(g0, g1), g2));
    t[3] = g2;
  } else {
    const V outer = hn::Add(g0, g2), ends = hn::MulAdd(hn::Set(d, 1.0f / 24), g0, hn::Mul(hn::Set(d, 1.0f / 6), g2));
    const V middle = hn::Mul(hn::Set(d, 1.0f / 12), g1);
    t[0] = hn::Mul(hn::Set(d, 0.25f), g0);
    t[1] = hn::Mul(hn::Set(d, -1.0f / 6), hn::Add(outer, g1));
    t[2] = hn::Mul(hn::Set(d, -1.0f / 6), hn::Sub(outer, g1));
    t[3] = hn::Add(ends, middle);
    t[4] = hn::Sub(ends, middle);
    t[5] = g2;
  }
}

// B^T x: M + 2 input cells to as many transformed values.
template <int M>
HWY_INLINE void input_1d(const V* x, V* t) {
  if constexpr (M == 2) {
    t[0] = hn::Sub(x[0], x[2]);
    t[1] = hn::Add(x[1], x[2]);
    t[2] = hn::Sub(x[2], x[1]);
    t[3] = hn::Sub(x[1], x[3]);
  } else {
    const D d;
    const V four = hn::Set(d, 4.0f), five = hn::Set(d, 5.0f), two = hn::Set(d, 2.0f);
    t[0] = hn::NegMulAdd(five, x[2], hn::MulAdd(four, x[0], x[4]));
    t[1] = hn::NegMulAdd(four, hn::Add(x[1], x[2]), hn::Add(x[3], x[4]));
    t[2] = hn::MulAdd(four, hn::Sub(x[1], x[2]), hn::Sub(x[4], x[3]));
    const V outer = hn::Sub(x[4], x[2]), inner = hn::Sub(x[3], x[1]);
    t[3] = hn::MulAdd(two, inner, outer);
    t[4] = hn::NegMulAdd(two, inner, outer);
    t[5] = hn::NegMulAdd(five, x[3], hn::MulAdd(four, x[1], x[5]));
  }
}

// A^T m: M + 2 products to M output cells.
template <int M>
HWY_INLINE void output_1d(const V* m, V* y) {
  if constexpr (M == 2) {
    y[0] = hn::Add(hn::Add(m[0], m[1]), m[2]);
    y[1] = hn::Sub(hn::Sub(m[1], m[2]), m[3]);
  } else {
    const D d;
    const V sum12 = hn::Add(m[1], m[2]), diff12 = hn::Sub(m[1], m[2]);
    const V sum34 = hn::Add(m[3], m[4]), diff34 = hn::Sub(m[3], m[4]);
    y[0] = hn::Add(hn::Add(m[0], sum12), sum34);
    y[1] = hn::MulAdd(hn::Set(d, 2.0f), diff34, diff12);
    y[2] = hn::MulAdd(hn::Set(d, 4.0f), sum34, sum12);
    y[3] = hn::Add(hn::MulAdd(hn::Set(d, 8.0f), diff34, diff12), m[5]);
  }
}

// Filters [out][in][3][3] (or, transposed, the 180-degree rotation of [in][out][3][3]) as
// U[point][in][out padded to vectors with zeros]. The taps are first transposed to [in][tap][out], so
// that G g G^T runs on vectors of output channels: this runs on the calling thread, every step, for
// the forward and the input gradient, and one filter at a time it had cost W5 1% of its step.
template <int M>
void transform_weights(const Conv2dShape& s, const float* weight, bool transposed, float* u, float* taps) {
  constexpr int kT = M + 2;
  const D d;
  const int64_t n = lanes(), out_t = padded_channels(s.out_channels), point = s.in_channels * out_t;
  std::fill(taps, taps + s.in_channels * kTaps * out_t, 0.0f);  // the padding channels
  if (transposed) {  // per c, [o][t] -> [8 - t][o]
    for (int64_t c = 0; c < s.in_channels; ++c) {
      const float* w = weight + c * s.out_channels * kTaps;
      for (int t = 0; t < kTaps; ++t) {
        float* row = taps + (c * kTaps + kTaps - 1 - t) * out_t;
        for (int64_t o = 0; o < s.out_channels; ++o) row[o] = w[o * kTaps + t];
      }
    }
  } else {  // [o][c * 9 + t] -> [c * 9 + t][o]
    simd::transpose(weight, s.in_channels * kTaps, s.out_channels, s.in_channels * kTaps, taps, out_t);
  }
  for (int64_t c = 0; c < s.in_channels; ++c) {
    for (int64_t o = 0; o < out_t; o += n) {
      const float* g = taps + c * kTaps * out_t + o;
      V t[3][kT];  // (G g)^T: per kernel column, its kT values
      HWY_UNROLL(3) for (int j = 0; j < 3; ++j) {
        filter_1d<M>(hn::Load(d, g + j * out_t), hn::Load(d, g + (3 + j) * out_t), hn::Load(d, g + (6 + j) * out_t), t[j]);
      }
      HWY_UNROLL(6) for (int i = 0; i < kT; ++i) {  // (G g) G^T
        V row[kT];
        filter_1d<M>(t[0][i], t[1][i], t[2][i], row);
        float* out = u + (i * kT) * point + c * out_t + o;
        HWY_UNROLL(6) for (int j = 0; j < kT; ++j) hn::Store(row[j], d, out + j * point);
      }
    }
  }
}

// The padded planes of one image: rows of `stride` floats, M * tiles_h + 2 rows per plane. Tile p of
// a tile row reads columns M p to M p + M + 1, vectorised over p. F(2, 3) rows are plain (the even and
// odd columns split by ConcatEven / ConcatOdd as they are loaded); F(4, 3) rows hold their columns by
// phase, 4k, then 4k + 1, 4k + 2 and 4k + 3 (`phase` floats each), so that the six columns a tile
// reads are six plain loads: the phases are split once, as the image is copied in.
struct Planes {
  int64_t tiles_h = 0, tiles_w = 0;
  int64_t stride = 0, plane = 0;
  int64_t phase = 0;  // F(4, 3)
};

template <int M>
Planes planes_for(const Conv2dShape& s) {
  Planes pl;
  pl.tiles_h = (s.out_h() + M - 1) / M;
  pl.tiles_w = (s.out_w() + M - 1) / M;
  if constexpr (M == 2) {
    pl.stride = 2 * pl.tiles_w + 2;
  } else {
    pl.phase = pl.tiles_w + 1;
    pl.stride = 4 * pl.phase;
  }
  pl.plane = (M * pl.tiles_h + 2) * pl.stride;
  return pl;
}

// Copies an image [channels, h, w] into the interiors of the planes (input column x is padded column
// pad_w + x). The borders stay zero: the buffer is zeroed once per call, and every image writes the
// same cells.
template <int M>
void pad_planes(const float* image, int64_t channels, int64_t h, int64_t w, int64_t pad_h, int64_t pad_w,
                const Planes& pl, float* planes) {
  if constexpr (M == 2) {
    pad_image(image, channels, h, w, pad_h, pad_w, pl.plane, pl.stride, planes);
  } else {
    const D d;
    const int64_t n = lanes();
    for (int64_t c = 0; c < channels; ++c) {
      for (int64_t r = 0; r < h; ++r) {
        const float* src = image + (c * h + r) * w;
        float* row = planes + c * pl.plane + (pad_h + r) * pl.stride;
        float* to[4];  // input columns 4k + i go to phase (pad_w + i) % 4 from (pad_w + i) / 4
        for (int i = 0; i < 4; ++i) to[i] = row + (pad_w + i) % 4 * pl.phase + (pad_w + i) / 4;
        int64_t k = 0;
        for (; 4 * (k + n) <= w; k += n) {
          const float* x = src + 4 * k;
          const V a0 = hn::LoadU(d, x), a1 = hn::LoadU(d, x + n), a2 = hn::LoadU(d, x + 2 * n), a3 = hn::LoadU(d, x + 3 * n);
          const V even01 = hn::ConcatEven(d, a1, a0), odd01 = hn::ConcatOdd(d, a1, a0);
          const V even23 = hn::ConcatEven(d, a3, a2), odd23 = hn::ConcatOdd(d, a3, a2);
          hn::StoreU(hn::ConcatEven(d, even23, even01), d, to[0] + k);
          hn::StoreU(hn::ConcatEven(d, odd23, odd01), d, to[1] + k);
          hn::StoreU(hn::ConcatOdd(d, even23, even01), d, to[2] + k);
          hn::StoreU(hn::ConcatOdd(d, odd23, odd01), d, to[3] + k);
        }
        for (; 4 * k < w; ++k) {
          for (int i = 0; i < 4 && 4 * k + i < w; ++i) to[i][k] = src[4 * k + i];
        }
      }
    }
  }
}

// V[point][c][tile] for tiles [0, count) of the tile row starting at plane offset `at` (its top
// row), tiles vectorised; `tiles_t` is the length of V's tile dimension. Whole vectors are stored:
// lanes past `count` hold garbage that the next row's tiles overwrite (or the slack at the end).
template <int M>
void transform_inputs(const Planes& pl, const float* planes, int64_t channels, int64_t at, int64_t count,
                      int64_t tiles_t, float* v) {
  constexpr int kT = M + 2;
  const D d;
  const int64_t n = lanes();
  const int64_t point = channels * tiles_t;
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t p0 = 0; p0 < count; p0 += n) {
      V t[kT][kT];  // B^T x, [row][column]
      if constexpr (M == 2) {
        const float* base = planes + c * pl.plane + at + 2 * p0;
        V x[4][4];
        HWY_UNROLL(4) for (int i = 0; i < 4; ++i) {
          const float* row = base + i * pl.stride;
          const V a0 = hn::LoadU(d, row), a1 = hn::LoadU(d, row + n);
          const V b0 = hn::LoadU(d, row + 2), b1 = hn::LoadU(d, row + 2 + n);
          x[0][i] = hn::ConcatEven(d, a1, a0);  // column 2p, as [column][row]
          x[1][i] = hn::ConcatOdd(d, a1, a0);   // 2p + 1
          x[2][i] = hn::ConcatEven(d, b1, b0);  // 2p + 2
          x[3][i] = hn::ConcatOdd(d, b1, b0);   // 2p + 3
        }
        HWY_UNROLL(4) for (int j = 0; j < 4; ++j) {
          V column[4];
          input_1d<2>(x[j], column);
          HWY_UNROLL(4) for (int i = 0; i < 4; ++i) t[i][j] = column[i];
        }
      } else {
        const float* base = planes + c * pl.plane + at + p0;
        HWY_UNROLL(6) for (int j = 0; j < kT; ++j) {  // column 4p + j: phase j % 4, from p + j / 4
          const float* column_at = base + (j % 4) * pl.phase + j / 4;
          V x[kT], column[kT];
          HWY_UNROLL(6) for (int i = 0; i < kT; ++i) x[i] = hn::LoadU(d, column_at + i * pl.stride);
          input_1d<4>(x, column);
          HWY_UNROLL(6) for (int i = 0; i < kT; ++i) t[i][j] = column[i];
        }
      }
      float* out = v + c * tiles_t + p0;
      HWY_UNROLL(6) for (int i = 0; i < kT; ++i) {  // (B^T x) B
        V row[kT];
        input_1d<M>(t[i], row);
        HWY_UNROLL(6) for (int j = 0; j < kT; ++j) hn::StoreU(row[j], d, out + (i * kT + j) * point);
      }
    }
  }
}

// Y = A^T M A for tiles [0, count) and every channel vector: M output rows, row i at rows + i *
// row_size, [M p + j][channels] = y[i][j].
template <int M>
void transform_outputs(const float* m, int64_t m_point, int64_t count, int64_t out_t, float* rows, int64_t row_size) {
  constexpr int kT = M + 2;
  const D d;
  const int64_t n = lanes();
  for (int64_t p = 0; p < count; ++p) {
    for (int64_t o = 0; o < out_t; o += n) {
      const float* mp = m + p * out_t + o;
      V s[M][kT];  // A^T M
      HWY_UNROLL(6) for (int j = 0; j < kT; ++j) {
        V column[kT], y[M];
        HWY_UNROLL(6) for (int i = 0; i < kT; ++i) column[i] = hn::Load(d, mp + (i * kT + j) * m_point);
        output_1d<M>(column, y);
        HWY_UNROLL(4) for (int i = 0; i < M; ++i) s[i][j] = y[i];
      }
      HWY_UNROLL(4) for (int i = 0; i < M; ++i) {  // (A^T M) A
        V y[M];
        output_1d<M>(s[i], y);
        HWY_UNROLL(4) for (int j = 0; j < M; ++j) hn::Store(y[j], d, rows + i * row_size + (M * p + j) * out_t + o);
      }
    }
  }
}

#endif  // HWY_TARGET != HWY_SCALAR
}  // namespace horo::kernels::cpu::HWY_NAMESPACE::winograd
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
