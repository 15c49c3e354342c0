// Random streams as (seed, offset) pairs over Philox: a consumer takes a range of the stream by
// advancing the offset, so its draws depend only on the seed and how much was drawn before it.
#pragma once

#include <cstdint>

namespace horo {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}

  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed; offset_ = offset; }
  // Reserves `count` numbers of the stream and returns the offset of the first. Offsets advance in
  // whole Philox blocks (4 numbers), so each reservation starts on a block boundary.
  uint64_t reserve(uint64_t count) {
    const uint64_t start = offset_;
    offset_ += (count + 3) / 4 * 4;
    return start;
  }

 private:
  uint64_t seed_ = 0;
  uint64_t offset_ = 0;
};

// The process-wide generator used by dropout and initialisation unless given another.
Generator& default_generator();
// Restarts the default generator at (seed, 0), like torch.manual_seed.
void manual_seed(uint64_t seed);

}  // namespace horo
