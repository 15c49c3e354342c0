// Backward of a fused Conv2d-ReLU-MaxPool2d block (conv_relu_maxpool_backward) with more than one
// input channel, from the pooled gradient alone.
//
// Behind max pooling, the convolution's output gradient is zero but at each window's argmax cell,
// and behind the ReLU also there wherever the pooled output was not positive: with 2x2 stride-2
// pooling at most a quarter of the cells (W1's conv2: 25 of 121 per channel) carry a gradient. The
// dense path scatters that gradient into the whole plane and runs the batched weight and input
// gradients over every cell. Here each (image, output channel) instead lists its cells that carry one
// (where the patch of the cell starts, and the gradient), and
// - the weight gradient of output channel o adds, for every listed cell, the gradient times the
//   cell's 3x3 input patch, held as 9 taps x the input channels in NHWC (so a tap is whole vectors of
//   input channels), into 9 x kGroup vectors of accumulators held in registers over the image's cells;
// - the input gradient of an image adds, for every listed cell, the gradient times output channel o's
//   weights (9 x kGroup vectors held in registers over the channel's cells) into the cell's 3x3 patch
//   of an NHWC gradient buffer, which is then transposed into NCHW.
// Products with a zero gradient are skipped, so where the input holds an infinity the weight
// gradient stays finite where the dense product 0 x inf would make it NaN; such an input has already
// made the block's output non-finite. Sums run in a fixed order (images, then cells, in order), so
// the result does not depend on the thread count.
//
// Fixed-width targets only (not SVE, whose vectors cannot be held in arrays; not the plain C++ one):
// elsewhere the caller's dense path runs.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/parallel.h"

// Compiled once per SIMD target (hwy/foreach_target.h); called from the other kernels of the same target.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/conv_block_sparse.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/dispatch.h"
#include "kernels/cpu/conv_image.h"
#include "kernels/cpu/simd.h"

HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE {

#if HWY_TARGET != HWY_SCALAR && !HWY_HAVE_SCALABLE
namespace {
namespace hn = hwy::HWY_NAMESPACE;
using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;
constexpr int64_t kLanes = HWY_LANES(float);
constexpr int kTaps = 9;
// Vectors of input channels per pass: 9 taps x kGroup registers of accumulators (or weights), out of
// AVX-512's 32 vector registers or AVX2's and NEON's 16.
constexpr int kGroup = kLanes >= 16 ? 2 : 1;

thread_local std::vector<float> t_input_nhwc;   // the batch's input, padded, NHWC
thread_local std::vector<float> t_weight_taps;  // weights [out][tap][in, padded]
thread_local std::vector<float> t_weight_acc;   // weight-gradient sums [out][tap][in, padded]
thread_local std::vector<float> t_grad_nhwc;    // one image's input gradient, padded, NHWC
thread_local std::vector<float> t_cell_grads;   // per (image, out channel): the listed cells' gradients
thread_local std::vector<int32_t> t_patch_offsets, t_cell_offsets, t_cell_counts;

// At most this share of the convolution's cells can carry a gradient for the lists to pay: pooling
// windows that do not overlap, at least 2x2 apart.
bool fits(const Conv2dShape& c, const Pool2dShape& p) {
  return c.in_channels >= 8 && c.kernel_h == 3 && c.kernel_w == 3 && c.dilation_h == 1 && c.dilation_w == 1 &&
         c.stride_h >= 1 && c.stride_w >= 1 && c.pad_h >= 0 && c.pad_w >= 0 && p.stride_h * p.stride_w >= 4 &&
         p.stride_h >= p.kernel_h && p.stride_w >= p.kernel_w && p.in_h == c.out_h() && p.in_w == c.out_w() &&
         p.out_h() >= 1 && p.out_w() >= 1 &&
         // the lists hold offsets within one padded NHWC image as int32
         (c.in_h + 2 * c.pad_h) * (c.in_w + 2 * c.pad_w) * (c.in_channels + kLanes) < (int64_t{1} << 31);
}

// The padded NHWC layout of one image: rows of wp cells of channels_t floats (the channels rounded up
// to whole vectors, zero past the last).
struct Layout {
  int64_t channels_t = 0, hp = 0, wp = 0, image = 0;
};

Layout layout(const Conv2dShape& c) {
  Layout l;
  l.channels_t = (c.in_channels + kLanes - 1) / kLanes * kLanes;
  l.hp = c.in_h + 2 * c.pad_h;
  l.wp = c.in_w + 2 * c.pad_w;
  l.image = l.hp * l.wp * l.channels_t;
  return l;
}

// One NCHW image into its padded NHWC copy (borders and channel tail zero).
void to_nhwc(const Conv2dShape& c, const Layout& l, const float* image, float* nhwc) {
  if (c.pad_h == 0 && c.pad_w == 0) {  // the planes' cells are the copy's cells, in order
    simd::transpose(image, c.in_h * c.in_w, c.in_channels, c.in_h * c.in_w, nhwc, l.channels_t);
    if (l.channels_t > c.in_channels) {
      for (int64_t cell = 0; cell < c.in_h * c.in_w; ++cell) {
        std::fill(nhwc + cell * l.channels_t + c.in_channels, nhwc + (cell + 1) * l.channels_t, 0.0f);
      }
    }
    return;
  }
  std::fill(nhwc, nhwc + l.image, 0.0f);
  for (int64_t r = 0; r < c.in_h; ++r) {
    simd::transpose(image + r * c.in_w, c.in_h * c.in_w, c.in_channels, c.in_w,
                    nhwc + ((r + c.pad_h) * l.wp + c.pad_w) * l.channels_t, l.channels_t);
  }
}

// The interior of a padded NHWC image into NCHW.
void from_nhwc(const Conv2dShape& c, const Layout& l, const float* nhwc, float* image) {
  if (c.pad_h == 0 && c.pad_w == 0) {
    simd::transpose(nhwc, l.channels_t, c.in_h * c.in_w, c.in_channels, image, c.in_h * c.in_w);
    return;
  }
  for (int64_t r = 0; r < c.in_h; ++r) {
    simd::transpose(nhwc + ((r + c.pad_h) * l.wp + c.pad_w) * l.channels_t, l.channels_t, c.in_w, c.in_channels,
                    image + r * c.in_w, c.in_h * c.in_w);
  }
}

// Where the input patch of each convolution cell starts in the padded NHWC image (offsets[cell]).
void patch_offsets(const Conv2dShape& c, const Layout& l, int32_t* offsets) {
  for (int64_t r = 0; r < c.out_h(); ++r)
    for (int64_t col = 0; col < c.out_w(); ++col)
      offsets[r * c.out_w() + col] = static_cast<int32_t>((r * c.stride_h * l.wp + col * c.stride_w) * l.channels_t);
}

// The cells of image n that carry a gradient, per output channel: offsets[k] (where the cell's
// input patch starts in the padded NHWC image) and grads[k] for k in [0, counts[o]), from index
// (n * out_channels + o) * pooled. Each pooled row lists its even windows, then its odd ones: two
// windows side by side can share patch cells, and the input gradient's stores to one then held up the
// next one's loads.
void list_cells(const Conv2dShape& c, const Pool2dShape& p, int64_t n, const int32_t* patch_offset,
                const float* output, const int32_t* argmax, const float* grad_output, int32_t* offsets, float* grads,
                int32_t* counts) {
  const int64_t pooled_h = p.out_h(), pooled_w = p.out_w(), pooled = pooled_h * pooled_w;
  for (int64_t o = 0; o < c.out_channels; ++o) {
    const int64_t at = (n * c.out_channels + o) * pooled;
    int32_t count = 0;
    for (int64_t r = 0; r < pooled_h; ++r)
      for (int64_t parity = 0; parity < 2; ++parity)
        for (int64_t i = at + r * pooled_w + parity; i < at + (r + 1) * pooled_w; i += 2) {
          // Written in any case and kept where the ReLU's gradient is not zero (no branch to mispredict).
          offsets[at + count] = patch_offset[argmax[i]];
          grads[at + count] = grad_output[i];
          count += output[i] > 0.0f ? 1 : 0;
        }
    counts[n * c.out_channels + o] = count;
  }
}

// The listed cells of one convolution (list_cells): per (image, output channel) `counts` cells from
// (n * out_channels + o) * pooled in `offsets` and `grads`.
struct CellLists {
  const int32_t* offsets;
  const float* grads;
  const int32_t* counts;
  int64_t out_channels, pooled;
};

// Runs visit(patch, grad) for every listed cell of image n and output channel o, where patch(tap, g)
// is the offset of the cell's tap (0..8, row-major) and channel vector g from `base`. The tap
// offsets are locals so that they stay in registers: read from `l`, the compiler reloaded them
// after every store.
template <typename Visit>
HWY_INLINE void for_listed_cells(const Layout& l, const CellLists& lists, int64_t n, int64_t o, const Visit& visit) {
  const int64_t channels_t = l.channels_t, row = l.wp * channels_t;
  const int64_t list = n * lists.out_channels + o, at = list * lists.pooled, count = lists.counts[list];
  for (int64_t k = 0; k < count; ++k) {
    const int64_t base = lists.offsets[at + k];
    visit([&](int tap, int g) { return base + (tap / 3) * row + (tap % 3) * channels_t + g * kLanes; },
          hn::Set(D(), lists.grads[at + k]));
  }
}

// acc[tap][g] += grad x patch[tap][g] over the listed cells of image n for output channel o, for the
// G vectors of input channels from `channel`, with the sums in registers.
template <int G>
void weight_pass(const Layout& l, const CellLists& lists, int64_t n, int64_t o, int64_t channel,
                 const float* input_nhwc, float* acc_out) {
  const D d;
  V acc[kTaps][G];
  for (int t = 0; t < kTaps; ++t)
    for (int g = 0; g < G; ++g) acc[t][g] = hn::Load(d, acc_out + t * l.channels_t + channel + g * kLanes);
  const float* image = input_nhwc + n * l.image + channel;
  for_listed_cells(l, lists, n, o, [&](const auto& patch, V grad) {
#pragma GCC unroll 9
    for (int t = 0; t < kTaps; ++t)
#pragma GCC unroll 2
      for (int g = 0; g < G; ++g) acc[t][g] = hn::MulAdd(grad, hn::Load(d, image + patch(t, g)), acc[t][g]);
  });
  for (int t = 0; t < kTaps; ++t)
    for (int g = 0; g < G; ++g) hn::Store(acc[t][g], d, acc_out + t * l.channels_t + channel + g * kLanes);
}

// patch[tap][g] += grad x weight[tap][g] into image n's NHWC gradient over output channel o's listed
// cells, for the G vectors of input channels from `channel`, with the weights in registers.
template <int G>
void input_pass(const Layout& l, const CellLists& lists, int64_t n, int64_t o, int64_t channel,
                const float* weight_taps, float* grad_nhwc) {
  const D d;
  V w[kTaps][G];
  const float* wo = weight_taps + o * kTaps * l.channels_t + channel;
  for (int t = 0; t < kTaps; ++t)
    for (int g = 0; g < G; ++g) w[t][g] = hn::Load(d, wo + t * l.channels_t + g * kLanes);
  float* image = grad_nhwc + channel;
  for_listed_cells(l, lists, n, o, [&](const auto& patch, V grad) {
#pragma GCC unroll 9
    for (int t = 0; t < kTaps; ++t)
#pragma GCC unroll 2
      for (int g = 0; g < G; ++g) {
        float* p = image + patch(t, g);
        hn::Store(hn::MulAdd(grad, w[t][g], hn::Load(d, p)), d, p);
      }
  });
}

}  // namespace

bool conv_relu_maxpool_backward_sparse(const Conv2dShape& c, const Pool2dShape& p, const float* input,
                                       const float* weight, const float* output, const int32_t* argmax,
                                       const float* grad_output, float* grad_input, float* grad_weight,
                                       float* grad_bias) {
  if (!fits(c, p)) return false;
  const bool weights_wanted = grad_weight || grad_bias;
  const Layout l = layout(c);
  const int64_t pooled = p.out_h() * p.out_w(), image_size = c.in_channels * c.in_h * c.in_w;
  const int64_t entries = c.batch * c.out_channels * pooled;
  t_cell_offsets.resize(static_cast<size_t>(entries));
  t_cell_counts.resize(static_cast<size_t>(c.batch * c.out_channels));
  t_patch_offsets.resize(static_cast<size_t>(c.out_h() * c.out_w()));
  const int32_t* patch_offset = t_patch_offsets.data();  // this thread's buffer, read by the others
  patch_offsets(c, l, t_patch_offsets.data());
  int32_t* offsets = t_cell_offsets.data();
  int32_t* counts = t_cell_counts.data();
  float* grads = thread_buffer(t_cell_grads, entries);
  float* input_nhwc = weights_wanted ? thread_buffer(t_input_nhwc, c.batch * l.image) : nullptr;
  parallel_for(c.batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      list_cells(c, p, n, patch_offset, output, argmax, grad_output, offsets, grads, counts);
      if (input_nhwc) to_nhwc(c, l, input + n * image_size, input_nhwc + n * l.image);
    }
  });

  const CellLists lists{offsets, grads, counts, c.out_channels, pooled};
  if (weights_wanted) {
    // Output channels spread over the threads, each thread taking every image in turn (its NHWC copy
    // then stays in L1 while the thread's output channels read it) and, per image and output channel,
    // its accumulators from memory into registers and back. Taking every image for one output channel
    // before the next kept the accumulators in registers but read the patches from L2: 6% slower.
    float* acc = thread_buffer(t_weight_acc, c.out_channels * kTaps * l.channels_t);
    std::fill(acc, acc + c.out_channels * kTaps * l.channels_t, 0.0f);
    parallel_for(c.out_channels, 1, [&](int64_t o_begin, int64_t o_end) {
      for (int64_t n = 0; n < c.batch; ++n) {
        for (int64_t o = o_begin; o < o_end; ++o) {
          float* acc_o = acc + o * kTaps * l.channels_t;
          int64_t channel = 0;
          for (; channel + kGroup * kLanes <= l.channels_t; channel += kGroup * kLanes) {
            weight_pass<kGroup>(l, lists, n, o, channel, input_nhwc, acc_o);
          }
          for (; channel < l.channels_t; channel += kLanes) {
            weight_pass<1>(l, lists, n, o, channel, input_nhwc, acc_o);
          }
        }
      }
      for (int64_t o = o_begin; o < o_end; ++o) {
        const float* acc_o = acc + o * kTaps * l.channels_t;
        // [tap][in, padded] -> [in][tap]
        if (grad_weight) simd::transpose(acc_o, l.channels_t, kTaps, c.in_channels, grad_weight + o * c.in_channels * kTaps, kTaps);
        if (grad_bias) {
          float sum = 0.0f;
          for (int64_t n = 0; n < c.batch; ++n) {
            const int64_t at = (n * c.out_channels + o) * pooled;
            for (int64_t k = 0; k < counts[n * c.out_channels + o]; ++k) sum += grads[at + k];
          }
          grad_bias[o] = sum;
        }
      }
    });
  }

  if (grad_input) {
    float* weight_taps = thread_buffer(t_weight_taps, c.out_channels * kTaps * l.channels_t);
    std::fill(weight_taps, weight_taps + c.out_channels * kTaps * l.channels_t, 0.0f);
    for (int64_t o = 0; o < c.out_channels; ++o) {  // [in][tap] -> [tap][in, padded]
      simd::transpose(weight + o * c.in_channels * kTaps, kTaps, c.in_channels, kTaps, weight_taps + o * kTaps * l.channels_t,
                      l.channels_t);
    }
    parallel_for(c.batch, 1, [&](int64_t begin, int64_t end) {
      float* grad_nhwc = thread_buffer(t_grad_nhwc, l.image);
      for (int64_t n = begin; n < end; ++n) {
        std::fill(grad_nhwc, grad_nhwc + l.image, 0.0f);
        for (int64_t o = 0; o < c.out_channels; ++o) {
          int64_t channel = 0;
          for (; channel + kGroup * kLanes <= l.channels_t; channel += kGroup * kLanes) {
            input_pass<kGroup>(l, lists, n, o, channel, weight_taps, grad_nhwc);
          }
          for (; channel < l.channels_t; channel += kLanes) {
            input_pass<1>(l, lists, n, o, channel, weight_taps, grad_nhwc);
          }
        }
        from_nhwc(c, l, grad_nhwc, grad_input + n * image_size);
      }
    });
  }
  return true;
}
#else
bool conv_relu_maxpool_backward_sparse(const Conv2dShape&, const Pool2dShape&, const float*, const float*,
                                       const float*, const int32_t*, const float*, float*, float*, float*) {
  return false;
}
#endif

}  // namespace horo::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();
