// The pieces of torchvision's image transforms that the reader composes (data/transforms.h):
// RandomResizedCrop's box, Resize + CenterCrop's box, ColorJitter; each random choice drawn from a
// per-sample Philox stream so that it is a pure function of (seed, epoch, sample).
#pragma once

#include <cstdint>

#include "data/resample.h"

namespace horo::data {

// The random words of one sample: Philox blocks under a key of (seed, epoch), counters (sample, k).
class SampleRandom {
 public:
  SampleRandom(uint64_t seed, uint64_t epoch, uint64_t sample);
  uint32_t next();
  double uniform(double lo, double hi);  // [lo, hi)
  int64_t below(int64_t n);              // [0, n), n > 0

 private:
  uint32_t key_[2];
  uint64_t sample_, block_ = 0;
  uint32_t words_[4] = {};
  int used_ = 4;
};

struct RandomResizedCropParams {
  int64_t size = 0;  // output side (0: off)
  double scale_min = 0.08, scale_max = 1.0;            // area of the crop / area of the image
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;  // width / height of the crop
};

// torchvision's RandomResizedCrop.get_params: ten tries at an area and a log-uniform aspect ratio
// that fit, else the largest centred crop within the ratio range. An integer box of the image.
SourceBox random_resized_crop_box(int64_t height, int64_t width, const RandomResizedCropParams& p, SampleRandom& random);

// Resize(shorter side -> resize) then CenterCrop(crop_h x crop_w) as one box of the source image (it
// may reach outside the image, where the output is 0 as torchvision pads); resize 0: no resize,
// crop 0: no crop. out_h and out_w receive the output size.
SourceBox resize_center_crop_box(int64_t height, int64_t width, int64_t resize, int64_t crop, int64_t& out_h, int64_t& out_w);

struct ColorJitterParams {
  float brightness = 0, contrast = 0, saturation = 0;  // factors drawn from [max(0, 1 - v), 1 + v]
  bool enabled() const { return brightness > 0 || contrast > 0 || saturation > 0; }
};

struct ColorJitterDraw {
  float factors[3] = {1, 1, 1};  // brightness, contrast, saturation
  int order[3] = {0, 1, 2};      // the order they are applied in (torchvision draws a permutation)
};
ColorJitterDraw draw_color_jitter(const ColorJitterParams& p, SampleRandom& random);

// Applies the draw to planes [channels][plane] of values in [0, 1], as torchvision's ColorJitter on
// tensors does: brightness scales, contrast blends with the mean grey level, saturation with each
// pixel's grey (0.2989 R + 0.587 G + 0.114 B), each clamped to [0, 1]. One channel: grey is itself.
void apply_color_jitter(const ColorJitterDraw& draw, int64_t channels, int64_t plane, float* planes);

}  // namespace horo::data
