// Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions (Lavin and Gray, 2015): each 4x4 input tile d
// and each 3x3 filter g are transformed (V = B^T d B, U = G g G^T), multiplied point by point and
// summed over input channels (16 small GEMMs, one per transform point), and transformed back to a 2x2
// output tile (Y = A^T M A): 16 multiplies per 2x2 outputs and channel pair instead of 36. The
// transforms only add, subtract and halve, so the results stay within a few ulps of the direct sums.
//
//  input transform:  on zero-padded NCHW planes, vectorised over the tiles of a tile row (even and
//                    odd columns split by ConcatEven / ConcatOdd), into V[point][c][tile] holding
//                    every tile of an image.
//  multiply:         per point, register blocks of P tiles x OV vectors of output channels over all
//                    of the image's tiles: each V value broadcast, each U row loaded once per input
//                    channel and block (as the direct tiles), the point's U staying in L1.
//  output transform: per tile row, tile and channel vector, into two output rows [cell][channel],
//                    stored into NCHW by padded::store_block (bias added and BatchNorm statistics
//                    gathered there).
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

HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE {

#if HWY_TARGET == HWY_SCALAR
// One lane: nothing to gain (and no ConcatEven); the direct and im2col kernels run instead.
bool winograd_applies(const Conv2dShape&) { return false; }
void winograd_forward(const Conv2dShape&, const float*, const float*, bool, const float*, float*, const float*, double*) {}
#else
namespace {

using namespace padded;

constexpr int kPoints = 16;  // a 4x4 transformed tile
// Tiles per register block for OV = 1, 2 and 4 channel vectors: the accumulators, the U vectors and a broadcast
// fit in the registers (32 on AVX-512, 16 on AVX2 and NEON).
constexpr int kTiles1 = kWide ? 16 : 12;
constexpr int kTiles2 = kWide ? 12 : 6;
constexpr int kTiles4 = kWide ? 6 : 3;

// Filters [out][in][3][3] (or, transposed, the 180-degree rotation of [in][out][3][3]) as
// U[point][in][out padded to vectors with zeros]. The taps are first transposed to [in][tap][out], so
// that G g G^T runs on vectors of output channels: this runs on the calling thread, every step, for
// the forward and the input gradient, and one filter at a time it had cost W5 1% of its step.
void transform_weights(const Conv2dShape& s, const float* weight, bool transposed, float* u, float* taps) {
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
  const V half = hn::Set(d, 0.5f);
  for (int64_t c = 0; c < s.in_channels; ++c) {
    for (int64_t o = 0; o < out_t; o += n) {
      V g[3][3];
      HWY_UNROLL(9) for (int t = 0; t < kTaps; ++t) g[t / 3][t % 3] = hn::Load(d, taps + (c * kTaps + t) * out_t + o);
      V t[4][3];  // G g
      HWY_UNROLL(3) for (int j = 0; j < 3; ++j) {
        t[0][j] = g[0][j];
        t[1][j] = hn::Mul(half, hn::Add(hn::Add(g[0][j], g[1][j]), g[2][j]));
        t[2][j] = hn::Mul(half, hn::Add(hn::Sub(g[0][j], g[1][j]), g[2][j]));
        t[3][j] = g[2][j];
      }
      HWY_UNROLL(4) for (int i = 0; i < 4; ++i) {  // (G g) G^T
        float* row = u + (i * 4) * point + c * out_t + o;
        hn::Store(t[i][0], d, row);
        hn::Store(hn::Mul(half, hn::Add(hn::Add(t[i][0], t[i][1]), t[i][2])), d, row + point);
        hn::Store(hn::Mul(half, hn::Add(hn::Sub(t[i][0], t[i][1]), t[i][2])), d, row + 2 * point);
        hn::Store(t[i][2], d, row + 3 * point);
      }
    }
  }
}

// The padded planes of one image: rows of `stride` floats, 2 * tiles_h + 2 rows per plane.
struct Planes {
  int64_t tiles_h = 0, tiles_w = 0;
  int64_t stride = 0, plane = 0;
};

// V[point][c][tile] for tiles [0, count) of the tile row starting at plane offset `at` (its top-left
// input cell), tiles vectorised; `tiles_t` is the length of V's tile dimension. Whole vectors are
// stored: lanes past `count` hold garbage that the next row's tiles overwrite (or the slack at the end).
void transform_inputs(const Planes& pl, const float* planes, int64_t channels, int64_t at, int64_t count,
                      int64_t tiles_t, float* v) {
  const D d;
  const int64_t n = lanes();
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t p0 = 0; p0 < count; p0 += n) {
      const float* base = planes + c * pl.plane + at + 2 * p0;
      V x[4][4];
      HWY_UNROLL(4) for (int i = 0; i < 4; ++i) {
        const float* row = base + i * pl.stride;
        const V a0 = hn::LoadU(d, row), a1 = hn::LoadU(d, row + n);
        const V b0 = hn::LoadU(d, row + 2), b1 = hn::LoadU(d, row + 2 + n);
        x[i][0] = hn::ConcatEven(d, a1, a0);  // column 2p
        x[i][1] = hn::ConcatOdd(d, a1, a0);   // 2p + 1
        x[i][2] = hn::ConcatEven(d, b1, b0);  // 2p + 2
        x[i][3] = hn::ConcatOdd(d, b1, b0);   // 2p + 3
      }
      V t[4][4];  // B^T x
      HWY_UNROLL(4) for (int j = 0; j < 4; ++j) {
        t[0][j] = hn::Sub(x[0][j], x[2][j]);
        t[1][j] = hn::Add(x[1][j], x[2][j]);
        t[2][j] = hn::Sub(x[2][j], x[1][j]);
        t[3][j] = hn::Sub(x[1][j], x[3][j]);
      }
      float* out = v + c * tiles_t + p0;
      const int64_t point = channels * tiles_t;
      HWY_UNROLL(4) for (int i = 0; i < 4; ++i) {  // (B^T x) B
        hn::StoreU(hn::Sub(t[i][0], t[i][2]), d, out + (i * 4 + 0) * point);
        hn::StoreU(hn::Add(t[i][1], t[i][2]), d, out + (i * 4 + 1) * point);
        hn::StoreU(hn::Sub(t[i][2], t[i][1]), d, out + (i * 4 + 2) * point);
        hn::StoreU(hn::Sub(t[i][1], t[i][3]), d, out + (i * 4 + 3) * point);
      }
    }
  }
}

