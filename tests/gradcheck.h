// Numerical gradient checking: compares autograd's gradient of L = sum(f(inputs) * R), with R a fixed
// random tensor, against central differences of L, element by element.
#pragma once

#include <functional>

#include "nn/functional.h"
#include "tests/test_util.h"

namespace horo::testing {

struct GradcheckOptions {
  float eps = 1e-2f;
  double atol = 2e-3, rtol = 2e-2;
  int64_t max_elements = 48;  // per input: check at most this many (randomly chosen) elements
  // Skips element i of input k where the function has a kink nearby (ReLU at 0, ties in max).
  std::function<bool(size_t input, int64_t element)> skip;
};

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

inline void gradcheck(const Fn& f, std::vector<Tensor> inputs, const GradcheckOptions& o = {}) {
  for (auto& x : inputs) x.set_requires_grad(true);
  const Tensor out0 = f(inputs);
  const Tensor weights = random_tensor(out0.shape(), 0.5f, 1.5f);
  auto loss_of = [&](const std::vector<Tensor>& in) { return nn::functional::sum(nn::functional::mul(f(in), weights)); };

  loss_of(inputs).backward();
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor analytic = inputs[k].grad();
    ASSERT_TRUE(analytic.defined()) << "input " << k << " received no gradient";
    ASSERT_EQ(analytic.shape(), inputs[k].shape());
    float* x = inputs[k].data<float>();
    const int64_t n = inputs[k].numel();
    int checked = 0;
    for (int64_t trial = 0; trial < std::min(n, o.max_elements); ++trial) {
      const int64_t i = n <= o.max_elements ? trial : random_int(0, n - 1);
      if (o.skip && o.skip(k, i)) continue;
      const float original = x[i];
      double plus = 0, minus = 0;
      {
        autograd::NoGradGuard no_grad;
        x[i] = original + o.eps;
        plus = loss_of(inputs).item();
        x[i] = original - o.eps;
        minus = loss_of(inputs).item();
        x[i] = original;
      }
      const double numeric = (plus - minus) / (2.0 * o.eps);
      const double got = analytic.data<float>()[i];
      EXPECT_NEAR(got, numeric, o.atol + o.rtol * std::fabs(numeric)) << "input " << k << " element " << i;
      ++checked;
    }
    EXPECT_GT(checked, 0) << "input " << k << ": every element was skipped";
  }
}

}  // namespace horo::testing
