// Optimizer steps and learning-rate schedules against values computed by hand from torch.optim's rules.
#include <gtest/gtest.h>

#include "nn/optim.h"
#include "tests/test_util.h"

namespace horo::optim {
namespace {

// A one-element parameter at 1.0 whose gradient we set by hand before each step.
struct Scalar {
  Tensor p = Tensor::from_vector(std::vector<float>{1.0f}, {1}).set_requires_grad(true);
  void step(Optimizer& opt, float grad) {
    p.set_grad(Tensor::from_vector(std::vector<float>{grad}, {1}));
    opt.step();
  }
  float value() const { return p.data<float>()[0]; }
};

TEST(Optim, PlainSgd) {
  Scalar s;
  SGD opt({s.p}, {.lr = 0.1f});
  s.step(opt, 0.5f);
  EXPECT_FLOAT_EQ(s.value(), 0.95f);
}

TEST(Optim, SgdWithMomentumAndWeightDecay) {
  Scalar s;
  SGD opt({s.p}, {.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.1f});
  s.step(opt, 0.5f);  // g = 0.5 + 0.1 * 1 = 0.6; buf = 0.6; p = 1 - 0.06
  EXPECT_FLOAT_EQ(s.value(), 0.94f);
  s.step(opt, 0.25f);  // g = 0.25 + 0.094 = 0.344; buf = 0.54 + 0.344 = 0.884; p = 0.94 - 0.0884
  EXPECT_NEAR(s.value(), 0.8516f, 1e-6);
}

TEST(Optim, SgdNesterov) {
  Scalar s;
  SGD opt({s.p}, {.lr = 0.1f, .momentum = 0.9f, .nesterov = true});
  s.step(opt, 0.5f);  // buf = 0.5; g = 0.5 + 0.45 = 0.95
  EXPECT_NEAR(s.value(), 0.905f, 1e-6);
  s.step(opt, 0.25f);  // buf = 0.7; g = 0.25 + 0.63 = 0.88
  EXPECT_NEAR(s.value(), 0.817f, 1e-6);
}

TEST(Optim, AdamWithBiasCorrection) {
  Scalar s;
  Adam opt({s.p}, {.lr = 0.1f});
  s.step(opt, 0.5f);
  EXPECT_NEAR(s.value(), 0.9f, 1e-6);
  s.step(opt, 0.25f);
  EXPECT_NEAR(s.value(), 0.80678204f, 1e-6);
}

TEST(Optim, AdamL2DecayAndAdamWDecoupledDecayDiffer) {
  Scalar coupled, decoupled;
  Adam adam({coupled.p}, {.lr = 0.1f, .weight_decay = 0.1f});
  AdamW adamw({decoupled.p}, {.lr = 0.1f, .weight_decay = 0.1f});
  coupled.step(adam, 0.5f);      // g = 0.6, normalised step 1: p = 0.9
  decoupled.step(adamw, 0.5f);   // p = 1 * (1 - 0.01) - 0.1 = 0.89
  EXPECT_NEAR(coupled.value(), 0.9f, 1e-6);
  EXPECT_NEAR(decoupled.value(), 0.89f, 1e-6);
}

TEST(Optim, ParameterGroupsHaveTheirOwnLearningRates) {
  Scalar slow, fast;
  SGD opt(std::vector<ParamGroup>{{{slow.p}, 0.01f}, {{fast.p}, -1.0f}}, {.lr = 0.1f});
  slow.p.set_grad(Tensor::from_vector(std::vector<float>{1.0f}, {1}));
  fast.p.set_grad(Tensor::from_vector(std::vector<float>{1.0f}, {1}));
  opt.step();
  EXPECT_NEAR(slow.value(), 0.99f, 1e-6);
  EXPECT_NEAR(fast.value(), 0.9f, 1e-6);
}

TEST(Optim, FrozenAndGradientlessParametersAreSkipped) {
  Scalar frozen, unused;
  frozen.p.set_grad(Tensor::from_vector(std::vector<float>{1.0f}, {1}));
  frozen.p.set_requires_grad(false);
  Adam opt({frozen.p, unused.p}, {.lr = 0.1f});
  opt.step();
  EXPECT_EQ(frozen.value(), 1.0f);
  EXPECT_EQ(unused.value(), 1.0f);
}

TEST(Schedules, StepCosineAndWarmupFollowTheirFormulas) {
  Scalar s;
  SGD opt({s.p}, {.lr = 1.0f});
  {
    StepLR sched(opt, 2, 0.5);
    const float expected[] = {1.0f, 0.5f, 0.5f, 0.25f};
    for (float e : expected) { sched.step(); EXPECT_FLOAT_EQ(opt.param_groups()[0].lr, e); }
  }
  opt.param_groups()[0].lr = 1.0f;
  {
    CosineAnnealingLR sched(opt, 4);
    sched.step();
    EXPECT_NEAR(opt.param_groups()[0].lr, 0.8535534f, 1e-6);
    sched.step();
    EXPECT_NEAR(opt.param_groups()[0].lr, 0.5f, 1e-6);
    sched.step();
    sched.step();
    EXPECT_NEAR(opt.param_groups()[0].lr, 0.0f, 1e-6);
  }
  opt.param_groups()[0].lr = 1.0f;
  {
    LinearWarmup sched(opt, 4, 0.25, std::make_unique<CosineAnnealingLR>(opt, 4));
    EXPECT_NEAR(opt.param_groups()[0].lr, 0.25f, 1e-6);  // set on construction
    sched.step();
    sched.step();
    EXPECT_NEAR(opt.param_groups()[0].lr, 0.625f, 1e-6);
    sched.step();
    sched.step();
    EXPECT_NEAR(opt.param_groups()[0].lr, 1.0f, 1e-6);
    sched.step();
    sched.step();
    EXPECT_NEAR(opt.param_groups()[0].lr, 0.5f, 1e-6);
  }
}

TEST(Optim, InvalidOptionsAreRejected) {
  Scalar s;
  testing::expect_error<ValueError>([&] { SGD({s.p}, {.lr = 0.1f, .nesterov = true}); }, {"Nesterov"});
  testing::expect_error<ValueError>([&] { Adam({s.p}, {.beta1 = 1.0f}); }, {"betas"});
  testing::expect_error<ValueError>([&] { SGD({s.p}, {.lr = -1.0f}); }, {"learning rate"});
}

}  // namespace
}  // namespace horo::optim
