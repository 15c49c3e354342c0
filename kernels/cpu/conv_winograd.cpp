// Winograd F(2x2, 3x3) and F(4x4, 3x3) for 3x3 stride-1 convolutions (Lavin and Gray, 2015): each
// (M + 2) x (M + 2) input tile d and each 3x3 filter g are transformed (V = B^T d B, U = G g G^T),
// multiplied point by point and summed over input channels ((M + 2)^2 small GEMMs, one per transform
// point), and transformed back to an M x M output tile (Y = A^T M A): 16 multiplies per 2x2 outputs
// and channel pair, or 36 per 4x4, instead of 36 or 144. F(2, 3)'s transforms only add, subtract and
// halve; F(4, 3)'s scale by up to 8 and 1/24, and its results stay within 1e-5 (normalised) of the
// reference in the tests as F(2, 3)'s do. tile_size() picks M per convolution.
//
//  transforms:       winograd_transforms.h; V[point][c][tile] holds every tile of an image.
//  multiply:         per point, register blocks of P tiles x OV vectors of output channels over all
//                    of the image's tiles: each V value broadcast, each U row loaded once per input
//                    channel and block (as the direct tiles), the point's U staying in L1.
//  output:           per tile row, the M output rows [cell][channel] are stored into NCHW by
//                    padded::store_block (bias added and BatchNorm statistics gathered there).
// The input gradient of a stride-1 convolution is one more forward convolution (the output gradient
// padded by 2 - pad, the weights rotated and transposed), so it runs here too.
#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "kernels/parallel.h"

// Compiled once per SIMD target (hwy/foreach_target.h).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/conv_winograd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/dispatch.h"
#include "kernels/cpu/conv_image.h"
#include "kernels/cpu/conv_padded.h"
#include "kernels/cpu/winograd_transforms.h"

HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE {

#if HWY_TARGET == HWY_SCALAR
// One lane: nothing to gain (and no ConcatEven); the direct and im2col kernels run instead.
int winograd_forced_tile() { return 0; }
int winograd_mode() { return 0; }
bool winograd_fits(const Conv2dShape&) { return false; }
bool winograd_applies(const Conv2dShape&) { return false; }
void winograd_forward(const Conv2dShape&, const float*, const float*, bool, const float*, float*, const float*, double*) {}
#else
namespace {

using namespace padded;
using namespace winograd;

// Tiles per register block for OV = 1, 2 and 4 channel vectors: the accumulators, the U vectors and a broadcast
// fit in the registers (32 on AVX-512, 16 on AVX2 and NEON).
constexpr int kTiles1 = kWide ? 16 : 12;
constexpr int kTiles2 = kWide ? 12 : 6;
constexpr int kTiles4 = kWide ? 6 : 3;

// One point: m[p][ov...] = sum over c of v[p][c] * u[c][ov...], for P tiles (`in_t` floats apart in v)
// and OV channel vectors.
template <int OV, int P>
HWY_INLINE void multiply_point(const float* v, int64_t in_t, int64_t channels, const float* u, int64_t out_t,
                               float* m) {
  const D d;
  const size_t n = hn::Lanes(d);
  V acc[P][OV];
  HWY_UNROLL(16) for (int p = 0; p < P; ++p) {
    HWY_UNROLL(4) for (int ov = 0; ov < OV; ++ov) acc[p][ov] = hn::Zero(d);
  }
  for (int64_t c = 0; c < channels; ++c) {
    V w[OV];
    HWY_UNROLL(4) for (int ov = 0; ov < OV; ++ov) w[ov] = hn::Load(d, u + c * out_t + ov * n);
    HWY_UNROLL(16) for (int p = 0; p < P; ++p) {
      const V x = hn::Set(d, v[p * in_t + c]);
      HWY_UNROLL(4) for (int ov = 0; ov < OV; ++ov) acc[p][ov] = hn::MulAdd(w[ov], x, acc[p][ov]);
    }
  }
  HWY_UNROLL(16) for (int p = 0; p < P; ++p) {
    HWY_UNROLL(4) for (int ov = 0; ov < OV; ++ov) hn::Store(acc[p][ov], d, m + p * out_t + ov * n);
  }
}

// multiply_point for P chosen at run time (1 to PMax).
template <int OV, int PMax>
void multiply_block(int64_t p, const float* v, int64_t in_t, int64_t channels, const float* u, int64_t out_t,
                    float* m) {
  if constexpr (PMax >= 1) {
    if (p < PMax) return multiply_block<OV, PMax - 1>(p, v, in_t, channels, u, out_t, m);
    multiply_point<OV, PMax>(v, in_t, channels, u, out_t, m);
  }
}

// M[point][tile][out_t] for all `tiles` of an image: per point and group of OV channel vectors, the
// tiles in equal blocks of at most TMax, so that the point's U stays in L1 while the tiles stream by.
template <int OV, int TMax>
void multiply_tiles(int64_t tiles, const float* v, int64_t in_t, int64_t channels, const float* u, int64_t out_t,
                    float* m) {
  const int64_t blocks = (tiles + TMax - 1) / TMax, size = (tiles + blocks - 1) / blocks;
  for (int64_t p0 = 0; p0 < tiles; p0 += size) {
    multiply_block<OV, TMax>(std::min(size, tiles - p0), v + p0 * in_t, in_t, channels, u, out_t, m + p0 * out_t);
  }
}

// Every point and channel vector of one image's products: V[point][tile][in_t] -> M[point][tile][out_t].
template <int M>
void multiply_points(int64_t tiles, const float* v, int64_t in_t, int64_t channels, const float* u, int64_t out_t,
                     float* m) {
  constexpr int kPoints = (M + 2) * (M + 2);
  const int64_t n = lanes(), vectors = out_t / n;
  for (int point = 0; point < kPoints; ++point) {
    const float* vp = v + point * tiles * in_t;
    const float* up = u + point * channels * out_t;
    float* mp = m + point * tiles * out_t;
    for (int64_t ov = 0; ov < vectors;) {
      const int64_t left = vectors - ov;
      if (left >= 4) {
        multiply_tiles<4, kTiles4>(tiles, vp, in_t, channels, up + ov * n, out_t, mp + ov * n);
        ov += 4;
      } else if (left >= 2) {
        multiply_tiles<2, kTiles2>(tiles, vp, in_t, channels, up + ov * n, out_t, mp + ov * n);
        ov += 2;
      } else {
        multiply_tiles<1, kTiles1>(tiles, vp, in_t, channels, up + ov * n, out_t, mp + ov * n);
        ov += 1;
      }
    }
  }
}

}  // namespace

// HORO_WINOGRAD_TILE: unset or "auto", the tile size the cost model below picks per convolution (and
// F(4x4, 3x3) for the weight gradients); "2" F(2x2, 3x3) everywhere; "4" F(4x4, 3x3) everywhere (the
// tests run both).
int winograd_forced_tile() {
  static const int tile = [] {
    const char* env = std::getenv("HORO_WINOGRAD_TILE");
    const std::string value = env ? env : "auto";
    if (value == "auto") return 0;
    if (value == "2" || value == "4") return value == "2" ? 2 : 4;
    throw ValueError("HORO_WINOGRAD_TILE='" + value + "': expected 2, 4 or auto");
  }();
  return tile;
}

// HORO_WINOGRAD: unset or "auto" (-1), "1" on wherever it applies, "0" off. A bad HORO_WINOGRAD_TILE
// is refused here too, even where Winograd is off.
int winograd_mode() {
  static const int mode = [] {
    const char* env = std::getenv("HORO_WINOGRAD");
    const std::string value = env ? env : "auto";
    if (value == "auto") return -1;
    if (value == "0" || value == "1") return value == "1" ? 1 : 0;
    throw ValueError("HORO_WINOGRAD='" + value + "': expected 0, 1 or auto");
  }();
  winograd_forced_tile();
  return mode;
}

bool winograd_fits(const Conv2dShape& s) {
  // Few input channels leave the transforms (per input channel) outweighing the multiplies saved.
  return s.kernel_h == 3 && s.kernel_w == 3 && s.stride_h == 1 && s.stride_w == 1 && s.dilation_h == 1 &&
         s.dilation_w == 1 && s.pad_h <= 2 && s.pad_w <= 2 && s.out_h() > 0 && s.out_w() > 0 && s.in_channels >= 8 &&
         2 * s.out_channels >= padded_channels(s.out_channels);
}

// The forward and the input gradient, on by default on every target: with the transforms on channel
// vectors, F(4x4, 3x3) measured 1.0-1.6x the direct tiles on W5's stages on AVX-512 too (one thread,
// best of 5), where the first, tile-vectorised transforms had left it at 0.63-0.79x.
bool winograd_applies(const Conv2dShape& s) { return winograd_mode() != 0 && winograd_fits(s); }

namespace {

template <int M>
void winograd_run(const Conv2dShape& s, const float* input, const float* weight, bool transposed, const float* bias,
                  float* output, const float* shift, double* sums) {
  constexpr int kPoints = (M + 2) * (M + 2);
  const int64_t n = lanes(), in_t = padded_channels(s.in_channels), out_t = padded_channels(s.out_channels);
  const int64_t out_h = s.out_h(), out_w = s.out_w(), plane_out = out_h * out_w;
  const Tiles grid_tiles = tiles_for<M>(s);
  const int64_t tiles = grid_tiles.h * grid_tiles.w;
  // The image on a zero-padded grid of whole tiles, [M tiles_h + 2][M tiles_w + 2][in_t].
  const int64_t columns = M * grid_tiles.w + 2, grid_size = (M * grid_tiles.h + 2) * columns * in_t;
  const int64_t image = s.in_channels * s.in_h * s.in_w, out_size = s.out_channels * plane_out;

  thread_local std::vector<float> u_buffer, taps_buffer;
  float* u = thread_buffer(u_buffer, kPoints * s.in_channels * out_t);
  transform_weights<M>(s, weight, transposed, u, thread_buffer(taps_buffer, s.in_channels * kTaps * out_t));

  const int threads = std::max(1, std::min<int>(get_num_threads(), static_cast<int>(s.batch)));
  std::vector<double> thread_sums(sums ? static_cast<size_t>(threads * 2 * s.out_channels) : 0, 0.0);
  parallel_for(threads, 1, [&](int64_t t_begin, int64_t t_end) {
    thread_local std::vector<float> grid_buffer, v_buffer, m_buffer, rows_buffer, stats_buffer;
    float* grid = thread_buffer(grid_buffer, grid_size);
    std::fill(grid, grid + grid_size, 0.0f);  // the borders and padding channels, for every image of the call
    float* v = thread_buffer(v_buffer, kPoints * tiles * in_t);  // V[point][tile][in_t]
    const int64_t m_point = tiles * out_t;
    float* m = thread_buffer(m_buffer, kPoints * m_point);  // M[point][tile][out_t]
    // The M output rows of a tile row; store_block reads whole 16-cell blocks.
    const int64_t row_cells = (M * grid_tiles.w + 15) / 16 * 16;
    float* rows = thread_buffer(rows_buffer, M * row_cells * out_t);
    Stats stats;
    if (sums) stats = {shift, thread_buffer(stats_buffer, s.out_channels * 2 * n)};
    for (int64_t t = t_begin; t < t_end; ++t) {
      for (int64_t b = s.batch * t / threads; b < s.batch * (t + 1) / threads; ++b) {
        to_grid(input + b * image, s.in_channels, s.in_h, s.in_w, s.pad_h, s.pad_w, columns, in_t, grid);
        transform_tiles<M, M + 2>(grid, columns, in_t, grid_tiles, tiles * in_t, v,
                                  [](const V* cells, V* values) { input_1d<M>(cells, values); });
        multiply_points<M>(tiles, v, in_t, s.in_channels, u, out_t, m);
        if (sums) std::fill(stats.sums, stats.sums + s.out_channels * 2 * n, 0.0f);
        float* y = output + b * out_size;
        for (int64_t ty = 0; ty < grid_tiles.h; ++ty) {
          transform_outputs<M>(m + ty * grid_tiles.w * out_t, m_point, grid_tiles.w, out_t, rows, row_cells * out_t);
          for (int64_t i = 0; i < M && M * ty + i < out_h; ++i) {
            store_block(rows + i * row_cells * out_t, out_w, out_t, 0, s.out_channels, plane_out, (M * ty + i) * out_w,
                        bias, y, stats);
          }
        }
        if (!sums) continue;
        add_image_stats(stats, s.out_channels, thread_sums.data() + t * 2 * s.out_channels);
      }
    }
  });
  if (!sums) return;
  add_thread_stats(thread_sums.data(), threads, s.out_channels, sums);
}

// F(4x4, 3x3) multiplies 36 points per 16 outputs where F(2x2, 3x3) multiplies 16 per 4, and its
// transforms, on channel vectors, cost about as much per output; but a map that is not a multiple of
// 4 wastes part of its tiles. Both cost about (M + 2)^2 per tile, so the one with fewer wins: F(4, 3)
// on W5's 28x28, 14x14 and 7x7 maps (on AVX2, 9-30% faster than F(2, 3), one thread, best of 5).
int tile_size(const Conv2dShape& s) {
  if (winograd_forced_tile() != 0) return winograd_forced_tile();
  const auto cost = [&](int64_t m) { return (m + 2) * (m + 2) * ((s.out_h() + m - 1) / m) * ((s.out_w() + m - 1) / m); };
  return cost(4) < cost(2) ? 4 : 2;
}

}  // namespace

void winograd_forward(const Conv2dShape& s, const float* input, const float* weight, bool transposed, const float* bias,
                      float* output, const float* shift, double* sums) {
  if (tile_size(s) == 4) {
    winograd_run<4>(s, input, weight, transposed, bias, output, shift, sums);
  } else {
    winograd_run<2>(s, input, weight, transposed, bias, output, shift, sums);
  }
}
#endif  // HWY_TARGET != HWY_SCALAR

}  // namespace horo::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();
