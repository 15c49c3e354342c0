// Kernel tests that run once per thread count: 1, 2 and 3 (3 leaves a thread with a smaller share,
// or with nothing to do on small shapes).
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "kernels/parallel.h"

namespace horo::testing {

class ThreadCountTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { horo::set_num_threads(GetParam()); }
};

inline std::string thread_count_name(const ::testing::TestParamInfo<int>& info) {
  return std::to_string(info.param) + "_threads";
}

}  // namespace horo::testing

#define HORO_INSTANTIATE_THREAD_COUNTS(Suite) \
  INSTANTIATE_TEST_SUITE_P(Threads, Suite, ::testing::Values(1, 2, 3), ::horo::testing::thread_count_name)
