// The tile transforms of Winograd F(M x M, 3 x 3), M = 2 or 4, for conv_winograd.cpp and
// conv_winograd_wgrad.cpp: the filters' (U = G g G^T), the input tiles' (V = B^T d B) and the output
// gradient's (A dy A^T) from [cell][channel] grids, and the products' back to output rows
// (Y = A^T M A). All run on vectors of channels, so no lane is wasted whatever the map's size.
// Internal to the CPU kernels.
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

// The tiles over a convolution's output map: tile (ty, tx) computes output cells (M ty + i, M tx + j),
// i, j < M, from input cells (M ty + i, M tx + j), i, j < M + 2, of the padded input; the tiles past
// the map's edge read and compute zeros.
struct Tiles {
  int64_t h = 0, w = 0;
};

template <int M>
Tiles tiles_for(const Conv2dShape& s) {
  return {(s.out_h() + M - 1) / M, (s.out_w() + M - 1) / M};
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

// Copies an image [channels][h][w] into a zero-padded grid [rows][columns][channels_t] of cells,
// its top-left cell at (top, left): the channels of a cell side by side, for transforms on channel
// vectors. The rest of the grid stays as it was (zero).
inline void to_grid(const float* image, int64_t channels, int64_t h, int64_t w, int64_t top, int64_t left,
                    int64_t columns, int64_t channels_t, float* grid) {
  for (int64_t r = 0; r < h; ++r) {  // [channel][cell] -> [cell][channel], row by row
    simd::transpose(image + r * w, h * w, channels, w, grid + ((top + r) * columns + left) * channels_t, channels_t);
  }
}

// The tiles of one image on channel vectors: from a zero-padded grid [rows][columns][channels]
// (`columns` cells a row), tile (ty, tx) reads the kIn x kIn cells from (M ty, M tx), applies the
// 1-D transform `Transform` (kIn -> M + 2 values) down its columns and then along its rows, and
// stores point (i, j) at out + (i (M + 2) + j) * point + tile * channels.
template <int M, int kIn, typename Transform>
void transform_tiles(const float* grid, int64_t columns, int64_t channels, const Tiles& tiles, int64_t point, float* out,
                     const Transform& transform) {
  constexpr int kT = M + 2;
  const D d;
  const int64_t n = lanes(), row = columns * channels;
  for (int64_t ty = 0; ty < tiles.h; ++ty) {
    for (int64_t tx = 0; tx < tiles.w; ++tx) {
      const float* cell = grid + M * ty * row + M * tx * channels;
      float* to = out + (ty * tiles.w + tx) * channels;
      for (int64_t c = 0; c < channels; c += n) {
        V t[kT][kIn];  // down the columns, [point row][cell column]
        HWY_UNROLL(6) for (int j = 0; j < kIn; ++j) {
          V column[kIn], values[kT];
          HWY_UNROLL(6) for (int i = 0; i < kIn; ++i) column[i] = hn::Load(d, cell + i * row + j * channels + c);
          transform(column, values);
          HWY_UNROLL(6) for (int i = 0; i < kT; ++i) t[i][j] = values[i];
        }
        HWY_UNROLL(6) for (int i = 0; i < kT; ++i) {  // along the rows
          V values[kT];
          transform(t[i], values);
          HWY_UNROLL(6) for (int j = 0; j < kT; ++j) hn::Store(values[j], d, to + (i * kT + j) * point + c);
        }
      }
    }
  }
}

#endif  // HWY_TARGET != HWY_SCALAR
}  // namespace horo::kernels::cpu::HWY_NAMESPACE::winograd
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
