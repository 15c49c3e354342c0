// Helpers shared by the tests: fresh random inputs and error measures.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace horo::testing {

// The process's input seed: fresh on every run (a random device), or HORO_TEST_SEED to replay one.
// Callers print it on failure through SCOPED_TRACE(seed_trace()).
inline uint64_t test_seed() {
  static const uint64_t seed = [] {
    const char* given = std::getenv("HORO_TEST_SEED");
    return given && *given ? std::strtoull(given, nullptr, 10) : static_cast<uint64_t>(std::random_device{}());
  }();
  return seed;
}
inline std::string seed_trace() { return "inputs from HORO_TEST_SEED=" + std::to_string(test_seed()); }

inline std::mt19937_64& rng() {
  static std::mt19937_64 engine{test_seed()};
  return engine;
}

inline std::vector<float> random_values(int64_t n, float low = -1.0f, float high = 1.0f) {
  std::uniform_real_distribution<float> dist(low, high);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng());
  return v;
}

inline Tensor random_tensor(const Shape& shape, float low = -1.0f, float high = 1.0f) {
  return Tensor::from_vector(random_values(shape_numel(shape), low, high), shape);
}

inline int64_t random_int(int64_t low, int64_t high) {  // inclusive
  return std::uniform_int_distribution<int64_t>(low, high)(rng());
}

// max |a - b| / max(1, max |b|): the normalised error of a against the reference b.
inline double normalized_error(const float* a, const float* b, int64_t n) {
  double diff = 0.0, scale = 1.0;
  for (int64_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return diff / scale;
}

inline double normalized_error(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  return normalized_error(a.data(), b.data(), static_cast<int64_t>(std::min(a.size(), b.size())));
}

// Runs body and checks that it throws E whose message contains every fragment.
template <typename E, typename Body>
void expect_error(const Body& body, std::initializer_list<const char*> fragments) {
  try {
    body();
    ADD_FAILURE() << "expected an exception, none was thrown";
  } catch (const E& e) {
    const std::string message = e.what();
    for (const char* f : fragments) EXPECT_NE(message.find(f), std::string::npos) << "message: " << message << "\nlacks: " << f;
  }
}

// A fixture with a fresh scratch directory per test, removed afterwards.
class ScratchDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string leaf = "horo_test_";
    leaf += std::to_string(::getpid());
    leaf += '_';
    leaf += ::testing::UnitTest::GetInstance()->current_test_info()->name();
    dir_ = std::filesystem::temp_directory_path() / leaf;
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;
};

}  // namespace horo::testing
