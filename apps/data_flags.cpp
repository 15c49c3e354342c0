#include "apps/data_flags.h"

#include <algorithm>
#include <sstream>
#include <thread>

namespace horo::apps {

namespace {

void add_evaluation_flags_only(CLI::App& app, DataFlags& f) {
  app.add_option("--resize", f.resize, "evaluation: Resize the shorter side to N pixels (0: none; after --random-resized-crop S: S/0.875)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--center-crop", f.center_crop, "evaluation: CenterCrop to N x N (0: none; after --random-resized-crop S: S)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--workers", f.workers, "decode/transform threads per rank (0: automatic)")->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

template <typename T>
void list_field(std::ostringstream& out, const char* name, const std::vector<T>& values) {
  for (const T& v : values) out << name << ": " << v << "\n";
}

}  // namespace

void add_training_data_flags(CLI::App& app, DataFlags& f) {
  app.add_flag("--hflip", f.hflip, "random horizontal flips (HDF5 input)");
  app.add_option("--crop-padding", f.crop_padding, "random crops after zero padding by N pixels (HDF5 input)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--random-resized-crop", f.random_resized_crop,
                 "RandomResizedCrop to N x N for training (0: off); evaluation then uses Resize + CenterCrop")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--crop-scale", f.crop_scale, "random resized crop: MIN,MAX share of the image area")->delimiter(',')
      ->expected(2)->capture_default_str();
  app.add_option("--crop-ratio", f.crop_ratio, "random resized crop: MIN,MAX width/height")->delimiter(',')->expected(2)
      ->capture_default_str();
  app.add_option("--color-jitter", f.color_jitter, "ColorJitter BRIGHTNESS[,CONTRAST,SATURATION] (one value: all three)")
      ->delimiter(',')->expected(1, 3);
  app.add_option("--mean", f.mean, "per-channel normalisation mean, e.g. 0.485,0.456,0.406 (default: the training file's)")
      ->delimiter(',');
  app.add_option("--std", f.std, "per-channel normalisation std, e.g. 0.229,0.224,0.225 (default: the training file's)")
      ->delimiter(',');
  add_evaluation_flags_only(app, f);
}

void add_evaluation_data_flags(CLI::App& app, DataFlags& f) { add_evaluation_flags_only(app, f); }

std::function<bool(const char*)> given_on(const CLI::App& app) {
  return [&app](const char* flag) {
    const CLI::Option* option = app.get_option_no_throw(flag);
    return option != nullptr && option->count() > 0;
  };
}

void merge_data_settings(const nn::TrainSettings& t, const std::function<bool(const char*)>& given, DataFlags& f) {
  if (t.has_hflip && !given("--hflip")) f.hflip = t.hflip;
  if (t.has_crop_padding && !given("--crop-padding")) f.crop_padding = t.crop_padding;
  if (t.has_random_resized_crop && !given("--random-resized-crop")) f.random_resized_crop = t.random_resized_crop;
  if (!t.crop_scale.empty() && !given("--crop-scale")) f.crop_scale = t.crop_scale;
  if (!t.crop_ratio.empty() && !given("--crop-ratio")) f.crop_ratio = t.crop_ratio;
  if (t.has_resize && !given("--resize")) f.resize = t.resize;
  if (t.has_center_crop && !given("--center-crop")) f.center_crop = t.center_crop;
  if (!t.color_jitter.empty() && !given("--color-jitter")) f.color_jitter = t.color_jitter;
  if (!t.mean.empty() && !given("--mean")) f.mean = t.mean;
  if (!t.std.empty() && !given("--std")) f.std = t.std;
  if (t.has_workers && !given("--workers")) f.workers = t.workers;
}

std::string data_config_text(const DataFlags& f) {
  std::ostringstream c;
  c.precision(17);  // values read back exactly: a resumed run normalises as the first one did
  if (f.hflip) c << "hflip: true\n";
  if (f.crop_padding) c << "crop_padding: " << f.crop_padding << "\n";
  if (f.random_resized_crop) {
    c << "random_resized_crop: " << f.random_resized_crop << "\n";
    list_field(c, "crop_scale", f.crop_scale);
    list_field(c, "crop_ratio", f.crop_ratio);
  }
  if (f.resize) c << "resize: " << f.resize << "\n";
  if (f.center_crop) c << "center_crop: " << f.center_crop << "\n";
  list_field(c, "color_jitter", f.color_jitter);
  list_field(c, "mean", f.mean);
  list_field(c, "std", f.std);
  if (f.workers) c << "workers: " << f.workers << "\n";
  return c.str();
}

void default_normalisation(const data::Schema& file, DataFlags& f) {
  HORO_CHECK(f.mean.size() == f.std.size(), ValueError, "--mean has ", f.mean.size(), " values but --std has ", f.std.size());
  if (!f.mean.empty()) return;
  for (double m : file.mean) f.mean.push_back(static_cast<float>(m));
  for (double s : file.std) f.std.push_back(static_cast<float>(s));
}

data::TransformOptions training_transforms(const DataFlags& f) {
  HORO_CHECK(f.crop_scale.size() == 2 && f.crop_ratio.size() == 2, ValueError,
             "--crop-scale and --crop-ratio take two values each (MIN,MAX)");
  data::TransformOptions o;
  o.mean = f.mean;
  o.std = f.std;
  o.random_hflip = f.hflip;
  o.random_crop_padding = f.crop_padding;
  o.random_resized_crop = {.size = f.random_resized_crop, .scale_min = f.crop_scale[0], .scale_max = f.crop_scale[1],
                           .ratio_min = f.crop_ratio[0], .ratio_max = f.crop_ratio[1]};
  if (f.random_resized_crop == 0) {  // without a random crop, the deterministic ones shape training data too
    o.resize = f.resize;
    o.center_crop = f.center_crop;
  }
  if (!f.color_jitter.empty()) {
    const auto& j = f.color_jitter;
    o.color_jitter = {j[0], j.size() == 3 ? j[1] : j[0], j.size() == 3 ? j[2] : j[0]};
    HORO_CHECK(j.size() == 1 || j.size() == 3, ValueError, "--color-jitter takes 1 or 3 values, got ", j.size());
  }
  return o;
}

data::TransformOptions evaluation_transforms(const DataFlags& f) {
  data::TransformOptions training = training_transforms(f);
  training.resize = f.resize;
  training.center_crop = f.center_crop;
  return data::evaluation_transforms(training);
}

int reader_workers(const DataFlags& f, const data::Schema& file, int local_ranks) {
  if (f.workers > 0) return f.workers;
  if (!file.encoded) return 1;
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / std::max(1, local_ranks));
  return std::max(1, cores / 2);
}

}  // namespace horo::apps
