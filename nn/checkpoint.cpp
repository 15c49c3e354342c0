#include "nn/checkpoint.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <regex>

#include "nn/spec.h"
#include "tensor/hdf5.h"

namespace horo::nn {
namespace {

std::map<std::string, Tensor> read_group(hid_t file, const std::string& name, const std::string& where) {
  std::map<std::string, Tensor> out;
  if (!h5::has_group(file, name)) return out;
  h5::Handle group = h5::open_group(file, name, where);
  for (const auto& tensor : h5::dataset_names(group.get(), where + ":/" + name)) {
    Tensor value = h5::read_tensor(group.get(), tensor, where + ":/" + name);
    // NaN weights evaluated to 10 % accuracy without a word: a non-finite value is never meant.
    if (value.dtype() == DType::Float32) {
      const float* v = value.data<float>();
      for (int64_t i = 0; i < value.numel(); ++i) {
        HORO_CHECK(std::isfinite(v[i]), NumericError, where, ":/", name, "/", tensor, ": element ", i, " is ", v[i],
                   "; a checkpoint's tensors must be finite (was it saved from a diverged run?)");
      }
    }
    out.emplace(tensor, std::move(value));
  }
  return out;
}

// A checkpoint's first 512 bytes (an HDF5 user block, which HDF5 and h5py skip) hold a CRC-32 of the
// rest: a file damaged after it was written (a bad copy, a disk error) is refused before libhdf5
// parses it, which matters because libhdf5 1.10 can loop forever on some corrupt heaps.
constexpr size_t kUserBlock = 512;
constexpr char kChecksumTag[] = "HORO-CHECKPOINT-CRC32 ";

std::string hex32(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "%08x", value);
  return text;
}

// CRC-32 and length of the file's bytes from `offset` to its end.
std::pair<uint32_t, uint64_t> crc_from(std::FILE* f, uint64_t offset, const std::string& path) {
  HORO_CHECK(std::fseek(f, static_cast<long>(offset), SEEK_SET) == 0, IOError, path, ": cannot seek (", std::strerror(errno), ")");
  std::vector<unsigned char> buffer(size_t{1} << 20);
  uLong crc = crc32(0L, Z_NULL, 0);
  uint64_t length = 0;
  while (const size_t got = std::fread(buffer.data(), 1, buffer.size(), f)) {
    crc = crc32(crc, buffer.data(), static_cast<uInt>(got));
    length += got;
  }
  HORO_CHECK(!std::ferror(f), IOError, path, ": read error (", std::strerror(errno), ")");
  return {static_cast<uint32_t>(crc), length};
}

// A stdio file closed when it goes out of scope.
using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

// Writes the checksum record, then puts the whole file on disk before the caller renames it, so that
// a crash never leaves a checkpoint name on a partial file (some filesystems report a full disk only
// at this fsync).
void write_checksum_and_sync(const std::string& path) {
  File f(std::fopen(path.c_str(), "r+b"), &std::fclose);
  HORO_CHECK(f, IOError, path, ": cannot reopen the checkpoint just written (", std::strerror(errno), ")");
  const auto [crc, length] = crc_from(f.get(), kUserBlock, path);
  char header[kUserBlock] = {};
  std::snprintf(header, sizeof header, "%s%08x %llu\n", kChecksumTag, crc, static_cast<unsigned long long>(length));
  const bool written = std::fseek(f.get(), 0, SEEK_SET) == 0 && std::fwrite(header, 1, sizeof header, f.get()) == sizeof header &&
                       std::fflush(f.get()) == 0;
  HORO_CHECK(written, IOError, path, ": writing the checksum failed (", std::strerror(errno), ")");
  HORO_CHECK(::fsync(::fileno(f.get())) == 0, IOError, path, ": writing the checkpoint to disk failed (", std::strerror(errno),
             "); the earlier checkpoints are untouched");
  HORO_CHECK(std::fclose(f.release()) == 0, IOError, path, ": closing the checkpoint failed (", std::strerror(errno), ")");
}

// Checkpoints written with a checksum are verified; older ones (no tag) are read as they are.
void verify_checksum(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) return;  // h5::open_file reports a missing or unreadable file
  char header[kUserBlock + 1] = {};
  if (std::fread(header, 1, kUserBlock, f.get()) != kUserBlock) return;
  if (std::strncmp(header, kChecksumTag, sizeof kChecksumTag - 1) != 0) return;
  unsigned int expected_crc = 0;
  unsigned long long expected_length = 0;
  HORO_CHECK(std::sscanf(header + sizeof kChecksumTag - 1, "%8x %llu", &expected_crc, &expected_length) == 2, IOError, path,
             ": corrupt checkpoint (its checksum record is unreadable)");
  const auto [crc, length] = crc_from(f.get(), kUserBlock, path);
  HORO_CHECK(length == expected_length, IOError, path, ": truncated or extended checkpoint: ", length + kUserBlock,
             " bytes, written as ", expected_length + kUserBlock);
  HORO_CHECK(crc == expected_crc, IOError, path, ": corrupt checkpoint: its CRC-32 is ", hex32(crc), ", written as ",
             hex32(expected_crc), " (damaged after it was written; use an earlier checkpoint)");
}

