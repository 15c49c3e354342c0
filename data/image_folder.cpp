#include "data/image_folder.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>
#include <thread>

#include "data/dataset_writer.h"
#include "data/image_codec.h"
#include "data/image_transforms.h"
#include "data/resample.h"

namespace horo::data {

namespace {

namespace fs = std::filesystem;

bool image_extension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

// One file's outcome on a decoding thread.
struct Converted {
  std::vector<uint8_t> bytes;   // encoded: the file
  std::vector<uint8_t> pixels;  // resized: uint8 [3, S, S]
  int64_t height = 0, width = 0;
  double sums[3] = {}, squares[3] = {};
  int64_t pixel_count = 0;
  std::string error;
};

void add_statistics(const uint8_t* rgb, int64_t pixels, int64_t channel_stride, int64_t pixel_stride, Converted& c) {
  for (int64_t ch = 0; ch < 3; ++ch) {
    double sum = 0.0, squares = 0.0;
    for (int64_t i = 0; i < pixels; ++i) {
      const double v = rgb[ch * channel_stride + i * pixel_stride] / 255.0;
      sum += v;
      squares += v * v;
    }
    c.sums[ch] += sum;
    c.squares[ch] += squares;
  }
  c.pixel_count += pixels;
}

void convert_file(const ImageFile& file, const ImageFolderOptions& o, Converted& c) {
  thread_local RgbImage image;
  c.bytes = read_file_bytes(file.path);
  const ImageInfo info = read_image_info(c.bytes.data(), c.bytes.size(), file.path);
  c.height = info.height;
  c.width = info.width;
  DecodeOptions decode;
  if (o.encoded) {
    // 1/8 size still reads every coded block: a broken file fails here as in a full decode.
    decode.min_height = decode.min_width = 1;
    decode_image(c.bytes.data(), c.bytes.size(), file.path, decode, image);
    HORO_CHECK(image.full_height == info.height && image.full_width == info.width, ImageError, file.path, ": the header says ",
               info.width, " x ", info.height, " pixels but the image decodes to ", image.full_width, " x ", image.full_height);
    add_statistics(image.pixels.data(), image.height * image.width, 1, 3, c);
    return;
  }
  int64_t out_h = 0, out_w = 0;
  const SourceBox box = resize_center_crop_box(info.height, info.width, o.resize, o.resize, out_h, out_w);
  decode.min_height = static_cast<int64_t>(std::ceil(static_cast<double>(out_h) * static_cast<double>(info.height) / box.height()));
  decode.min_width = static_cast<int64_t>(std::ceil(static_cast<double>(out_w) * static_cast<double>(info.width) / box.width()));
  decode_image(c.bytes.data(), c.bytes.size(), file.path, decode, image);
  thread_local std::vector<float> planes;
  planes.resize(static_cast<size_t>(3 * out_h * out_w));
  resample_rgb(image, box, out_h, out_w, false, planes.data());
  c.pixels.resize(planes.size());
  for (size_t i = 0; i < planes.size(); ++i) c.pixels[i] = static_cast<uint8_t>(std::clamp(std::lround(planes[i]), 0L, 255L));
  c.bytes.clear();
  add_statistics(c.pixels.data(), out_h * out_w, out_h * out_w, 1, c);
}

}  // namespace

ImageFolderListing list_image_folder(const std::string& root) {
  HORO_CHECK(fs::is_directory(root), IOError, root, ": not a directory (expected one sub-folder per class)");
  ImageFolderListing listing;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (entry.is_directory()) listing.classes.push_back(entry.path().filename().string());
  }
  std::sort(listing.classes.begin(), listing.classes.end());
  HORO_CHECK(!listing.classes.empty(), IOError, root, ": no class folders (expected ROOT/<class>/<image files>)");
  std::vector<std::string> empty;
  for (size_t label = 0; label < listing.classes.size(); ++label) {
    // torchvision's order: every folder under the class (sorted by path), its files sorted by name.
    const fs::path class_dir = fs::path(root) / listing.classes[label];
    std::map<std::string, std::vector<std::string>> by_folder;
    by_folder[class_dir.string()];
    for (const auto& entry : fs::recursive_directory_iterator(class_dir, fs::directory_options::follow_directory_symlink)) {
      if (entry.is_directory()) by_folder[entry.path().string()];
      else by_folder[entry.path().parent_path().string()].push_back(entry.path().filename().string());
    }
    const size_t before = listing.files.size();
    for (auto& [folder, names] : by_folder) {
      std::sort(names.begin(), names.end());
      for (const auto& name : names) {
        const fs::path path = fs::path(folder) / name;
        if (!image_extension(path)) {
          ++listing.ignored;
          continue;
        }
        listing.files.push_back({path.string(), fs::relative(path, root).string(), static_cast<int64_t>(label)});
      }
    }
    if (listing.files.size() == before) empty.push_back(listing.classes[label]);
  }
  if (!empty.empty()) {
    std::ostringstream names;
    for (size_t i = 0; i < empty.size(); ++i) names << (i ? ", " : "") << empty[i];
    throw IOError(detail::concat(root, ": no .jpg, .jpeg or .png files for the classes ", names.str()));
  }
  return listing;
}