// One point: m[p][ov...] = sum over c of v[c][p] * u[c][ov...], for P tiles and OV channel vectors.
template <int OV, int P>
HWY_INLINE void multiply_point(const float* v, int64_t tiles_t, int64_t channels, const float* u, int64_t out_t,
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
    const float* vc = v + c * tiles_t;
    HWY_UNROLL(16) for (int p = 0; p < P; ++p) {
      const V x = hn::Set(d, vc[p]);
      HWY_UNROLL(4) for (int ov = 0; ov < OV; ++ov) acc[p][ov] = hn::MulAdd(w[ov], x, acc[p][ov]);
    }
  }
  HWY_UNROLL(16) for (int p = 0; p < P; ++p) {
    HWY_UNROLL(4) for (int ov = 0; ov < OV; ++ov) hn::Store(acc[p][ov], d, m + p * out_t + ov * n);
  }
}

// multiply_point for P chosen at run time (1 to PMax).
template <int OV, int PMax>
void multiply_block(int64_t p, const float* v, int64_t tiles_t, int64_t channels, const float* u, int64_t out_t,
                    float* m) {
  if constexpr (PMax >= 1) {
    if (p < PMax) return multiply_block<OV, PMax - 1>(p, v, tiles_t, channels, u, out_t, m);
    multiply_point<OV, PMax>(v, tiles_t, channels, u, out_t, m);
  }
}