// The checkpoint's content, written to `temporary` (renamed into place by the caller).
void write_checkpoint_file(const std::string& temporary, const Module& model, const optim::Optimizer* optimizer,
                           const TrainingState& state, const std::string& model_spec, const std::string& train_config) {
  h5::Handle file = h5::create_file(temporary, kUserBlock);
  const hid_t f = file.get();
  h5::write_int(f, "format_version", kCheckpointFormatVersion, temporary);
  h5::write_string(f, "model_spec", model_spec, temporary);
  h5::write_string(f, "train_config", train_config, temporary);
  h5::write_string(f, "optimizer", optimizer ? optimizer->type_name() : "", temporary);
  h5::write_int(f, "step", state.step, temporary);
  h5::write_int(f, "epoch", state.epoch, temporary);
  h5::write_int(f, "batch_in_epoch", state.batch_in_epoch, temporary);
  h5::write_int(f, "rng_seed", static_cast<int64_t>(state.rng_seed), temporary);
  h5::write_int(f, "rng_offset", static_cast<int64_t>(state.rng_offset), temporary);
  h5::write_int(f, "data_seed", static_cast<int64_t>(state.data_seed), temporary);
  h5::write_int(f, "ranks", state.ranks, temporary);
  {
    h5::Handle params = h5::create_group(f, "parameters", temporary);
    for (const auto& [name, tensor] : model.named_parameters()) h5::write_tensor(params.get(), name, tensor, temporary + ":/parameters");
    h5::Handle buffers = h5::create_group(f, "buffers", temporary);
    for (const auto& [name, tensor] : model.named_buffers()) h5::write_tensor(buffers.get(), name, tensor, temporary + ":/buffers");
  }
  if (optimizer) {
    h5::Handle group = h5::create_group(f, "optimizer", temporary);
    for (const auto& [name, param] : model.named_parameters()) {
      const auto entries = optimizer->state(param);
      if (entries.empty()) continue;
      h5::Handle per_param = h5::create_group(group.get(), name, temporary + ":/optimizer");
      for (const auto& [key, tensor] : entries) h5::write_tensor(per_param.get(), key, tensor, temporary + ":/optimizer/" + name);
    }
  }
  std::lock_guard<std::recursive_mutex> lock(h5::hdf5_lock());
  h5::check(H5Fflush(f, H5F_SCOPE_GLOBAL), temporary, "flushing");
}

}  // namespace

void save_checkpoint(const std::string& path, const Module& model, const optim::Optimizer* optimizer,
                     const TrainingState& state, const std::string& model_spec, const std::string& train_config) {
  const std::string temporary = path + ".tmp";
  struct RemoveOnError {  // a failed save leaves no temporary file behind
    const std::string& file;
    bool done = false;
    ~RemoveOnError() {
      std::error_code ignored;
      if (!done) std::filesystem::remove(file, ignored);
    }
  } cleanup{temporary};
  try {
    write_checkpoint_file(temporary, model, optimizer, state, model_spec, train_config);
  } catch (const IOError& e) {
    // Say what a user needs next: the space there is, and that the earlier checkpoints are intact.
    std::error_code ignored;
    const auto space = std::filesystem::space(std::filesystem::absolute(path).parent_path(), ignored);
    throw IOError(detail::concat(e.what(), "; ", space.available / (1 << 20), " MiB free on its filesystem; ",
                                 "the earlier checkpoints are untouched"));
  }
  write_checksum_and_sync(temporary);
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  HORO_CHECK(!error, IOError, path, ": cannot move the checkpoint into place (", error.message(), ")");
  cleanup.done = true;
}

Checkpoint read_checkpoint(const std::string& path) {
  Checkpoint c;
  c.path = path;
  verify_checksum(path);
  h5::Handle file = h5::open_file(path);
  const hid_t f = file.get();
  HORO_CHECK(h5::has_attribute(f, "format_version"), IOError, path, ": not a horo checkpoint (no format_version attribute)");
  c.format_version = h5::read_int(f, "format_version", path);
  HORO_CHECK(c.format_version == kCheckpointFormatVersion, IOError, path, ": checkpoint format ", c.format_version,
             ", this horo reads format ", kCheckpointFormatVersion);
  c.model_spec = h5::read_string(f, "model_spec", path);
  c.train_config = h5::read_string(f, "train_config", path);
  c.optimizer = h5::read_string(f, "optimizer", path);
  c.state.step = h5::read_int(f, "step", path);
  c.state.epoch = h5::read_int(f, "epoch", path);
  c.state.batch_in_epoch = h5::read_int(f, "batch_in_epoch", path);
  HORO_CHECK(c.state.step >= 0 && c.state.epoch >= 0 && c.state.batch_in_epoch >= 0, IOError, path,
             ": step, epoch and batch_in_epoch must not be negative (step ", c.state.step, ", epoch ", c.state.epoch,
             ", batch_in_epoch ", c.state.batch_in_epoch, ")");
  c.state.rng_seed = static_cast<uint64_t>(h5::read_int(f, "rng_seed", path));
  c.state.rng_offset = static_cast<uint64_t>(h5::read_int(f, "rng_offset", path));
  c.state.data_seed = static_cast<uint64_t>(h5::read_int(f, "data_seed", path));
  if (h5::has_attribute(f, "ranks")) {
    c.state.ranks = h5::read_int(f, "ranks", path);
    HORO_CHECK(c.state.ranks >= 0, IOError, path, ": ranks must not be negative, got ", c.state.ranks);
  }
  c.parameters = read_group(f, "parameters", path);
  c.buffers = read_group(f, "buffers", path);
  HORO_CHECK(!c.parameters.empty(), IOError, path, ": the checkpoint holds no parameters");
  if (h5::has_group(f, "optimizer")) {
    h5::Handle group = h5::open_group(f, "optimizer", path);
    for (const auto& name : h5::link_names(group.get(), path + ":/optimizer")) {
      c.optimizer_state[name] = read_group(group.get(), name, path + ":/optimizer");
    }
  }
  return c;
}