std::string ImageFolderSummary::report() const {
  std::ostringstream out;
  out << classes.size() << " classes, " << written << " images";
  if (!skipped.empty()) out << ", " << skipped.size() << " files skipped";
  if (ignored) out << ", " << ignored << " files with other extensions ignored";
  out << "\nimages per class:";
  for (size_t c = 0; c < classes.size(); ++c) out << (c % 6 == 0 ? "\n  " : "  ") << classes[c] << " " << counts[c];
  out << "\n";
  for (const auto& [file, why] : skipped) out << "skipped " << file << ": " << why << "\n";
  return out.str();
}

ImageFolderSummary convert_image_folder(const std::string& root, const std::string& out, const ImageFolderOptions& o,
                                        WriteOptions write) {
  HORO_CHECK(o.encoded != (o.resize > 0), ValueError, root,
             ": give one of a size to resize to (stored decoded, S x S) or encoded storage (the files' own bytes)");
  const ImageFolderListing listing = list_image_folder(root);
  ImageFolderSummary summary;
  summary.classes = listing.classes;
  summary.counts.assign(listing.classes.size(), 0);
  summary.ignored = listing.ignored;
  if (write.class_names.empty()) write.class_names = listing.classes;
  std::unique_ptr<DatasetWriter> writer =
      o.encoded ? std::make_unique<DatasetWriter>(out, true, write)
                : std::make_unique<DatasetWriter>(out, DType::UInt8, Shape{3, o.resize, o.resize}, true, write);
  const int threads = o.threads > 0 ? o.threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const int64_t total = static_cast<int64_t>(listing.files.size()), group = 32 * threads;
  double sums[3] = {}, squares[3] = {};
  int64_t pixels = 0;
  std::vector<Converted> results;
  for (int64_t start = 0; start < total; start += group) {
    const int64_t end = std::min(total, start + group);
    results.assign(static_cast<size_t>(end - start), Converted{});
    std::atomic<int64_t> next{start};
    auto work = [&] {
      for (int64_t i; (i = next++) < end;) {
        Converted& c = results[static_cast<size_t>(i - start)];
        try {
          convert_file(listing.files[static_cast<size_t>(i)], o, c);
        } catch (const std::exception& e) {
          c.error = e.what();
        }
      }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    std::vector<uint8_t> group_pixels;
    std::vector<int64_t> group_labels;
    for (int64_t i = start; i < end; ++i) {
      const ImageFile& file = listing.files[static_cast<size_t>(i)];
      Converted& c = results[static_cast<size_t>(i - start)];
      if (!c.error.empty()) {
        HORO_CHECK(o.skip_bad, ImageError, c.error, " (convert with --skip-bad to leave such files out)");
        summary.skipped.emplace_back(file.path, c.error);
        continue;
      }
      if (o.encoded) {
        writer->append_encoded(c.bytes.data(), c.bytes.size(), c.height, c.width, file.label, file.relative);
      } else {
        group_pixels.insert(group_pixels.end(), c.pixels.begin(), c.pixels.end());
        group_labels.push_back(file.label);
      }
      ++summary.counts[static_cast<size_t>(file.label)];
      for (int ch = 0; ch < 3; ++ch) {
        sums[ch] += c.sums[ch];
        squares[ch] += c.squares[ch];
      }
      pixels += c.pixel_count;
    }
    if (!group_labels.empty()) writer->append(group_pixels.data(), static_cast<int64_t>(group_labels.size()), group_labels.data());
    if (o.progress) o.progress(end, total);
  }
  summary.written = writer->count();
  HORO_CHECK(summary.written > 0, ImageError, root, ": every image failed to decode; nothing to write");
  if (write.mean.empty()) {
    std::vector<double> mean(3), std(3);
    for (int ch = 0; ch < 3; ++ch) {
      mean[static_cast<size_t>(ch)] = sums[ch] / static_cast<double>(pixels);
      std[static_cast<size_t>(ch)] = std::sqrt(std::max(0.0, squares[ch] / static_cast<double>(pixels) - mean[static_cast<size_t>(ch)] * mean[static_cast<size_t>(ch)]));
    }
    writer->set_statistics(mean, std);
  }
  writer->finish();
  return summary;
}

}  // namespace horo::data
