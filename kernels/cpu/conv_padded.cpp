// 3x3 stride-1 convolutions computed directly, without im2col, on a zero-padded copy of each image
// in the "padded-stride" layout: with Wp = W + 2 * pad_w, output cell (r, c) sits at q = r * Wp + c
// and tap (ky, kx) reads the padded input at q + ky * Wp + kx. So N consecutive q (one vector) are N
// outputs whose taps are each one contiguous unaligned load: no masks, no index arithmetic, and the
// same code for 28-, 14- and 7-wide planes. The Wp - W_out cells of each row that land in the padding
// are computed and dropped (7% of the work at 28x28, 12% at 14x14, 22% at 7x7: far less than the
// half a vector a 7-wide row wastes when rows are vectorised one by one).
//
//  forward:        y[o] = sum over c and taps of w[o, c, tap] * x_padded[c] shifted; register tiles
//                  of 4 output channels x 6 vectors of positions, each input vector loaded once per
//                  tap and used for 4 channels, each broadcast weight for 6 vectors.
//  input gradient: the same kernel on the output gradient, padded by 2 - pad, with the weights
//                  rotated by 180 degrees and transposed (a stride-1 transposed convolution is one).
//  weight gradient: dw[o, c, tap] = sum over q of dy[o, q] * x_padded[c, q + offset(tap)], dy laid
//                  out with the same stride and zeros in the dropped cells; 3 output channels x 9
//                  taps of vector accumulators stay in registers over a chunk of images, then add
//                  into per-thread partial sums (one vector per weight) that are summed at the end.
// Written with Highway for the instruction set the library is compiled for.
#include <hwy/highway.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/conv_image.h"
#include "kernels/parallel.h"

