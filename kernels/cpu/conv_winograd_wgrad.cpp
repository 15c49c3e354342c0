// The weight gradient of a 3x3 stride-1 convolution by Winograd F(M x M, 3 x 3), M = 2 or 4. Per
// output tile t, dw (3x3) is the correlation of the tile's (M + 2)^2 input cells d with its M^2
// output-gradient cells dy; by the transposition principle,
//   dw = G^T [ sum over tiles and images of (A dy A^T) (.) (B^T d B) ] G,
// with the forward's matrices (A^T the output transform, B^T the input one, G the filter one), so
// the sum is (M + 2)^2 GEMMs over tiles, one per transform point, of (M + 2)^2 / (9 M^2) the direct
// products: 0.44 for F(2, 3), 0.25 for F(4, 3).
//
//  transforms:       the input and the output gradient transposed to [cell][channels] on zero-padded
//                    grids of whole tiles, then B^T d B and A dy A^T per tile on channel vectors, into
//                    V[point][tile][in channels] and Y[point][tile][out channels], for a group of
//                    images at once: no lane is wasted, whatever the map's size.
//  multiply:         per point, register blocks of P input channels x OV channel vectors that stay
//                    in registers over every tile of the group (each V value broadcast, each Y row
//                    loaded once per block): no packing, no horizontal sums.
//  filter:           the threads' sums added, G^T U G on vectors of output channels, transposed to
//                    [out][in][3][3].
#include <algorithm>
#include <vector>

#include "kernels/parallel.h"

// Compiled once per SIMD target (hwy/foreach_target.h).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/conv_winograd_wgrad.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/dispatch.h"
#include "kernels/cpu/conv_image.h"
#include "kernels/cpu/conv_padded.h"
#include "kernels/cpu/winograd_transforms.h"

HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE {

#if HWY_TARGET == HWY_SCALAR
bool winograd_backward_weight(const Conv2dShape&, const float*, const float*, float*, float*) { return false; }
#else
namespace {

using namespace padded;
using namespace winograd;

// Input channels per register block for OV = 1, 2 and 4 channel vectors (as the forward's tiles).
constexpr int kChannels1 = kWide ? 16 : 12;
constexpr int kChannels2 = kWide ? 12 : 6;
constexpr int kChannels4 = kWide ? 6 : 3;

// A g: M output-gradient cells to M + 2 values (A = the forward's A^T, transposed).
template <int M>
HWY_INLINE void grad_1d(const V* g, V* t) {
  if constexpr (M == 2) {
    t[0] = g[0];
    t[1] = hn::Add(g[0], g[1]);
    t[2] = hn::Sub(g[0], g[1]);
    t[3] = hn::Neg(g[1]);
  } else {
    const D d;
    const V even = hn::Add(g[0], g[2]), odd = hn::Add(g[1], g[3]);
    const V even2 = hn::MulAdd(hn::Set(d, 4.0f), g[2], g[0]);
    const V odd2 = hn::MulAdd(hn::Set(d, 8.0f), g[3], hn::Add(g[1], g[1]));
    t[0] = g[0];
    t[1] = hn::Add(even, odd);
    t[2] = hn::Sub(even, odd);
    t[3] = hn::Add(even2, odd2);
    t[4] = hn::Sub(even2, odd2);
    t[5] = g[3];
  }
}

// G^T u: M + 2 transformed values to 3 taps.
template <int M>
HWY_INLINE void taps_1d(const V* u, V* w) {
  const D d;
  if constexpr (M == 2) {
    const V half = hn::Set(d, 0.5f), middle = hn::Add(u[1], u[2]);
    w[0] = hn::MulAdd(half, middle, u[0]);
    w[1] = hn::Mul(half, hn::Sub(u[1], u[2]));
    w[2] = hn::MulAdd(half, middle, u[3]);
  } else {
    const V sum12 = hn::Add(u[1], u[2]), diff12 = hn::Sub(u[1], u[2]);
    const V sum34 = hn::Add(u[3], u[4]), diff34 = hn::Sub(u[3], u[4]);
    const V sixth = hn::Set(d, 1.0f / 6);
    w[0] = hn::MulAdd(hn::Set(d, 1.0f / 24), sum34, hn::NegMulAdd(sixth, sum12, hn::Mul(hn::Set(d, 0.25f), u[0])));
    w[1] = hn::MulAdd(hn::Set(d, 1.0f / 12), diff34, hn::Mul(hn::Set(d, -1.0f / 6), diff12));
    w[2] = hn::Add(hn::Mul(sixth, hn::Sub(sum34, sum12)), u[5]);
  }
}

// u[p][ov...] += sum over tiles k of v[k][p] * y[k][ov...], for P input channels and OV channel
// vectors (v's tiles `in_t` floats apart, y's `out_t`).
template <int OV, int P>
HWY_INLINE void accumulate_point(const float* v, int64_t in_t, int64_t tiles, const float* y, int64_t out_t,
                                 float* u) {
  const D d;
  const size_t n = hn::Lanes(d);
  V acc[P][OV];
  HWY_UNROLL(16) for (int p = 0; p < P; ++p) {
    HWY_UNROLL(4) for (int ov = 0; ov < OV; ++ov) acc[p][ov] = hn::Load(d, u + p * out_t + ov * n);
  }
  for (int64_t k = 0; k < tiles; ++k) {
    V g[OV];
    HWY_UNROLL(4) for (int ov = 0; ov < OV; ++ov) g[ov] = hn::Load(d, y + k * out_t + ov * n);
    HWY_UNROLL(16) for (int p = 0; p < P; ++p) {
      const V x = hn::Set(d, v[k * in_t + p]);
      HWY_UNROLL(4) for (int ov = 0; ov < OV; ++ov) acc[p][ov] = hn::MulAdd(g[ov], x, acc[p][ov]);
    }
  }
  HWY_UNROLL(16) for (int p = 0; p < P; ++p) {
    HWY_UNROLL(4) for (int ov = 0; ov < OV; ++ov) hn::Store(acc[p][ov], d, u + p * out_t + ov * n);
  }
}

// accumulate_point for P chosen at run time (1 to PMax).
template <int OV, int PMax>
void accumulate_block(int64_t p, const float* v, int64_t in_t, int64_t tiles, const float* y, int64_t out_t,
                      float* u) {
  if constexpr (PMax >= 1) {
    if (p < PMax) return accumulate_block<OV, PMax - 1>(p, v, in_t, tiles, y, out_t, u);
    accumulate_point<OV, PMax>(v, in_t, tiles, y, out_t, u);
  }
}

// Every input channel, in equal blocks of at most PMax, for channel vectors [0, OV).
template <int OV, int PMax>
void accumulate_channels(int64_t channels, const float* v, int64_t in_t, int64_t tiles, const float* y,
                         int64_t out_t, float* u) {
  const int64_t blocks = (channels + PMax - 1) / PMax, size = (channels + blocks - 1) / blocks;
  for (int64_t c0 = 0; c0 < channels; c0 += size) {
    accumulate_block<OV, PMax>(std::min(size, channels - c0), v + c0, in_t, tiles, y, out_t, u + c0 * out_t);
  }
}

template <int M>
void winograd_weight_grad(const Conv2dShape& s, const float* input, const float* grad_output, float* grad_weight,
                          float* grad_bias) {
  constexpr int kT = M + 2, kPoints = kT * kT;
  const int64_t n = lanes(), in_t = padded_channels(s.in_channels), out_t = padded_channels(s.out_channels);
  const int64_t vectors = out_t / n;
  const int64_t out_h = s.out_h(), out_w = s.out_w(), plane_out = out_h * out_w;
  const Tiles grid_tiles = tiles_for<M>(s);
  const int64_t tiles = grid_tiles.h * grid_tiles.w;
  // The input on a grid of whole tiles with the padding, [M tiles_h + 2][M tiles_w + 2][in_t]; the
  // output gradient on one of [M tiles_h][M tiles_w][out_t]. Zero outside the maps and in the
  // padding channels.
  const int64_t in_columns = M * grid_tiles.w + 2, in_grid = (M * grid_tiles.h + 2) * in_columns * in_t;
  const int64_t out_columns = M * grid_tiles.w, out_grid = M * grid_tiles.h * out_columns * out_t;
  const int64_t image = s.in_channels * s.in_h * s.in_w, out_size = s.out_channels * plane_out;
  const int threads = std::max(1, std::min<int>(get_num_threads(), static_cast<int>(s.batch)));
  // Images a group: V and Y of about 1 MB, so that the multiply reads them from L2.
  const int64_t image_bytes = kPoints * tiles * (in_t + out_t) * static_cast<int64_t>(sizeof(float));
  const int64_t group = std::clamp<int64_t>((int64_t{1} << 20) / image_bytes, 1, (s.batch + threads - 1) / threads);
  const int64_t v_point = group * tiles * in_t, y_point = group * tiles * out_t;
  const int64_t u_size = kPoints * s.in_channels * out_t, bias_size = grad_bias ? out_t : 0;
  thread_local std::vector<float> u_buffer;
  float* sums = thread_buffer(u_buffer, threads * (u_size + bias_size));
  std::fill(sums, sums + threads * (u_size + bias_size), 0.0f);
  parallel_for(threads, 1, [&](int64_t t_begin, int64_t t_end) {
    thread_local std::vector<float> grid_buffer, v_buffer, y_buffer;
    float* grids = thread_buffer(grid_buffer, in_grid + out_grid);
    std::fill(grids, grids + in_grid + out_grid, 0.0f);  // every image writes the same cells
    float* x_grid = grids;
    float* dy_grid = grids + in_grid;
    float* v = thread_buffer(v_buffer, kPoints * v_point);
    float* y = thread_buffer(y_buffer, kPoints * y_point);
    for (int64_t t = t_begin; t < t_end; ++t) {
      float* u = sums + t * u_size;
      float* bias_sums = sums + threads * u_size + t * bias_size;
      const int64_t first = s.batch * t / threads, last = s.batch * (t + 1) / threads;
      for (int64_t b0 = first; b0 < last; b0 += group) {
        const int64_t images = std::min(group, last - b0);
        for (int64_t i = 0; i < images; ++i) {
          const float* x = input + (b0 + i) * image;
          to_grid(x, s.in_channels, s.in_h, s.in_w, s.pad_h, s.pad_w, in_columns, in_t, x_grid);
          transform_tiles<M, M + 2>(x_grid, in_columns, in_t, grid_tiles, v_point, v + i * tiles * in_t,
                                    [](const V* cells, V* values) { input_1d<M>(cells, values); });
          const float* dy = grad_output + (b0 + i) * out_size;
          to_grid(dy, s.out_channels, out_h, out_w, 0, 0, out_columns, out_t, dy_grid);
          for (int64_t r = 0; r < out_h && grad_bias; ++r) {
            const float* row = dy_grid + r * out_columns * out_t;
            for (int64_t c = 0; c < out_w; ++c) simd::add(row + c * out_t, out_t, bias_sums);
          }
          transform_tiles<M, M>(dy_grid, out_columns, out_t, grid_tiles, y_point, y + i * tiles * out_t,
                                [](const V* cells, V* values) { grad_1d<M>(cells, values); });
        }
        const int64_t count = images * tiles;
        for (int point = 0; point < kPoints; ++point) {
          const float* vp = v + point * v_point;
          const float* yp = y + point * y_point;
          float* up = u + point * s.in_channels * out_t;
          for (int64_t ov = 0; ov < vectors;) {
            const int64_t left = vectors - ov;
            if (left >= 4) {
              accumulate_channels<4, kChannels4>(s.in_channels, vp, in_t, count, yp + ov * n, out_t, up + ov * n);
              ov += 4;
            } else if (left >= 2) {
              accumulate_channels<2, kChannels2>(s.in_channels, vp, in_t, count, yp + ov * n, out_t, up + ov * n);
              ov += 2;
            } else {
              accumulate_channels<1, kChannels1>(s.in_channels, vp, in_t, count, yp + ov * n, out_t, up + ov * n);
              ov += 1;
            }
          }
        }
      }
    }
  });
  // The threads' sums into the first's, then G^T U G per (in, out) into [in][tap][out], transposed to
  // [out][in][tap] (on the calling thread: 1/9 of one image's products per filter pair, or less).
  for (int t = 1; t < threads; ++t) simd::add(sums + t * u_size, u_size, sums);
  thread_local std::vector<float> taps_buffer;
  float* taps = thread_buffer(taps_buffer, s.in_channels * kTaps * out_t);
  const D d;
  for (int64_t c = 0; c < s.in_channels; ++c) {
    for (int64_t o = 0; o < out_t; o += n) {
      V rows[3][kT];  // G^T U, [tap row][point column]
      HWY_UNROLL(6) for (int j = 0; j < kT; ++j) {
        V column[kT], w[3];
        HWY_UNROLL(6) for (int i = 0; i < kT; ++i) column[i] = hn::Load(d, sums + ((i * kT + j) * s.in_channels + c) * out_t + o);
        taps_1d<M>(column, w);
        HWY_UNROLL(3) for (int i = 0; i < 3; ++i) rows[i][j] = w[i];
      }
      HWY_UNROLL(3) for (int i = 0; i < 3; ++i) {  // (G^T U) G
        V w[3];
        taps_1d<M>(rows[i], w);
        HWY_UNROLL(3) for (int j = 0; j < 3; ++j) hn::Store(w[j], d, taps + (c * kTaps + i * 3 + j) * out_t + o);
      }
    }
  }
  simd::transpose(taps, out_t, s.in_channels * kTaps, s.out_channels, grad_weight, s.in_channels * kTaps);
  if (grad_bias) {
    const float* bias_sums = sums + threads * u_size;
    for (int64_t o = 0; o < s.out_channels; ++o) {
      float sum = 0.0f;
      for (int t = 0; t < threads; ++t) sum += bias_sums[t * bias_size + o];
      grad_bias[o] = sum;
    }
  }
}

}  // namespace

// On by default on every target: F(4x4, 3x3) measured 1.2-1.6x the direct weight-gradient tiles on
// W5's three stages on both AVX2 and AVX-512 (its transforms run on channel vectors, so, unlike the
// forward's, they fill AVX-512's lanes). HORO_WINOGRAD=0 turns it off, HORO_WINOGRAD_TILE=2 takes F(2x2, 3x3).
bool winograd_backward_weight(const Conv2dShape& s, const float* input, const float* grad_output, float* grad_weight,
                              float* grad_bias) {
  if (winograd_mode() == 0 || !winograd_fits(s)) return false;
  if (winograd_forced_tile() == 2) {
    winograd_weight_grad<2>(s, input, grad_output, grad_weight, grad_bias);
  } else {
    winograd_weight_grad<4>(s, input, grad_output, grad_weight, grad_bias);
  }
  return true;
}
#endif  // HWY_TARGET != HWY_SCALAR

}  // namespace horo::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();
