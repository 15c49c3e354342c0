// Shared by the libFuzzer targets: scratch files, the process's set-up, and HDF5 writing helpers for
// the targets that craft files. A target's contract: every input ends in a horo::Error or in
// success; anything else (a crash, a sanitizer report, another exception, a leak, a hang, memory
// past the limit) is a finding.
#pragma once

#include <fuzzer/FuzzedDataProvider.h>
#include <hdf5.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/parallel.h"
#include "tensor/hdf5.h"
#include "tensor/storage.h"

namespace horo::fuzz {

// A file of this process's own (libFuzzer runs one input at a time in each process).
inline std::string scratch(const std::string& name) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/horo-fuzz-" + std::to_string(::getpid()) + "-" + name;
}

inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
}

// Once per process: one thread (inputs are small; the fuzzer wants executions per second) and at
// most 256 MiB of tensors, so that a crafted size ends in OutOfMemoryError, not in the OOM killer.
inline bool setup() {
  set_num_threads(1);
  set_cpu_memory_limit(size_t{256} << 20);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  return true;
}

// An HDF5 type the fuzzer picks: the ones horo reads and some it must refuse.
inline hid_t pick_type(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange(0, 6)) {
    case 0: return H5T_IEEE_F32LE;
    case 1: return H5T_STD_I64LE;
    case 2: return H5T_STD_I32LE;
    case 3: return H5T_STD_U8LE;
    case 4: return H5T_IEEE_F64LE;
    case 5: return H5T_STD_I16BE;
    default: return H5T_IEEE_F32BE;
  }
}

// A small shape of rank 0 to 4 (each size 0 to 40, the product at most 64 Ki elements).
inline std::vector<hsize_t> pick_dims(FuzzedDataProvider& in, int max_rank = 4) {
  std::vector<hsize_t> dims(in.ConsumeIntegralInRange(0, max_rank));
  hsize_t total = 1;
  for (auto& d : dims) {
    d = in.ConsumeIntegralInRange<hsize_t>(0, 40);
    if (total * std::max<hsize_t>(d, 1) > (1u << 16)) d = 1;
    total *= std::max<hsize_t>(d, 1);
  }
  return dims;
}

inline hsize_t element_count(const std::vector<hsize_t>& dims) {
  hsize_t n = 1;
  for (hsize_t d : dims) n *= d;
  return n;
}

// Raw bytes for `count` elements of `type` from the input (zero-padded when it runs out).
inline std::vector<uint8_t> pick_bytes(FuzzedDataProvider& in, hid_t type, hsize_t count) {
  std::vector<uint8_t> bytes(static_cast<size_t>(count) * H5Tget_size(type));
  const auto given = in.ConsumeBytes<uint8_t>(bytes.size());
  std::copy(given.begin(), given.end(), bytes.begin());
  return bytes;
}

// A dataset `name` under `parent` of the picked type and shape, written (or, sometimes, left unwritten).
inline void write_dataset(FuzzedDataProvider& in, hid_t parent, const std::string& name, hid_t type,
                          const std::vector<hsize_t>& dims) {
  const hid_t space = dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  const hid_t set = H5Dcreate2(parent, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (set >= 0 && in.ConsumeIntegralInRange(0, 15) != 0) {
    const auto bytes = pick_bytes(in, type, element_count(dims));
    H5Dwrite(set, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data());
  }
  if (set >= 0) H5Dclose(set);
  H5Sclose(space);
}

// An attribute `name` on `object`: a number array of the picked type and shape, or a string.
inline void write_attribute(FuzzedDataProvider& in, hid_t object, const std::string& name) {
  if (in.ConsumeBool()) {
    const std::string text = in.ConsumeRandomLengthString(256);
    const hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, std::max<size_t>(1, text.size()));
    const hid_t space = H5Screate(H5S_SCALAR);
    const hid_t attr = H5Acreate2(object, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
    std::string padded = text;
    padded.resize(std::max<size_t>(1, text.size()));
    if (attr >= 0) {
      H5Awrite(attr, type, padded.data());
      H5Aclose(attr);
    }
    H5Sclose(space);
    H5Tclose(type);
    return;
  }
  const hid_t type = pick_type(in);
  const auto dims = pick_dims(in, 2);
  const hid_t space = dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  const hid_t attr = H5Acreate2(object, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
  if (attr >= 0) {
    const auto bytes = pick_bytes(in, type, element_count(dims));
    H5Awrite(attr, type, bytes.data());
    H5Aclose(attr);
  }
  H5Sclose(space);
}

// One string, written as horo writes strings (a one-element variable-length string array).
inline void write_text_attribute(hid_t object, const std::string& name, const std::string& text) {
  h5::write_string(object, name, text, "fuzz");
}

}  // namespace horo::fuzz
