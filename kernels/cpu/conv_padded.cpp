// 3x3 convolutions of stride 1 or 2 (any padding up to 2) computed directly, without im2col, on a
// zero-padded copy of each image, vectorised over channels. With Wp = W + 2 * pad_w, output cell
// (r, c) reads tap (ky, kx) at q + ky * Wp + kx of the padded plane, q = (r * Wp + c) * stride, so a
// run of output cells of one row reads a run of input cells: no bounds checks anywhere.
//
//  forward:         a register tile of P consecutive output cells of one row x OV vectors of output
//                   channels; per input channel and kernel row, the 3 x OV weight vectors are loaded
//                   once and each of the P + 2 input values of that row is broadcast once and feeds up
//                   to three cells (one per kx). The tile is transposed (16 x 16 blocks) into the
//                   NCHW output as it is stored.
//  input gradient:  the same kernel on the output gradient, padded by 2 - pad, with the weights
//                   rotated by 180 degrees and transposed (a stride-1 transposed convolution is one;
//                   stride 2 is left to im2col).
//  weight gradient: with dy transposed to [cell][out channels], dw[c][tap][o...] += dy[cell][o...] *
//                   x_padded[c][q + offset(tap)] (a broadcast); OV channel vectors x CB input channels
//                   x 9 taps of accumulators stay in registers over a chunk of images (with 16
//                   registers, pairs of channel vectors take kernel rows 0-1, then row 2 of two channels).
// No cell is computed twice or wasted on padding, and no vector load straddles a cache line.
// Written with Highway for the instruction set the library is compiled for.
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/conv_stats.h"
#include "kernels/parallel.h"

// Compiled once per SIMD target (hwy/foreach_target.h); the entry points at the end dispatch.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/conv_padded.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/dispatch.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/conv_image.h"
#include "kernels/cpu/conv_padded.h"

HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE {
namespace {

using namespace padded;

// Forward tiles: output cells per tile for OV = 1 and 2 channel vectors (accumulators + weights fit).
constexpr int kCells1 = kWide ? 24 : 10;
constexpr int kCells2 = kWide ? 12 : 4;
constexpr int kGradChannels = kWide ? 3 : 1;  // input channels per weight-gradient tile (x 9 taps)

// Weights [out][in][taps] as [in][taps][out, padded to vectors with zeros], rotated by 180 degrees
// and with in and out swapped when `transposed` (for the input gradient).
void arrange_weights(const Conv2dShape& s, const float* weight, bool transposed, float* arranged) {
  const int64_t in = transposed ? s.out_channels : s.in_channels, out = transposed ? s.in_channels : s.out_channels;
  const int64_t out_t = padded_channels(out);
  std::fill(arranged, arranged + in * kTaps * out_t, 0.0f);
  if (transposed) {  // [o][c][t] -> [o][8 - t][c]: per o, a [c][t] -> [t][c] transpose
    for (int64_t o = 0; o < s.out_channels; ++o)
      for (int64_t c = 0; c < s.in_channels; ++c) {
        const float* w = weight + (o * s.in_channels + c) * kTaps;
        for (int t = 0; t < kTaps; ++t) arranged[(o * kTaps + (kTaps - 1 - t)) * out_t + c] = w[t];
      }
    return;
  }
  // [o][c][t] -> [c][t][o]: a [o][c * 9 + t] transpose.
  const int64_t columns = s.in_channels * kTaps;
  simd::transpose(weight, columns, s.out_channels, columns, arranged, out_t);
}

// P output cells from q (one row) x OV channel vectors: block[p][ov * N ...] = sum over input
// channels and taps. weights: [in][taps][channels_t], from the tile's first channel.
template <int OV, int P, int S>
void forward_tile(const Geometry& g, const float* padded, int64_t in_channels, const float* weights, int64_t channels_t,
                  int64_t q, float* block) {
  const D d;
  const size_t n = hn::Lanes(d);
  V acc[P][OV];
  HWY_UNROLL(32) for (int p = 0; p < P; ++p) {
    HWY_UNROLL(2) for (int ov = 0; ov < OV; ++ov) acc[p][ov] = hn::Zero(d);
  }
  for (int64_t c = 0; c < in_channels; ++c) {
    const float* xs = padded + c * g.plane + q;
    const float* wc = weights + c * kTaps * channels_t;
    for (int ky = 0; ky < 3; ++ky) {
      const float* xr = xs + ky * g.wp;
      V w[3][OV];
      HWY_UNROLL(3) for (int kx = 0; kx < 3; ++kx) {
        HWY_UNROLL(2) for (int ov = 0; ov < OV; ++ov) w[kx][ov] = hn::Load(d, wc + (ky * 3 + kx) * channels_t + ov * n);
      }
      // Input cell j of the run is tap kx of output cell (j - kx) / S.
      HWY_UNROLL(64) for (int j = 0; j < (P - 1) * S + 3; ++j) {
        const V x = hn::Set(d, xr[j]);
        HWY_UNROLL(3) for (int kx = 0; kx < 3; ++kx) {
          const int p = (j - kx) / S;
          if (j >= kx && (j - kx) % S == 0 && p < P) {
            HWY_UNROLL(2) for (int ov = 0; ov < OV; ++ov) acc[p][ov] = hn::MulAdd(w[kx][ov], x, acc[p][ov]);
          }
        }
      }
    }
  }
  HWY_UNROLL(32) for (int p = 0; p < P; ++p) {
    HWY_UNROLL(2) for (int ov = 0; ov < OV; ++ov) hn::Store(acc[p][ov], d, block + p * OV * n + ov * n);
  }
}

// forward_tile for P chosen at run time (1 to PMax).
template <int OV, int PMax, int S>
void forward_cells(int64_t p, const Geometry& g, const float* padded, int64_t in_channels, const float* weights,
                   int64_t channels_t, int64_t q, float* block) {
  if constexpr (PMax >= 1) {
    if (p == PMax) return forward_tile<OV, PMax, S>(g, padded, in_channels, weights, channels_t, q, block);
    forward_cells<OV, PMax - 1, S>(p, g, padded, in_channels, weights, channels_t, q, block);
  }
}

// Output channel vectors [ov0, ov0 + OV) of one padded image.
template <int OV>
void forward_image(const Geometry& g, const float* padded, int64_t in_channels, const float* weights, int64_t channels_t,
                   int64_t out_channels, int64_t ov0, const float* bias, float* block, float* output, const Stats& stats) {
  constexpr int kMax = OV == 1 ? kCells1 : kCells2;
  const int64_t n = lanes(), plane = g.out_h * g.out_w;
  // Each row in equal runs of at most kMax cells.
  const int64_t runs = (g.out_w + kMax - 1) / kMax, width = (g.out_w + runs - 1) / runs;
  for (int64_t r = 0; r < g.out_h; ++r) {
    for (int64_t col = 0; col < g.out_w; col += width) {
      const int64_t cells = std::min(width, g.out_w - col);
      const int64_t q = (r * g.wp + col) * g.stride;
      if (g.stride == 1) forward_cells<OV, kMax, 1>(cells, g, padded, in_channels, weights + ov0 * n, channels_t, q, block);
      else forward_cells<OV, kMax, 2>(cells, g, padded, in_channels, weights + ov0 * n, channels_t, q, block);
      store_block(block, cells, OV * n, ov0 * n, out_channels, plane, r * g.out_w + col, bias, output, stats);
    }
  }
}

// The batched convolution of `input` (shape s) with weights arranged by arrange_weights, images
// spread over threads. With `shift`, also the per-channel sums of (y - shift) and of its squares over
// the batch, in double (sums[o], sums[channels + o]).
void direct_forward(const Conv2dShape& s, const float* input, const float* weights, const float* bias, float* output,
                    const float* shift = nullptr, double* sums = nullptr) {
  const Geometry g = geometry(s);
  const int64_t n = lanes(), channels_t = padded_channels(s.out_channels), vectors = channels_t / n;
  const int64_t image = s.in_channels * s.in_h * s.in_w, out_size = s.out_channels * g.out_h * g.out_w;
  const int threads = std::max(1, std::min<int>(get_num_threads(), static_cast<int>(s.batch)));
  std::vector<double> thread_sums(sums ? static_cast<size_t>(threads * 2 * s.out_channels) : 0, 0.0);
  parallel_for(threads, 1, [&](int64_t t_begin, int64_t t_end) {
    thread_local std::vector<float> padded_buffer, block_buffer, stats_buffer;
    float* padded = thread_buffer(padded_buffer, s.in_channels * g.plane);
    std::fill(padded, padded + s.in_channels * g.plane, 0.0f);  // the borders, for every image of the call
    float* block = thread_buffer(block_buffer, 32 * 2 * n);
    Stats stats;
    if (sums) stats = {shift, thread_buffer(stats_buffer, s.out_channels * 2 * n)};
    for (int64_t t = t_begin; t < t_end; ++t) {
      for (int64_t b = s.batch * t / threads; b < s.batch * (t + 1) / threads; ++b) {
        pad_image(input + b * image, s.in_channels, s.in_h, s.in_w, s.pad_h, s.pad_w, g, padded);
        if (sums) std::fill(stats.sums, stats.sums + s.out_channels * 2 * n, 0.0f);
        float* y = output + b * out_size;
        int64_t ov = 0;
        for (; ov + 2 <= vectors; ov += 2) {
          forward_image<2>(g, padded, s.in_channels, weights, channels_t, s.out_channels, ov, bias, block, y, stats);
        }
        for (; ov < vectors; ++ov) forward_image<1>(g, padded, s.in_channels, weights, channels_t, s.out_channels, ov, bias, block, y, stats);
        if (!sums) continue;
        add_image_stats(stats, s.out_channels, thread_sums.data() + t * 2 * s.out_channels);
      }
    }
  });
  if (!sums) return;
  add_thread_stats(thread_sums.data(), threads, s.out_channels, sums);
}

// P consecutive output cells from (r, col) into the accumulators: per input channel and kernel row,
// each of the (P - 1) * S + 3 input values is broadcast once and feeds every (cell, kx) it serves.
template <int OV, int CB, int P, int64_t kStride>
HWY_INLINE void weight_grad_cells(const Geometry& g, const float* x, const float* dy, int64_t channels_t, int64_t r,
                                  int64_t col, V (&acc)[CB][kTaps][OV]) {
  const D d;
  const size_t n = hn::Lanes(d);
  V go[P][OV];
  HWY_UNROLL(8) for (int p = 0; p < P; ++p) {
    HWY_UNROLL(3) for (int ov = 0; ov < OV; ++ov) go[p][ov] = hn::Load(d, dy + (r * g.out_w + col + p) * channels_t + ov * n);
  }
  const int64_t q = (r * g.wp + col) * g.stride;
  HWY_UNROLL(3) for (int cb = 0; cb < CB; ++cb) {
    HWY_UNROLL(3) for (int ky = 0; ky < 3; ++ky) {
      const float* xr = x + cb * g.plane + q + ky * g.wp;
      HWY_UNROLL(16) for (int j = 0; j < (P - 1) * static_cast<int>(kStride) + 3; ++j) {
        const V xv = hn::Set(d, xr[j]);
        HWY_UNROLL(3) for (int kx = 0; kx < 3; ++kx) {
          const int p = (j - kx) / static_cast<int>(kStride);
          if (j >= kx && (j - kx) % static_cast<int>(kStride) == 0 && p < P) {
            HWY_UNROLL(3) for (int ov = 0; ov < OV; ++ov) acc[cb][ky * 3 + kx][ov] = hn::MulAdd(go[p][ov], xv, acc[cb][ky * 3 + kx][ov]);
          }
        }
      }
    }
  }
}

// OV channel vectors x CB input channels x 9 taps of accumulators over a chunk of images; they start
// from and end in acc_out ([CB][taps][channels_t] from the tile's first channels).
template <int OV, int CB>
void weight_grad_tile(const Geometry& g, const float* padded, const float* grad_t, int64_t channels_t, int64_t images,
                      int64_t image_padded, int64_t image_grad, float* acc_out) {
  const D d;
  const size_t n = hn::Lanes(d);
  // Cells a step: with 2 channel vectors, 3 cells share their broadcasts (18 + 6 registers); with one
  // vector and 3 input channels (27 accumulators) there is no room, and one cell a step is faster.
  constexpr int kRun = OV >= 2 && kWide ? 3 : 1;
  V acc[CB][kTaps][OV];
  HWY_UNROLL(3) for (int cb = 0; cb < CB; ++cb) {
    HWY_UNROLL(9) for (int t = 0; t < kTaps; ++t) {
      HWY_UNROLL(3) for (int ov = 0; ov < OV; ++ov) acc[cb][t][ov] = hn::Load(d, acc_out + (cb * kTaps + t) * channels_t + ov * n);
    }
  }
  for (int64_t i = 0; i < images; ++i) {
    const float* x = padded + i * image_padded;
    const float* dy = grad_t + i * image_grad;
    if constexpr (kRun == 1) {
      for (int64_t r = 0; r < g.out_h; ++r) {
        for (int64_t col = 0; col < g.out_w; ++col) {
          const float* gp = dy + (r * g.out_w + col) * channels_t;
          const int64_t q = (r * g.wp + col) * g.stride;
          V go[OV];
          HWY_UNROLL(3) for (int ov = 0; ov < OV; ++ov) go[ov] = hn::Load(d, gp + ov * n);
          HWY_UNROLL(3) for (int cb = 0; cb < CB; ++cb) {
            const float* xs = x + cb * g.plane + q;
            HWY_UNROLL(9) for (int t = 0; t < kTaps; ++t) {
              const V xv = hn::Set(d, xs[g.offsets[t]]);
              HWY_UNROLL(3) for (int ov = 0; ov < OV; ++ov) acc[cb][t][ov] = hn::MulAdd(go[ov], xv, acc[cb][t][ov]);
            }
          }
        }
      }
    } else {
      for (int64_t r = 0; r < g.out_h; ++r) {
        int64_t col = 0;
        if (g.stride == 1) {
          for (; col + kRun <= g.out_w; col += kRun) weight_grad_cells<OV, CB, kRun, 1>(g, x, dy, channels_t, r, col, acc);
          for (; col < g.out_w; ++col) weight_grad_cells<OV, CB, 1, 1>(g, x, dy, channels_t, r, col, acc);
        } else {
          for (; col + kRun <= g.out_w; col += kRun) weight_grad_cells<OV, CB, kRun, 2>(g, x, dy, channels_t, r, col, acc);
          for (; col < g.out_w; ++col) weight_grad_cells<OV, CB, 1, 2>(g, x, dy, channels_t, r, col, acc);
        }
      }
    }
  }
  HWY_UNROLL(3) for (int cb = 0; cb < CB; ++cb) {
    HWY_UNROLL(9) for (int t = 0; t < kTaps; ++t) {
      HWY_UNROLL(3) for (int ov = 0; ov < OV; ++ov) hn::Store(acc[cb][t][ov], d, acc_out + (cb * kTaps + t) * channels_t + ov * n);
    }
  }
}

// For 16-register targets (AVX2, NEON): OV channel vectors x KY kernel rows (from KY0) x 3 taps of
// CB input channels' accumulators over a chunk of images. Two vectors and two rows of one channel
// make 12 accumulators: each cell loads 2 gradient vectors and broadcasts 6 inputs for 12 FMAs, where
// one vector and all 9 taps loads 10 for 9. Row 2 then takes two channels at a time: with 6
// accumulators the FMAs would wait on their own latency (4 cycles, 2 a cycle), with 12 they do not.
template <int OV, int KY0, int KY, int CB>
void weight_grad_rows(const Geometry& g, const float* plane, const float* grad_t, int64_t channels_t, int64_t images,
                      int64_t image_padded, int64_t image_grad, float* acc_out) {
  const D d;
  const size_t n = hn::Lanes(d);
  const int64_t acc_channel = kTaps * channels_t;
  V acc[CB][KY * 3][OV];
  HWY_UNROLL(2) for (int cb = 0; cb < CB; ++cb) {
    HWY_UNROLL(6) for (int t = 0; t < KY * 3; ++t) {
      HWY_UNROLL(2) for (int ov = 0; ov < OV; ++ov) {
        acc[cb][t][ov] = hn::Load(d, acc_out + cb * acc_channel + (KY0 * 3 + t) * channels_t + ov * n);
      }
    }
  }
  for (int64_t i = 0; i < images; ++i) {
    const float* x = plane + i * image_padded + KY0 * g.wp;
    const float* dy = grad_t + i * image_grad;
    for (int64_t r = 0; r < g.out_h; ++r) {
      const float* xr = x + r * g.wp * g.stride;
      const float* gp = dy + r * g.out_w * channels_t;
      for (int64_t col = 0; col < g.out_w; ++col) {
        V go[OV];
        HWY_UNROLL(2) for (int ov = 0; ov < OV; ++ov) go[ov] = hn::Load(d, gp + col * channels_t + ov * n);
        HWY_UNROLL(2) for (int cb = 0; cb < CB; ++cb) {
          const float* xs = xr + cb * g.plane + col * g.stride;
          HWY_UNROLL(2) for (int ky = 0; ky < KY; ++ky) {
            HWY_UNROLL(3) for (int kx = 0; kx < 3; ++kx) {
              const V xv = hn::Set(d, xs[ky * g.wp + kx]);
              HWY_UNROLL(2) for (int ov = 0; ov < OV; ++ov) {
                acc[cb][ky * 3 + kx][ov] = hn::MulAdd(go[ov], xv, acc[cb][ky * 3 + kx][ov]);
              }
            }
          }
        }
      }
    }
  }
  HWY_UNROLL(2) for (int cb = 0; cb < CB; ++cb) {
    HWY_UNROLL(6) for (int t = 0; t < KY * 3; ++t) {
      HWY_UNROLL(2) for (int ov = 0; ov < OV; ++ov) {
        hn::Store(acc[cb][t][ov], d, acc_out + cb * acc_channel + (KY0 * 3 + t) * channels_t + ov * n);
      }
    }
  }
}

// Every input channel for channel vectors [ov0, ov0 + OV), CB input channels a tile (then one at a
// time for the remainder).
template <int OV, int CB>
void weight_grad_channels(const Geometry& g, int64_t in_channels, const float* padded, const float* grad_t,
                          int64_t channels_t, int64_t images, int64_t image_padded, int64_t image_grad, int64_t ov0,
                          float* acc) {
  const int64_t n = lanes();
  int64_t c = 0;
  for (; c + CB <= in_channels; c += CB) {
    weight_grad_tile<OV, CB>(g, padded + c * g.plane, grad_t + ov0 * n, channels_t, images, image_padded, image_grad,
                             acc + c * kTaps * channels_t + ov0 * n);
  }
  for (; c < in_channels; ++c) {
    weight_grad_tile<OV, 1>(g, padded + c * g.plane, grad_t + ov0 * n, channels_t, images, image_padded, image_grad,
                            acc + c * kTaps * channels_t + ov0 * n);
  }
}

// Channels fill at least half of their vectors: otherwise the padding lanes cost more than im2col.
bool channels_fit(int64_t channels) { return 2 * channels >= padded_channels(channels) || channels >= 16; }

}  // namespace

bool conv_direct_applies(const Conv2dShape& s) {
  return s.kernel_h == 3 && s.kernel_w == 3 && s.stride_h == s.stride_w && (s.stride_h == 1 || s.stride_h == 2) &&
         s.dilation_h == 1 && s.dilation_w == 1 && s.pad_h <= 2 && s.pad_w <= 2 && s.out_h() > 0 && s.out_w() > 0;
}

bool conv2d_forward_direct(const Conv2dShape& s, const float* input, const float* weight, const float* bias,
                           float* output) {
  if (winograd_applies(s)) {
    winograd_forward(s, input, weight, false, bias, output);
    return true;
  }
  if (!conv_direct_applies(s) || !channels_fit(s.out_channels)) return false;
  thread_local std::vector<float> weight_buffer;
  float* weights = thread_buffer(weight_buffer, s.in_channels * kTaps * padded_channels(s.out_channels));
  arrange_weights(s, weight, false, weights);
  direct_forward(s, input, weights, bias, output);
  return true;
}

bool conv2d_forward_stats(const Conv2dShape& s, const float* input, const float* weight, const float* bias,
                          const float* shift, float* output, float* mean, float* var) {
  const bool winograd = winograd_applies(s);
  if (!winograd && (!conv_direct_applies(s) || !channels_fit(s.out_channels))) return false;
  std::vector<double> sums(static_cast<size_t>(2 * s.out_channels));
  if (winograd) {
    winograd_forward(s, input, weight, false, bias, output, shift, sums.data());
  } else {
    thread_local std::vector<float> weight_buffer;
    float* weights = thread_buffer(weight_buffer, s.in_channels * kTaps * padded_channels(s.out_channels));
    arrange_weights(s, weight, false, weights);
    direct_forward(s, input, weights, bias, output, shift, sums.data());
  }
  const double count = static_cast<double>(s.batch * s.out_h() * s.out_w());
  for (int64_t o = 0; o < s.out_channels; ++o) {
    const double centred = sums[o] / count;
    mean[o] = static_cast<float>(shift[o] + centred);
    var[o] = static_cast<float>(std::max(0.0, sums[s.out_channels + o] / count - centred * centred));
  }
  return true;
}

bool conv2d_backward_input_direct(const Conv2dShape& s, const float* grad_output, const float* weight,
                                  float* grad_input) {
  // A strided transposed convolution is no stride-1 convolution: im2col handles those.
  if (!conv_direct_applies(s) || s.stride_h != 1 || !channels_fit(s.in_channels)) return false;
  // dx = conv(dy padded by 2 - pad, w rotated 180 degrees with in and out swapped).
  Conv2dShape t = s;
  t.in_channels = s.out_channels;
  t.out_channels = s.in_channels;
  t.in_h = s.out_h();
  t.in_w = s.out_w();
  t.pad_h = 2 - s.pad_h;
  t.pad_w = 2 - s.pad_w;
  if (winograd_applies(t)) {
    winograd_forward(t, grad_output, weight, true, nullptr, grad_input);
    return true;
  }
  thread_local std::vector<float> weight_buffer;
  float* weights = thread_buffer(weight_buffer, s.out_channels * kTaps * padded_channels(s.in_channels));
  arrange_weights(s, weight, true, weights);
  direct_forward(t, grad_output, weights, nullptr, grad_input);
  return true;
}

bool conv2d_backward_weight_direct(const Conv2dShape& s, const float* input, const float* grad_output,
                                   float* grad_weight, float* grad_bias) {
  if (!conv_direct_applies(s) || !channels_fit(s.out_channels)) return false;
  if (winograd_backward_weight(s, input, grad_output, grad_weight, grad_bias)) return true;
  const Geometry g = geometry(s);
  const int64_t image = s.in_channels * s.in_h * s.in_w, plane_out = g.out_h * g.out_w, out_size = s.out_channels * plane_out;
  // dy transposed to [cell][channel], the channels padded to whole vectors (zeros).
  const int64_t channels_t = padded_channels(s.out_channels), vectors = channels_t / lanes();
  const int64_t image_padded = s.in_channels * g.plane, image_grad = plane_out * channels_t;
  // Images a chunk holds: about 1 MB of padded input and transposed gradient, so a chunk stays in L2.
  const int64_t chunk = std::clamp<int64_t>((int64_t{1} << 18) / std::max<int64_t>(1, image_padded + image_grad), 1, 64);
  const int64_t acc_size = s.in_channels * kTaps * channels_t;  // [in][taps][out, padded]
  const int threads = std::max(1, std::min<int>(get_num_threads(), static_cast<int>(s.batch)));
  thread_local std::vector<float> acc_buffer;
  // Each thread's weight sums, then (with a bias) its bias sums: per channel, the transposed dy's rows
  // added as they are made (summed serially afterwards, they had cost W1 1% of its step).
  const int64_t bias_size = grad_bias ? channels_t : 0;
  float* accs = thread_buffer(acc_buffer, threads * (acc_size + bias_size));
  std::fill(accs, accs + threads * (acc_size + bias_size), 0.0f);
  parallel_for(threads, 1, [&](int64_t t_begin, int64_t t_end) {
    thread_local std::vector<float> padded_buffer, grad_buffer;
    for (int64_t t = t_begin; t < t_end; ++t) {
      float* acc = accs + t * acc_size;
      const int64_t first = s.batch * t / threads, last = s.batch * (t + 1) / threads;
      float* padded = thread_buffer(padded_buffer, chunk * image_padded);
      std::fill(padded, padded + chunk * image_padded, 0.0f);  // the borders, for every image of the call
      float* grad_t = thread_buffer(grad_buffer, chunk * image_grad);
      for (int64_t b = first; b < last; b += chunk) {
        const int64_t images = std::min(chunk, last - b);
        for (int64_t i = 0; i < images; ++i) {
          pad_image(input + (b + i) * image, s.in_channels, s.in_h, s.in_w, s.pad_h, s.pad_w, g, padded + i * image_padded);
          const float* dy = grad_output + (b + i) * out_size;
          float* dst = grad_t + i * image_grad;
          simd::transpose(dy, plane_out, s.out_channels, plane_out, dst, channels_t);  // [channel][cell] -> [cell][channel]
          for (int64_t p = 0; p < plane_out && channels_t > s.out_channels; ++p) {
            std::fill(dst + p * channels_t + s.out_channels, dst + (p + 1) * channels_t, 0.0f);
          }
          if (grad_bias) {
            float* bias_acc = accs + threads * acc_size + t * bias_size;
            for (int64_t p = 0; p < plane_out; ++p) simd::add(dst + p * channels_t, channels_t, bias_acc);
          }
        }
        int64_t ov = 0;
        if constexpr (kWide) {
          for (; ov + 2 <= vectors; ov += 2) {
            weight_grad_channels<2, 1>(g, s.in_channels, padded, grad_t, channels_t, images, image_padded, image_grad, ov, acc);
          }
        }
        if constexpr (!kWide) {  // pairs of vectors: kernel rows 0-1, then row 2 of channel pairs
          for (; ov + 2 <= vectors; ov += 2) {
            const float* dy_t = grad_t + ov * lanes();
            for (int64_t c = 0; c < s.in_channels; ++c) {
              float* a = acc + c * kTaps * channels_t + ov * lanes();
              weight_grad_rows<2, 0, 2, 1>(g, padded + c * g.plane, dy_t, channels_t, images, image_padded, image_grad, a);
            }
            int64_t c = 0;
            for (; c + 2 <= s.in_channels; c += 2) {
              float* a = acc + c * kTaps * channels_t + ov * lanes();
              weight_grad_rows<2, 2, 1, 2>(g, padded + c * g.plane, dy_t, channels_t, images, image_padded, image_grad, a);
            }
            if (c < s.in_channels) {
              float* a = acc + c * kTaps * channels_t + ov * lanes();
              weight_grad_rows<2, 2, 1, 1>(g, padded + c * g.plane, dy_t, channels_t, images, image_padded, image_grad, a);
            }
          }
        }
        for (; ov < vectors; ++ov) {
          weight_grad_channels<1, kGradChannels>(g, s.in_channels, padded, grad_t, channels_t, images, image_padded,
                                                 image_grad, ov, acc);
        }
      }
    }
  });
  // Threads summed into the first one's sums, then [in][taps][out] -> [out][in][taps] (this runs on
  // the calling thread alone).
  for (int t = 1; t < threads; ++t) simd::add(accs + t * acc_size, acc_size, accs);
  simd::transpose(accs, channels_t, s.in_channels * kTaps, s.out_channels, grad_weight, s.in_channels * kTaps);
  if (grad_bias) {
    for (int64_t o = 0; o < s.out_channels; ++o) {
      float sum = 0.0f;
      for (int t = 0; t < threads; ++t) sum += accs[threads * acc_size + t * bias_size + o];
      grad_bias[o] = sum;
    }
  }
  return true;
}

}  // namespace horo::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace horo::kernels::cpu {

HWY_EXPORT(conv2d_forward_stats);
bool conv2d_forward_stats(const Conv2dShape& s, const float* input, const float* weight, const float* bias, const float* shift, float* output, float* mean, float* var) { return HORO_CPU_DISPATCH(conv2d_forward_stats)(s, input, weight, bias, shift, output, mean, var); }

}  // namespace horo::kernels::cpu
#endif  // HWY_ONCE