LoadReport load_model(Module& model, const Checkpoint& checkpoint, bool strict) {
  std::map<std::string, Tensor> all = checkpoint.parameters;
  all.insert(checkpoint.buffers.begin(), checkpoint.buffers.end());
  return load_tensors(model, all, strict, "checkpoint " + checkpoint.path);
}

void load_optimizer(optim::Optimizer& optimizer, const Module& model, const Checkpoint& checkpoint) {
  if (checkpoint.optimizer_state.empty()) return;
  HORO_CHECK(checkpoint.optimizer == optimizer.type_name(), ValueError, checkpoint.path, ": holds ", checkpoint.optimizer,
             " state, the run uses ", optimizer.type_name());
  for (const auto& [name, param] : model.named_parameters()) {
    auto it = checkpoint.optimizer_state.find(name);
    if (it == checkpoint.optimizer_state.end()) continue;
    for (const auto& [key, tensor] : it->second) {
      try {
        optimizer.set_state(param, key, tensor);
      } catch (const Error& e) {
        throw ValueError(detail::concat(checkpoint.path, ":/optimizer/", name, "/", key, ": ", e.what()));
      }
    }
  }
  optimizer.set_step_count(checkpoint.state.step);
}

CheckpointDir::CheckpointDir(std::string dir, int keep) : dir_(std::move(dir)), keep_(keep) {
  HORO_CHECK(keep_ >= 1, ValueError, "checkpoints to keep must be at least 1, got ", keep_);
  std::error_code error;
  std::filesystem::create_directories(dir_, error);
  HORO_CHECK(!error, IOError, dir_, ": cannot create the checkpoint directory (", error.message(), ")");
}

std::vector<std::pair<int64_t, std::string>> CheckpointDir::list() const {
  std::vector<std::pair<int64_t, std::string>> found;
  const std::regex pattern("ckpt-([0-9]{1,18})\\.h5");  // at most 18 digits: always fits an int64_t
  std::smatch match;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, match, pattern)) found.emplace_back(std::stoll(match[1]), entry.path().string());
  }
  std::sort(found.begin(), found.end());
  return found;
}

std::string CheckpointDir::save(const Module& model, const optim::Optimizer* optimizer, const TrainingState& state,
                                const std::string& model_spec, const std::string& train_config) {
  const std::string path = (std::filesystem::path(dir_) / ("ckpt-" + std::to_string(state.step) + ".h5")).string();
  save_checkpoint(path, model, optimizer, state, model_spec, train_config);
  auto found = list();
  for (size_t i = 0; i + static_cast<size_t>(keep_) < found.size(); ++i) {
    if (found[i].second != path) std::filesystem::remove(found[i].second);  // never the one just written
  }
  // Temporaries left by a process killed while saving (one process writes here; its own is renamed).
  const std::regex temporary("ckpt-[0-9]+\\.h5\\.tmp");
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ignored)) {
    if (std::regex_match(entry.path().filename().string(), temporary)) std::filesystem::remove(entry.path(), ignored);
  }
  return path;
}

std::vector<std::string> CheckpointDir::remove_after(int64_t step) {
  std::vector<std::string> removed;
  for (const auto& [s, path] : list()) {
    if (s > step) {
      std::filesystem::remove(path);
      removed.push_back(path);
    }
  }
  return removed;
}

std::string CheckpointDir::latest() const {
  const auto found = list();
  return found.empty() ? std::string() : found.back().second;
}

BuiltModel build_model_from_checkpoint(const Checkpoint& checkpoint) {
  HORO_CHECK(!checkpoint.model_spec.empty(), ValueError, checkpoint.path,
             ": holds no model specification (a model built in C++ saved it); build the model, then load_model()");
  BuiltModel built = build_model_from_text(checkpoint.model_spec, checkpoint.path + ":model_spec");
  load_model(*built.model, checkpoint, true);
  return built;
}

}  // namespace horo::nn
