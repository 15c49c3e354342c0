// Per-sample transforms of the HDF5 reader, in torchvision's order:
//   geometry   RandomResizedCrop(size, scale, ratio), or Resize(shorter side) + CenterCrop(size),
//              or a random crop after zero padding (CIFAR style); then a random horizontal flip;
//   colour     to float and scale (1/255 for 8-bit data), ColorJitter(brightness, contrast,
//              saturation), normalise by per-channel mean and std.
// Images stored encoded (JPEG/PNG) are decoded here too, only the part the crop needs. The random
// choices for a sample are a pure function of (seed, epoch, sample index), so every rank, thread
// count and resumed run draws the same.
#pragma once

#include <cstdint>
#include <vector>

#include "data/image_transforms.h"
#include "tensor/tensor.h"

namespace horo::data {

struct TransformOptions {
  float scale = -1.0f;       // < 0: 1/255 for uint8 data, 1 for float32
  std::vector<float> mean;   // per channel (or one value for all); empty: no normalisation
  std::vector<float> std;
  bool random_hflip = false;
  int64_t random_crop_padding = 0;  // > 0: pad each side by this many zeros, crop back at a random offset
  RandomResizedCropParams random_resized_crop;  // size 0: off
  int64_t resize = 0;       // Resize: the shorter side to this many pixels (0: off)
  int64_t center_crop = 0;  // CenterCrop: a centred square of this side (0: off)
  ColorJitterParams color_jitter;
  // JPEGs decoded at 1/2, 1/4 or 1/8 size when the crop is at least that many times the output
  // (libjpeg-turbo's DCT scaling: the same as PIL's draft(), much cheaper than a full decode).
  bool dct_scaling = true;

  bool resamples() const { return random_resized_crop.size > 0 || resize > 0 || center_crop > 0; }
};

// The random draws of one sample.
struct SampleDraw {
  bool flip = false;
  int64_t crop_y = 0, crop_x = 0;  // offsets into the padded image, in [0, 2 * padding]
  SourceBox box;                   // the part of the image resampled (resampling transforms)
  int64_t out_h = 0, out_w = 0;    // to this size
  bool jitter = false;
  ColorJitterDraw color;
};
// The draws of sample `sample` in `epoch`; an image's height and width are needed by the
// resampling transforms (they may differ between samples of an encoded file).
SampleDraw draw_for_sample(const TransformOptions& o, uint64_t seed, uint64_t epoch, uint64_t sample, int64_t height = 0,
                           int64_t width = 0);

// The shape a sample of stored shape `stored` ([C, H, W], with H = W = 0 for encoded images of
// different sizes) has after the transforms; throws ValueError (naming `where`) where it would vary.
Shape transformed_shape(const TransformOptions& o, const Shape& stored, const std::string& where);

// Transforms one sample of shape sample_shape ([C, H, W], or [F] for tabular data, which allows no
// geometric or colour transform) from raw (uint8 or float32) into out (float32).
void transform_sample(const TransformOptions& o, DType in_dtype, const Shape& sample_shape, const void* raw,
                      const SampleDraw& draw, float* out);

// Decodes an encoded image (JPEG or PNG; `name` in errors) that the dataset records as height x
// width pixels (an image of another size is an IOError) and transforms it into out
// [3, out_h, out_w] (the recorded size when no transform resamples).
void transform_encoded_sample(const TransformOptions& o, const uint8_t* bytes, size_t size, const std::string& name,
                              int64_t height, int64_t width, const SampleDraw& draw, float* out);

// The deterministic transforms that evaluate a model trained with `training`: the same scale and
// normalisation, no flips, crops or jitter; its Resize and CenterCrop, or after a random resized
// crop of size S, torchvision's evaluation recipe Resize(S / 0.875) + CenterCrop(S) (256 and 224).
TransformOptions evaluation_transforms(const TransformOptions& training);

// Checks the options against a stored sample shape; throws ValueError naming the problem.
void check_transforms(const TransformOptions& o, const Shape& sample_shape, const std::string& where);

}  // namespace horo::data