// M[point][tile][out_t] for all `tiles` of an image: per point and group of OV channel vectors, the
// tiles in equal blocks of at most TMax, so that the point's U stays in L1 while the tiles stream by.
template <int OV, int TMax>
void multiply_tiles(int64_t tiles, const float* v, int64_t tiles_t, int64_t channels, const float* u, int64_t out_t,
                    float* m) {
  const int64_t blocks = (tiles + TMax - 1) / TMax, size = (tiles + blocks - 1) / blocks;
  for (int64_t p0 = 0; p0 < tiles; p0 += size) {
    multiply_block<OV, TMax>(std::min(size, tiles - p0), v + p0, tiles_t, channels, u, out_t, m + p0 * out_t);
  }
}

// Y = A^T M A for tiles [0, count) and every channel vector: rows[i][2p + j][channels] = y[i][j].
void transform_outputs(const float* m, int64_t m_point, int64_t count, int64_t out_t, float* row0, float* row1) {
  const D d;
  const int64_t n = lanes();
  for (int64_t p = 0; p < count; ++p) {
    for (int64_t o = 0; o < out_t; o += n) {
      const float* mp = m + p * out_t + o;
      V s[2][4];  // A^T M
      HWY_UNROLL(4) for (int j = 0; j < 4; ++j) {
        const V m0 = hn::Load(d, mp + (0 * 4 + j) * m_point), m1 = hn::Load(d, mp + (1 * 4 + j) * m_point);
        const V m2 = hn::Load(d, mp + (2 * 4 + j) * m_point), m3 = hn::Load(d, mp + (3 * 4 + j) * m_point);
        s[0][j] = hn::Add(hn::Add(m0, m1), m2);
        s[1][j] = hn::Sub(hn::Sub(m1, m2), m3);
      }
      float* rows[2] = {row0, row1};
      HWY_UNROLL(2) for (int i = 0; i < 2; ++i) {  // (A^T M) A
        hn::Store(hn::Add(hn::Add(s[i][0], s[i][1]), s[i][2]), d, rows[i] + (2 * p) * out_t + o);
        hn::Store(hn::Sub(hn::Sub(s[i][1], s[i][2]), s[i][3]), d, rows[i] + (2 * p + 1) * out_t + o);
      }
    }
  }
}

// HORO_WINOGRAD: unset or "auto", on for vectors narrower than 512 bits, where it measured faster than
// the direct tiles (AVX-512's direct tiles were faster: its transforms fill its 16 lanes poorly on
// W5's 8- and 16-wide maps); "1" on wherever it applies; "0" off.
bool winograd_enabled() {
  static const int mode = [] {
    const char* env = std::getenv("HORO_WINOGRAD");
    const std::string value = env ? env : "auto";
    if (value == "auto") return -1;
    if (value == "0" || value == "1") return value == "1" ? 1 : 0;
    throw ValueError("HORO_WINOGRAD='" + value + "': expected 0, 1 or auto");
  }();
  return mode == -1 ? !kWide : mode == 1;
}

}  // namespace

bool winograd_applies(const Conv2dShape& s) {
  // Few input channels leave the transforms (per input channel) outweighing the multiplies saved.
  return winograd_enabled() && s.kernel_h == 3 && s.kernel_w == 3 && s.stride_h == 1 && s.stride_w == 1 &&
         s.dilation_h == 1 && s.dilation_w == 1 && s.pad_h <= 2 && s.pad_w <= 2 && s.out_h() > 0 && s.out_w() > 0 &&
         s.in_channels >= 8 && 2 * s.out_channels >= padded_channels(s.out_channels);
}

