// Image datasets into horo's HDF5 layout: a folder of class sub-folders (torchvision's ImageFolder
// layout) and CIFAR-10/100's binary files.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "data/h5_dataset.h"

namespace horo::data {

// ImageFolder's layout: ROOT/<class>/**/<file>.{jpg,jpeg,png} (any case). Classes are the
// sub-folders sorted by name, labels their positions; files are taken as torchvision walks them
// (folders in sorted order, files sorted within each), following links.
struct ImageFile {
  std::string path;      // as found under the root
  std::string relative;  // from the root: "<class>/.../<file>"
  int64_t label = 0;
};
struct ImageFolderListing {
  std::vector<std::string> classes;
  std::vector<ImageFile> files;
  int64_t ignored = 0;  // files with other extensions
};
// Throws IOError for a missing root, a root without class folders, or a class without images.
ImageFolderListing list_image_folder(const std::string& root);

struct ImageFolderOptions {
  int64_t resize = 0;    // > 0: decode, shorter side to `resize`, centre crop: uint8 [N, 3, resize, resize]
  bool encoded = false;  // store each file's bytes (decoded when read); one of resize / encoded
  bool skip_bad = false;  // skip (and list) files that fail to decode instead of stopping
  int threads = 0;        // decoding threads (0: the machine's cores)
  // Called after each group of files: (files done, files in all).
  std::function<void(int64_t, int64_t)> progress;
};

struct ImageFolderSummary {
  std::vector<std::string> classes;
  std::vector<int64_t> counts;  // images written per class
  std::vector<std::pair<std::string, std::string>> skipped;  // (file, why)
  int64_t written = 0, ignored = 0;
  std::string report() const;  // classes, counts per class, skipped files: for people
};

// Converts an image folder. Every file is decoded (an encoded conversion decodes at 1/8 size, which
// checks the whole file); the per-channel mean and std of the decoded pixels are stored. A file
// that fails to decode stops the conversion with an ImageError naming it, unless skip_bad.
ImageFolderSummary convert_image_folder(const std::string& root, const std::string& out, const ImageFolderOptions& options,
                                        WriteOptions write);

// CIFAR's binary version: CIFAR-10 records are <label><3072 pixel bytes> (data_batch_1..5.bin,
// test_batch.bin), CIFAR-100 records <coarse><fine><3072 bytes> (train.bin, test.bin); pixels are
// planes R, G, B of 32x32. `inputs` are files, or one directory where `split` ("train" or "test")
// picks the files. Class names come from the directory's batches.meta.txt or
// {fine,coarse}_label_names.txt when present, else the published lists.
struct CifarOptions {
  int classes = 10;           // 10 or 100
  std::string split = "train";
  bool coarse_labels = false;  // CIFAR-100: the 20 superclasses instead of the 100 classes
};
// Returns the number of images written.
int64_t convert_cifar(const std::vector<std::string>& inputs, const std::string& out, const CifarOptions& options,
                      WriteOptions write);

}  // namespace horo::data