namespace horo::kernels::cpu {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;

constexpr int kTaps = 9;  // 3x3
// Register tiles (AVX-512 has 32 vector registers, AVX2 and NEON 16).
constexpr int kForwardChannels = HWY_LANES(float) >= 16 ? 4 : 2;
constexpr int kForwardVectors = HWY_LANES(float) >= 16 ? 6 : 5;
constexpr int kGradChannels = HWY_LANES(float) >= 16 ? 3 : 1;

size_t lanes() { return hn::Lanes(D()); }

// The padded-stride geometry of one convolution.
struct Geometry {
  int64_t hp = 0, wp = 0;          // padded input height and width
  int64_t out_h = 0, out_w = 0;
  int64_t positions = 0;           // out_h * wp: output cells in padded-stride order
  int64_t vectors = 0;             // positions in whole vectors
  int64_t plane = 0;               // floats per padded input plane, with slack for the last vector's taps
  int64_t out_plane = 0;           // floats per padded-stride output plane (vectors * lanes)
  int64_t offsets[kTaps] = {};     // tap (ky, kx) reads at q + ky * wp + kx
};

Geometry geometry(const Conv2dShape& s) {
  Geometry g;
  const int64_t n = static_cast<int64_t>(lanes());
  g.hp = s.in_h + 2 * s.pad_h;
  g.wp = s.in_w + 2 * s.pad_w;
  g.out_h = s.out_h();
  g.out_w = s.out_w();
  g.positions = g.out_h * g.wp;
  g.vectors = (g.positions + n - 1) / n;
  g.out_plane = g.vectors * n;
  // The last vector's last lane reads up to out_plane - 1 + 2 * wp + 2.
  g.plane = std::max(g.hp * g.wp, g.out_plane + 2 * g.wp + 2);
  for (int t = 0; t < kTaps; ++t) g.offsets[t] = (t / 3) * g.wp + t % 3;
  return g;
}

// Copies an image [channels, h, w] into padded planes (zeros around and after).
void pad_image(const float* image, int64_t channels, int64_t h, int64_t w, int64_t pad_h, int64_t pad_w,
               const Geometry& g, float* padded) {
  for (int64_t c = 0; c < channels; ++c) {
    float* plane = padded + c * g.plane;
    std::fill(plane, plane + pad_h * g.wp, 0.0f);
    for (int64_t r = 0; r < h; ++r) {
      float* row = plane + (r + pad_h) * g.wp;
      std::fill(row, row + pad_w, 0.0f);
      std::memcpy(row + pad_w, image + (c * h + r) * w, static_cast<size_t>(w) * sizeof(float));
      std::fill(row + pad_w + w, row + g.wp, 0.0f);
    }
    std::fill(plane + (h + pad_h) * g.wp, plane + g.plane, 0.0f);
  }
}

// O output channels x P vectors of positions from q0: acc = sum over channels and taps.
// weights: [in_channels][taps][out_channels] from the tile's first output channel.
template <int O, int P>
void forward_tile(const float* padded, int64_t plane, int64_t in_channels, const float* weights, int64_t out_channels,
                  const int64_t* offsets, int64_t q0, float* out, int64_t out_plane) {
  const D d;
  const size_t n = hn::Lanes(d);
  V acc[O][P];
  HWY_UNROLL(8) for (int o = 0; o < O; ++o) {
    HWY_UNROLL(8) for (int p = 0; p < P; ++p) acc[o][p] = hn::Zero(d);
  }
  for (int64_t c = 0; c < in_channels; ++c) {
    const float* base = padded + c * plane + q0;
    const float* wc = weights + c * kTaps * out_channels;
    for (int t = 0; t < kTaps; ++t) {
      const float* src = base + offsets[t];
      V x[P];
      HWY_UNROLL(8) for (int p = 0; p < P; ++p) x[p] = hn::LoadU(d, src + p * n);
      HWY_UNROLL(8) for (int o = 0; o < O; ++o) {
        const V w = hn::Set(d, wc[t * out_channels + o]);
        HWY_UNROLL(8) for (int p = 0; p < P; ++p) acc[o][p] = hn::MulAdd(w, x[p], acc[o][p]);
      }
    }
  }
  HWY_UNROLL(8) for (int o = 0; o < O; ++o) {
    HWY_UNROLL(8) for (int p = 0; p < P; ++p) hn::StoreU(acc[o][p], d, out + o * out_plane + q0 + p * n);
  }
}

// forward_tile with P = vectors (1 to kForwardVectors - 1), chosen at run time.
template <int O, int P = kForwardVectors - 1>
void tail_tile(int64_t vectors, const float* padded, int64_t plane, int64_t in_channels, const float* weights,
               int64_t out_channels, const int64_t* offsets, int64_t q0, float* out, int64_t out_plane) {
  if constexpr (P >= 1) {
    if (vectors == P) return forward_tile<O, P>(padded, plane, in_channels, weights, out_channels, offsets, q0, out, out_plane);
    tail_tile<O, P - 1>(vectors, padded, plane, in_channels, weights, out_channels, offsets, q0, out, out_plane);
  }
}

// Every tile of one image for output channels [o, o + O).
template <int O>
void forward_channels(const Geometry& g, const float* padded, int64_t in_channels, const float* weights,
                      int64_t out_channels, int64_t o, float* out) {
  const int64_t n = static_cast<int64_t>(lanes());
  int64_t v = 0;
  for (; v + kForwardVectors <= g.vectors; v += kForwardVectors) {
    forward_tile<O, kForwardVectors>(padded, g.plane, in_channels, weights + o, out_channels, g.offsets, v * n,
                                     out + o * g.out_plane, g.out_plane);
  }
  // The last vectors, one tile as wide as what is left.
  const int64_t left = g.vectors - v;
  if (left > 0) tail_tile<O>(left, padded, g.plane, in_channels, weights + o, out_channels, g.offsets, v * n,
                             out + o * g.out_plane, g.out_plane);
}

template <int O>
void forward_all(const Geometry& g, const float* padded, int64_t in_channels, const float* weights, int64_t out_channels,
                 float* out) {
  int64_t o = 0;
  for (; o + O <= out_channels; o += O) forward_channels<O>(g, padded, in_channels, weights, out_channels, o, out);
  if constexpr (O > 1) {
    if (o < out_channels) {
      // The remaining channels, one narrower tile at a time.
      for (; o < out_channels; ++o) forward_channels<1>(g, padded, in_channels, weights, out_channels, o, out);
    }
  }
}

// The padded-stride output planes into [channels, out_h, out_w], plus bias.
void unpad_output(const Geometry& g, const float* out_padded, int64_t channels, const float* bias, float* output) {
  const D d;
  const int64_t n = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t o = 0; o < channels; ++o) {
    const V b = hn::Set(d, bias ? bias[o] : 0.0f);
    for (int64_t r = 0; r < g.out_h; ++r) {
      const float* src = out_padded + o * g.out_plane + r * g.wp;
      float* dst = output + (o * g.out_h + r) * g.out_w;
      int64_t c = 0;
      for (; c + n <= g.out_w; c += n) hn::StoreU(hn::Add(hn::LoadU(d, src + c), b), d, dst + c);
      if (c < g.out_w) {
        const auto m = hn::FirstN(d, static_cast<size_t>(g.out_w - c));
        hn::BlendedStore(hn::Add(hn::LoadU(d, src + c), b), m, d, dst + c);  // src has slack past the row
      }
    }
  }
}