void winograd_forward(const Conv2dShape& s, const float* input, const float* weight, bool transposed, const float* bias,
                      float* output, const float* shift, double* sums) {
  const int64_t n = lanes(), out_t = padded_channels(s.out_channels), vectors = out_t / n;
  const int64_t out_h = s.out_h(), out_w = s.out_w(), plane_out = out_h * out_w;
  Planes pl;
  pl.tiles_h = (out_h + 1) / 2;
  pl.tiles_w = (out_w + 1) / 2;
  pl.stride = 2 * pl.tiles_w + 2;
  pl.plane = (2 * pl.tiles_h + 2) * pl.stride;
  // Vector loads of the last tile row read up to 2 * lanes + 2 floats past its last tile.
  const int64_t planes_size = s.in_channels * pl.plane + 3 * n;
  const int64_t image = s.in_channels * s.in_h * s.in_w, out_size = s.out_channels * plane_out;

  thread_local std::vector<float> u_buffer, taps_buffer;
  float* u = thread_buffer(u_buffer, kPoints * s.in_channels * out_t);
  transform_weights(s, weight, transposed, u, thread_buffer(taps_buffer, s.in_channels * kTaps * out_t));

  // V holds every tile of an image, one tile row after another, plus a vector of slack.
  const int64_t tiles = pl.tiles_h * pl.tiles_w, tiles_t = tiles + n;
  const int threads = std::max(1, std::min<int>(get_num_threads(), static_cast<int>(s.batch)));
  std::vector<double> thread_sums(sums ? static_cast<size_t>(threads * 2 * s.out_channels) : 0, 0.0);
  parallel_for(threads, 1, [&](int64_t t_begin, int64_t t_end) {
    thread_local std::vector<float> planes_buffer, v_buffer, m_buffer, rows_buffer, stats_buffer;
    float* planes = thread_buffer(planes_buffer, planes_size);
    std::fill(planes, planes + planes_size, 0.0f);  // the borders, for every image of the call
    float* v = thread_buffer(v_buffer, kPoints * s.in_channels * tiles_t);
    const int64_t m_point = tiles * out_t;
    float* m = thread_buffer(m_buffer, kPoints * m_point);
    // Two output rows of a tile row; store_block reads whole 16-cell blocks.
    const int64_t row_cells = (2 * pl.tiles_w + 15) / 16 * 16;
    float* rows = thread_buffer(rows_buffer, 2 * row_cells * out_t);
    Stats stats;
    if (sums) stats = {shift, thread_buffer(stats_buffer, s.out_channels * 2 * n)};
    for (int64_t t = t_begin; t < t_end; ++t) {
      for (int64_t b = s.batch * t / threads; b < s.batch * (t + 1) / threads; ++b) {
        pad_image(input + b * image, s.in_channels, s.in_h, s.in_w, s.pad_h, s.pad_w, pl.plane, pl.stride, planes);
        for (int64_t ty = 0; ty < pl.tiles_h; ++ty) {
          transform_inputs(pl, planes, s.in_channels, 2 * ty * pl.stride, pl.tiles_w, tiles_t, v + ty * pl.tiles_w);
        }
        for (int point = 0; point < kPoints; ++point) {
          const float* vp = v + point * s.in_channels * tiles_t;
          const float* up = u + point * s.in_channels * out_t;
          float* mp = m + point * m_point;
          for (int64_t ov = 0; ov < vectors;) {
            const int64_t left = vectors - ov;
            if (left >= 4) {
              multiply_tiles<4, kTiles4>(tiles, vp, tiles_t, s.in_channels, up + ov * n, out_t, mp + ov * n);
              ov += 4;
            } else if (left >= 2) {
              multiply_tiles<2, kTiles2>(tiles, vp, tiles_t, s.in_channels, up + ov * n, out_t, mp + ov * n);
              ov += 2;
            } else {
              multiply_tiles<1, kTiles1>(tiles, vp, tiles_t, s.in_channels, up + ov * n, out_t, mp + ov * n);
              ov += 1;
            }
          }
        }
        if (sums) std::fill(stats.sums, stats.sums + s.out_channels * 2 * n, 0.0f);
        float* y = output + b * out_size;
        for (int64_t ty = 0; ty < pl.tiles_h; ++ty) {
          transform_outputs(m + ty * pl.tiles_w * out_t, m_point, pl.tiles_w, out_t, rows, rows + row_cells * out_t);
          for (int64_t i = 0; i < 2 && 2 * ty + i < out_h; ++i) {
            store_block(rows + i * row_cells * out_t, out_w, out_t, 0, s.out_channels, plane_out, (2 * ty + i) * out_w,
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
#endif  // HWY_TARGET != HWY_SCALAR

}  // namespace horo::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();