// The batched direct convolution of `input` [batch, in_channels, h, w] (shape s) with weights laid
// out [in_channels][taps][out_channels], images spread over threads.
void direct_forward(const Conv2dShape& s, const float* input, const float* weights, const float* bias, float* output) {
  const Geometry g = geometry(s);
  const int64_t image = s.in_channels * s.in_h * s.in_w, out_size = s.out_channels * g.out_h * g.out_w;
  parallel_for(s.batch, 1, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> padded_buffer, out_buffer;
    float* padded = thread_buffer(padded_buffer, s.in_channels * g.plane);
    float* out = thread_buffer(out_buffer, s.out_channels * g.out_plane);
    for (int64_t n = begin; n < end; ++n) {
      pad_image(input + n * image, s.in_channels, s.in_h, s.in_w, s.pad_h, s.pad_w, g, padded);
      forward_all<kForwardChannels>(g, padded, s.in_channels, weights, s.out_channels, out);
      unpad_output(g, out, s.out_channels, bias, output + n * out_size);
    }
  });
}

// The weight gradient vectorises over output channels instead: with dy transposed to
// [position][out_channels], dw[c][tap][o...o+N) += dy[pos][o...o+N) * x_padded[c][pos + offset(tap)],
// the x value a broadcast scalar. A tile of OV channel vectors x CB input channels x 9 taps stays in
// registers over a chunk of images; each broadcast feeds OV multiply-adds and each dy vector CB * 9.
// No position is wasted on padding and no vector load straddles a cache line.
template <int OV, int CB>
void weight_grad_tile(const Geometry& g, const float* padded, const float* grad_t, int64_t channels_t, int64_t images,
                      int64_t image_padded, int64_t image_grad, float* acc_out, int64_t acc_stride) {
  const D d;
  const size_t n = hn::Lanes(d);
  V acc[CB][kTaps][OV];
  HWY_UNROLL(3) for (int cb = 0; cb < CB; ++cb) {
    HWY_UNROLL(9) for (int t = 0; t < kTaps; ++t) {
      HWY_UNROLL(3) for (int ov = 0; ov < OV; ++ov) acc[cb][t][ov] = hn::Load(d, acc_out + (cb * kTaps + t) * acc_stride + ov * n);
    }
  }
  for (int64_t i = 0; i < images; ++i) {
    const float* x = padded + i * image_padded;
    const float* dy = grad_t + i * image_grad;
    for (int64_t r = 0; r < g.out_h; ++r) {
      for (int64_t col = 0; col < g.out_w; ++col) {
        const float* gp = dy + (r * g.out_w + col) * channels_t;
        const int64_t q = r * g.wp + col;
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
  }
  HWY_UNROLL(3) for (int cb = 0; cb < CB; ++cb) {
    HWY_UNROLL(9) for (int t = 0; t < kTaps; ++t) {
      HWY_UNROLL(3) for (int ov = 0; ov < OV; ++ov) hn::Store(acc[cb][t][ov], d, acc_out + (cb * kTaps + t) * acc_stride + ov * n);
    }
  }
}

// Every input channel for output-channel vectors [ov0, ov0 + OV), CB input channels a tile (then one
// at a time for the remainder).
template <int OV, int CB>
void weight_grad_channels(const Geometry& g, int64_t in_channels, const float* padded, const float* grad_t,
                          int64_t channels_t, int64_t images, int64_t image_padded, int64_t image_grad, int64_t ov0,
                          float* acc) {
  const int64_t n = static_cast<int64_t>(lanes()), stride = channels_t;
  int64_t c = 0;
  for (; c + CB <= in_channels; c += CB) {
    weight_grad_tile<OV, CB>(g, padded + c * g.plane, grad_t + ov0 * n, channels_t, images, image_padded, image_grad,
                             acc + c * kTaps * stride + ov0 * n, stride);
  }
  for (; c < in_channels; ++c) {
    weight_grad_tile<OV, 1>(g, padded + c * g.plane, grad_t + ov0 * n, channels_t, images, image_padded, image_grad,
                            acc + c * kTaps * stride + ov0 * n, stride);
  }
}

}  // namespace

bool conv_direct_applies(const Conv2dShape& s) {
  return s.kernel_h == 3 && s.kernel_w == 3 && s.stride_h == 1 && s.stride_w == 1 && s.dilation_h == 1 &&
         s.dilation_w == 1 && s.pad_h <= 2 && s.pad_w <= 2 && s.out_h() > 0 && s.out_w() > 0;
}

void conv2d_forward_direct(const Conv2dShape& s, const float* input, const float* weight, const float* bias,
                           float* output) {
  // [out][in][taps] -> [in][taps][out]: a tile's output channels side by side for one tap.
  std::vector<float> weights(static_cast<size_t>(s.out_channels * s.in_channels * kTaps));
  for (int64_t o = 0; o < s.out_channels; ++o)
    for (int64_t c = 0; c < s.in_channels; ++c)
      for (int t = 0; t < kTaps; ++t) weights[(c * kTaps + t) * s.out_channels + o] = weight[(o * s.in_channels + c) * kTaps + t];
  direct_forward(s, input, weights.data(), bias, output);
}

void conv2d_backward_input_direct(const Conv2dShape& s, const float* grad_output, const float* weight,
                                  float* grad_input) {
  // dx = conv(dy padded by 2 - pad, w rotated 180 degrees with in and out swapped).
  Conv2dShape t = s;
  t.in_channels = s.out_channels;
  t.out_channels = s.in_channels;
  t.in_h = s.out_h();
  t.in_w = s.out_w();
  t.pad_h = 2 - s.pad_h;
  t.pad_w = 2 - s.pad_w;
  std::vector<float> weights(static_cast<size_t>(s.out_channels * s.in_channels * kTaps));
  for (int64_t o = 0; o < s.out_channels; ++o)
    for (int64_t c = 0; c < s.in_channels; ++c)
      for (int tap = 0; tap < kTaps; ++tap) {
        weights[(o * kTaps + (kTaps - 1 - tap)) * s.in_channels + c] = weight[(o * s.in_channels + c) * kTaps + tap];
      }
  direct_forward(t, grad_output, weights.data(), nullptr, grad_input);
}

void conv2d_backward_weight_direct(const Conv2dShape& s, const float* input, const float* grad_output,
                                   float* grad_weight, float* grad_bias) {
  const Geometry g = geometry(s);
  const int64_t n = static_cast<int64_t>(lanes());
  const int64_t image = s.in_channels * s.in_h * s.in_w, plane_out = g.out_h * g.out_w, out_size = s.out_channels * plane_out;
  // dy transposed to [position][channel], the channels padded to whole vectors (zeros).
  const int64_t vectors = (s.out_channels + n - 1) / n, channels_t = vectors * n;
  const int64_t image_padded = s.in_channels * g.plane, image_grad = plane_out * channels_t;
  // Images a chunk holds: about 1 MB of padded input and transposed gradient, so a chunk stays in L2.
  const int64_t chunk = std::clamp<int64_t>((int64_t{1} << 18) / std::max<int64_t>(1, image_padded + image_grad), 1, 64);
  const int64_t acc_size = s.in_channels * kTaps * channels_t;  // [in][taps][out, padded]
  const int threads = std::max(1, std::min<int>(get_num_threads(), static_cast<int>(s.batch)));
  thread_local std::vector<float> acc_buffer;
  float* accs = thread_buffer(acc_buffer, threads * acc_size);
  std::fill(accs, accs + threads * acc_size, 0.0f);
  parallel_for(threads, 1, [&](int64_t t_begin, int64_t t_end) {
    thread_local std::vector<float> padded_buffer, grad_buffer;
    for (int64_t t = t_begin; t < t_end; ++t) {
      float* acc = accs + t * acc_size;
      const int64_t first = s.batch * t / threads, last = s.batch * (t + 1) / threads;
      float* padded = thread_buffer(padded_buffer, chunk * image_padded);
      float* grad_t = thread_buffer(grad_buffer, chunk * image_grad);
      for (int64_t b = first; b < last; b += chunk) {
        const int64_t images = std::min(chunk, last - b);
        for (int64_t i = 0; i < images; ++i) {
          pad_image(input + (b + i) * image, s.in_channels, s.in_h, s.in_w, s.pad_h, s.pad_w, g, padded + i * image_padded);
          const float* dy = grad_output + (b + i) * out_size;
          float* dst = grad_t + i * image_grad;
          for (int64_t p = 0; p < plane_out; ++p) {
            float* row = dst + p * channels_t;
            for (int64_t o = 0; o < s.out_channels; ++o) row[o] = dy[o * plane_out + p];
            std::fill(row + s.out_channels, row + channels_t, 0.0f);
          }
        }
        int64_t ov = 0;
        if constexpr (HWY_LANES(float) >= 16) {
          for (; ov + 2 <= vectors; ov += 2) {
            weight_grad_channels<2, 1>(g, s.in_channels, padded, grad_t, channels_t, images, image_padded, image_grad, ov, acc);
          }
        }
        for (; ov < vectors; ++ov) {
          weight_grad_channels<1, kGradChannels>(g, s.in_channels, padded, grad_t, channels_t, images, image_padded, image_grad,
                                                 ov, acc);
        }
      }
    }
  });
  // Threads summed, [in][taps][out] -> [out][in][taps].
  for (int64_t c = 0; c < s.in_channels; ++c)
    for (int tap = 0; tap < kTaps; ++tap)
      for (int64_t o = 0; o < s.out_channels; ++o) {
        float sum = 0.0f;
        for (int t = 0; t < threads; ++t) sum += accs[t * acc_size + (c * kTaps + tap) * channels_t + o];
        grad_weight[(o * s.in_channels + c) * kTaps + tap] = sum;
      }
  if (grad_bias) {
    std::fill(grad_bias, grad_bias + s.out_channels, 0.0f);
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t o = 0; o < s.out_channels; ++o) {
        const float* dy = grad_output + b * out_size + o * plane_out;
        float sum = 0.0f;
        for (int64_t i = 0; i < plane_out; ++i) sum += dy[i];
        grad_bias[o] += sum;
      }
  }
}

}  // namespace horo::kernels::cpu
