// CUDA against CPU: every op forward and backward on fresh random inputs of several shapes (odd sizes
// included), dropout masks equal across devices, W1 training on both devices, and the caching
// allocator. Every test skips, saying so, where no GPU is visible.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <limits>

#include "train/loop.h"
#include "kernels/device.h"
#include "nn/models.h"
#include "nn/norm.h"
#include "nn/optim.h"
#include "tests/test_util.h"

namespace horo {
namespace {

namespace F = nn::functional;
using testing::normalized_error;
using testing::random_int;
using testing::random_tensor;

const Device kGpu = Device::cuda(0);

#define SKIP_WITHOUT_GPU() \
  if (!kernels::cuda::available()) GTEST_SKIP() << "no CUDA device visible: CUDA parity tests skipped"

// Runs f on CPU copies and on GPU copies of the inputs (all requiring gradients), then compares the
// outputs and every input gradient by normalised error.
void expect_parity(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& inputs,
                   double tolerance = 1e-4) {
  std::vector<Tensor> cpu, gpu;
  for (const auto& t : inputs) {
    cpu.push_back(t.clone().set_requires_grad(true));
    gpu.push_back(t.to(kGpu).set_requires_grad(true));
  }
  const Tensor out_cpu = f(cpu), out_gpu = f(gpu);
  ASSERT_EQ(out_gpu.device(), kGpu);
  EXPECT_LT(normalized_error(out_gpu.to_vector(), out_cpu.to_vector()), tolerance) << "forward";
  const Tensor weights = random_tensor(out_cpu.shape(), 0.5f, 1.5f);
  F::sum(F::mul(out_cpu, weights)).backward();
  F::sum(F::mul(out_gpu, weights.to(kGpu))).backward();
  for (size_t i = 0; i < inputs.size(); ++i) {
    EXPECT_LT(normalized_error(gpu[i].grad().to_vector(), cpu[i].grad().to_vector()), tolerance) << "gradient of input " << i;
  }
}

TEST(CudaParity, LinearAndMatmul) {
  SKIP_WITHOUT_GPU();
  for (int trial = 0; trial < 4; ++trial) {
    const int64_t n = random_int(1, 70), in = random_int(1, 300), out = random_int(1, 130);
    expect_parity([](const std::vector<Tensor>& v) { return F::linear(v[0], v[1], v[2]); },
                  {random_tensor({n, in}), random_tensor({out, in}), random_tensor({out})});
    expect_parity([](const std::vector<Tensor>& v) { return F::matmul(v[0], v[1]); },
                  {random_tensor({n, in}), random_tensor({in, out})});
  }
}

TEST(CudaParity, Conv2dWithStridePaddingDilation) {
  SKIP_WITHOUT_GPU();
  for (int trial = 0; trial < 6; ++trial) {
    const ops::Conv2dParams p{.stride_h = random_int(1, 2), .stride_w = random_int(1, 2), .pad_h = random_int(0, 2),
                              .pad_w = random_int(0, 2), .dilation_h = random_int(1, 2), .dilation_w = random_int(1, 2)};
    const int64_t cin = random_int(1, 9), cout = random_int(1, 17), k = random_int(1, 5);
    expect_parity([p](const std::vector<Tensor>& v) { return F::conv2d(v[0], v[1], v[2], p); },
                  {random_tensor({random_int(1, 9), cin, random_int(9, 31), random_int(9, 29)}), random_tensor({cout, cin, k, k}),
                   random_tensor({cout})});
  }
}

TEST(CudaParity, PoolingActivationsSoftmaxReductions) {
  SKIP_WITHOUT_GPU();
  const Shape shape{random_int(1, 7), random_int(1, 9), random_int(4, 27), random_int(4, 25)};
  for (const ops::Pool2dParams& p : {ops::Pool2dParams{}, ops::Pool2dParams{.kernel_h = 3, .kernel_w = 3, .stride_h = 2,
                                                                             .stride_w = 1, .pad_h = 1, .pad_w = 1}}) {
    expect_parity([p](const std::vector<Tensor>& v) { return F::max_pool2d(v[0], p); }, {random_tensor(shape)});
    expect_parity([p](const std::vector<Tensor>& v) { return F::avg_pool2d(v[0], p); }, {random_tensor(shape)});
  }
  for (auto fn : {F::relu, F::sigmoid, F::tanh, F::gelu, F::exp, F::neg, F::abs}) {
    expect_parity([fn](const std::vector<Tensor>& v) { return fn(v[0]); }, {random_tensor(shape, -3, 3)});
  }
  expect_parity([](const std::vector<Tensor>& v) { return F::log(v[0]) + F::sqrt(v[0]); }, {random_tensor(shape, 0.1f, 3)});
  expect_parity([](const std::vector<Tensor>& v) { return F::leaky_relu(v[0], 0.2f); }, {random_tensor(shape)});
  for (int64_t dim : {0, 1, 3}) {
    expect_parity([dim](const std::vector<Tensor>& v) { return F::softmax(v[0], dim); }, {random_tensor(shape, -4, 4)});
    expect_parity([dim](const std::vector<Tensor>& v) { return F::log_softmax(v[0], dim); }, {random_tensor(shape, -4, 4)});
    expect_parity([dim](const std::vector<Tensor>& v) { return F::sum(v[0], dim, true); }, {random_tensor(shape)});
  }
  expect_parity([](const std::vector<Tensor>& v) { return F::mean(v[0]); }, {random_tensor({1 << 20})});
}

TEST(CudaParity, BroadcastingArithmetic) {
  SKIP_WITHOUT_GPU();
  expect_parity([](const std::vector<Tensor>& v) { return (v[0] + v[1]) * v[2] / (v[1] * v[1] + 1.0f) - v[0]; },
                {random_tensor({7, 1, 13}), random_tensor({5, 1}), random_tensor({13})});
}

TEST(CudaParity, CrossEntropyWithWeightsAndSmoothing) {
  SKIP_WITHOUT_GPU();
  const int64_t n = random_int(1, 300), classes = random_int(2, 40);
  std::vector<int64_t> labels(static_cast<size_t>(n));
  for (auto& y : labels) y = random_int(0, classes - 1);
  const Tensor y = Tensor::from_vector(labels, {n});
  const Tensor w = random_tensor({classes}, 0.2f, 2.0f);
  auto run = [&](const std::vector<Tensor>& v) {
    const bool gpu = v[0].device().is_cuda();
    return F::cross_entropy(v[0], gpu ? y.to(kGpu) : y, {.weight = gpu ? w.to(kGpu) : w, .label_smoothing = 0.1f});
  };
  expect_parity(run, {random_tensor({n, classes}, -5, 5)});
}

TEST(CudaParity, DropoutMasksAreTheSameOnBothDevices) {
  SKIP_WITHOUT_GPU();
  const Tensor x = random_tensor({1001, 37});
  Generator cpu_gen(77), gpu_gen(77);
  const Tensor a = F::dropout(x, 0.4f, true, &cpu_gen), b = F::dropout(x.to(kGpu), 0.4f, true, &gpu_gen);
  EXPECT_EQ(a.to_vector(), b.to_vector());
}

TEST(CudaParity, OptimizerUpdates) {
  SKIP_WITHOUT_GPU();
  for (int kind = 0; kind < 2; ++kind) {
    const Tensor start = random_tensor({1000}), grad = random_tensor({1000});
    Tensor p_cpu = start.clone().set_requires_grad(true), p_gpu = start.to(kGpu).set_requires_grad(true);
    std::unique_ptr<optim::Optimizer> o_cpu, o_gpu;
    if (kind == 0) {
      o_cpu = std::make_unique<optim::SGD>(std::vector<Tensor>{p_cpu}, optim::SgdOptions{.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f, .nesterov = true});
      o_gpu = std::make_unique<optim::SGD>(std::vector<Tensor>{p_gpu}, optim::SgdOptions{.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f, .nesterov = true});
    } else {
      o_cpu = std::make_unique<optim::Adam>(std::vector<Tensor>{p_cpu}, optim::AdamOptions{.lr = 0.01f, .weight_decay = 0.01f});
      o_gpu = std::make_unique<optim::Adam>(std::vector<Tensor>{p_gpu}, optim::AdamOptions{.lr = 0.01f, .weight_decay = 0.01f});
    }
    for (int step = 0; step < 5; ++step) {
      p_cpu.set_grad(grad);
      p_gpu.set_grad(grad.to(kGpu));
      o_cpu->step();
      o_gpu->step();
    }
    EXPECT_LT(normalized_error(p_gpu.to_vector(), p_cpu.to_vector()), 1e-6) << (kind ? "adam" : "sgd");
  }
}

TEST(CudaParity, BatchNormTrainingAndEvaluationWithAndWithoutRelu) {
  SKIP_WITHOUT_GPU();
  for (const Shape& shape : {Shape{random_int(2, 9), random_int(1, 33), random_int(1, 29), random_int(1, 31)},
                             Shape{random_int(2, 70), random_int(1, 300)}}) {
    const int64_t c = shape[1];
    for (bool training : {true, false}) {
      for (bool relu : {false, true}) {
        SCOPED_TRACE(::testing::Message() << shape_str(shape) << " training " << training << " relu " << relu);
        const Tensor rm = random_tensor({c}), rv = random_tensor({c}, 0.5f, 2.0f);
        Tensor rm_cpu = rm.clone(), rv_cpu = rv.clone(), rm_gpu = rm.to(kGpu), rv_gpu = rv.to(kGpu);
        expect_parity([&](const std::vector<Tensor>& v) {
                        const bool gpu = v[0].device().is_cuda();
                        return F::batch_norm(v[0], gpu ? rm_gpu : rm_cpu, gpu ? rv_gpu : rv_cpu, v[1], v[2],
                                             {.training = training, .relu = relu});
                      },
                      {random_tensor(shape, -1, 3), random_tensor({c}, 0.5f, 1.5f), random_tensor({c})});
        EXPECT_LT(normalized_error(rm_gpu.to_vector(), rm_cpu.to_vector()), 1e-5) << "running_mean";
        EXPECT_LT(normalized_error(rv_gpu.to_vector(), rv_cpu.to_vector()), 1e-5) << "running_var";
      }
    }
  }
  nn::BatchNorm2d bn({.features = 3});
  bn.to(kGpu);
  bn(random_tensor({4, 3, 5, 5}).to(kGpu));
  EXPECT_EQ(bn.num_batches_tracked.to(Device::cpu()).data<int64_t>()[0], 1);
}

TEST(CudaParity, AdaptivePoolingCatAndAddRelu) {
  SKIP_WITHOUT_GPU();
  const Shape shape{random_int(1, 7), random_int(1, 9), random_int(3, 27), random_int(3, 25)};
  for (auto [oh, ow] : {std::pair<int64_t, int64_t>{1, 1}, {3, 2}, {shape[2] + 1, 5}}) {
    expect_parity([oh = oh, ow = ow](const std::vector<Tensor>& v) { return F::adaptive_avg_pool2d(v[0], oh, ow); }, {random_tensor(shape)});
  }
  for (int64_t dim : {0, 1, 3}) {
    Shape other = shape;
    other[static_cast<size_t>(dim)] = random_int(1, 5);
    expect_parity([dim](const std::vector<Tensor>& v) { return F::cat({v[0], v[1]}, dim); }, {random_tensor(shape), random_tensor(other)});
  }
  expect_parity([](const std::vector<Tensor>& v) { return F::add_relu(v[0], v[1]); }, {random_tensor(shape), random_tensor(shape)});
}

// The losses of `steps` training steps on batches of 32 random 1x28x28 images (batch `step` drawn
// from seed first_seed + step, labels (i * label_stride + step) % 10): the same on every device.
std::vector<float> training_losses(nn::Module& model, optim::Optimizer& opt, Device device, int steps,
                                   uint64_t first_seed, int label_stride) {
  std::vector<float> losses;
  for (int step = 0; step < steps; ++step) {
    const Tensor x = Tensor::normal({32, 1, 28, 28}, 0, 1, first_seed + static_cast<uint64_t>(step));
    std::vector<int64_t> labels(32);
    for (int i = 0; i < 32; ++i) labels[i] = (i * label_stride + step) % 10;
    const Tensor loss = F::cross_entropy(model(x.to(device)), Tensor::from_vector(labels, {32}).to(device));
    opt.zero_grad();
    loss.backward();
    opt.step();
    losses.push_back(loss.item());
  }
  return losses;
}

// W5's layers on both devices from the same seed: 30 SGD steps of resnet20 stay close, and the
// running statistics with them.
TEST(CudaTraining, ResNet20LossesAndRunningStatisticsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  auto run = [](Device device, std::vector<float>& buffers) {
    manual_seed(4);
    auto model = nn::make_model("resnet20", 10);
    model->to(device);
    optim::SGD opt(model->parameters(), {.lr = 0.05f, .momentum = 0.9f, .weight_decay = 5e-4f, .nesterov = true});
    const auto losses = training_losses(*model, opt, device, 30, 200, 3);
    for (const auto& [name, b] : model->named_buffers()) {
      if (b.dtype() == DType::Float32) for (float v : b.to_vector()) buffers.push_back(v);
    }
    return losses;
  };
  std::vector<float> buffers_cpu, buffers_gpu;
  const auto cpu = run(Device::cpu(), buffers_cpu), gpu = run(kGpu, buffers_gpu);
  for (size_t i = 0; i < cpu.size(); i += 5) EXPECT_NEAR(gpu[i], cpu[i], 0.02 + 0.02 * std::fabs(cpu[i])) << "step " << i;
  EXPECT_LT(normalized_error(buffers_gpu, buffers_cpu), 0.05);
}

// W1 for 200 steps from the same seed on both devices: the losses stay close.
TEST(CudaTraining, W1LossesMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  auto run = [](Device device) {
    manual_seed(3);
    auto model = nn::make_cnn();
    model->to(device);
    optim::Adam opt(model->parameters(), {.lr = 1e-3f});
    return training_losses(*model, opt, device, 200, 100, 7);
  };
  const auto cpu = run(Device::cpu()), gpu = run(kGpu);
  for (size_t i = 0; i < cpu.size(); i += 20) EXPECT_NEAR(gpu[i], cpu[i], 0.02 + 0.02 * std::fabs(cpu[i])) << "step " << i;
  EXPECT_NEAR(gpu.back(), cpu.back(), 0.05);
}

TEST(CudaAllocator, NoDeviceAllocationAfterTheFirstStepAndNoLeak) {
  SKIP_WITHOUT_GPU();
  auto model = nn::make_cnn();
  model->to(kGpu);
  optim::Adam opt(model->parameters());
  const Tensor x = random_tensor({64, 1, 28, 28}).to(kGpu);
  const Tensor y = Tensor::from_vector(std::vector<int64_t>(64, 1), {64}).to(kGpu);
  auto step = [&] {
    opt.zero_grad();
    F::cross_entropy((*model)(x), y).backward();
    opt.step();
  };
  step();
  step();
  const auto before = kernels::cuda::allocator_stats();
  for (int i = 0; i < 1000; ++i) step();
  kernels::cuda::synchronize();
  const auto after = kernels::cuda::allocator_stats();
  EXPECT_EQ(after.cuda_mallocs, before.cuda_mallocs) << "cudaMalloc in the steady state";
  EXPECT_EQ(after.in_use_bytes, before.in_use_bytes) << "device memory leaked over 1,000 steps";
}

// One training step of W1 waits for the GPU once (the loss and the correct count), not once per
// label check, loss, accuracy and copy.
TEST(CudaStep, W1StepWaitsForTheHostOnce) {
  SKIP_WITHOUT_GPU();
  auto model = nn::make_cnn();
  model->to(kGpu);
  optim::Adam opt(model->parameters());
  const Tensor x = random_tensor({64, 1, 28, 28});
  std::vector<int64_t> labels(64);
  for (auto& y : labels) y = random_int(0, 9);
  const Tensor y = Tensor::from_vector(labels, {64});
  Tensor pinned = Tensor::empty_pinned(x.shape());
  pinned.copy_from(x);
  for (int warmup = 0; warmup < 2; ++warmup) training::train_step(*model, opt, pinned.to(kGpu), y.to(kGpu));
  const uint64_t before = kernels::cuda::host_waits();
  int64_t correct = -1;
  training::train_step(*model, opt, pinned.to(kGpu), y.to(kGpu), &correct);
  EXPECT_EQ(kernels::cuda::host_waits() - before, 1u);
  EXPECT_GE(correct, 0);
  EXPECT_LE(correct, 64);
}

TEST(CudaParity, CountCorrectWithTiesAndNaN) {
  SKIP_WITHOUT_GPU();
  const int64_t rows = random_int(1, 500), cols = random_int(1, 40);
  Tensor logits = random_tensor({rows, cols});
  float* p = logits.data<float>();
  for (int64_t r = 0; r < rows; r += 7) p[r * cols + random_int(0, cols - 1)] = std::numeric_limits<float>::quiet_NaN();
  for (int64_t r = 3; r < rows; r += 11) std::fill(p + r * cols, p + (r + 1) * cols, 0.5f);  // ties: the first wins
  std::vector<int64_t> labels(static_cast<size_t>(rows));
  for (auto& y : labels) y = random_int(0, cols - 1);
  const Tensor y = Tensor::from_vector(labels, {rows});
  EXPECT_EQ(ops::count_correct(logits.to(kGpu), y.to(kGpu)).item(), ops::count_correct(logits, y).item());
  const auto a = ops::argmax_rows(logits.to(kGpu)).to(Device::cpu()), b = ops::argmax_rows(logits);
  EXPECT_TRUE(std::equal(a.data<int64_t>(), a.data<int64_t>() + rows, b.data<int64_t>()));
}

// A label out of range on the GPU is found by the kernels, without a host wait of its own, and raised
// by the next one naming the label and its row; the device is usable afterwards.
TEST(CudaParity, CrossEntropyLabelOutOfRangeIsRaisedAtTheNextWait) {
  SKIP_WITHOUT_GPU();
  const Tensor logits = random_tensor({6, 4}).to(kGpu);
  const Tensor bad = Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 7, 3, 0}, {6}).to(kGpu);
  const uint64_t before = kernels::cuda::host_waits();
  const Tensor loss = F::cross_entropy(logits, bad);
  EXPECT_EQ(kernels::cuda::host_waits(), before) << "the label check waited for the GPU";
  testing::expect_error<ValueError>([&] { loss.item(); }, {"label 7", "batch index 3", "[0, 4)"});
  const Tensor good = Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 3, 3, 0}, {6}).to(kGpu);
  EXPECT_TRUE(std::isfinite(F::cross_entropy(logits, good).item()));
}

// Large logits (around +-1e4) and rows of 50,000 classes: softmax, log-softmax and cross-entropy
// against the CPU, forward and backward.
TEST(CudaParity, SoftmaxAndCrossEntropyOnLargeLogitsAndWideRows) {
  SKIP_WITHOUT_GPU();
  for (const Shape& shape : {Shape{37, 50000}, Shape{300, 10}, Shape{5, 1025}}) {
    SCOPED_TRACE(shape_str(shape));
    const Tensor x = random_tensor(shape, -1e4f, 1e4f);
    expect_parity([](const std::vector<Tensor>& v) { return F::softmax(v[0], 1); }, {x}, 1e-4);
    expect_parity([](const std::vector<Tensor>& v) { return F::log_softmax(v[0], 1); }, {x}, 1e-4);
    std::vector<int64_t> labels(static_cast<size_t>(shape[0]));
    for (auto& y : labels) y = random_int(0, shape[1] - 1);
    const Tensor y = Tensor::from_vector(labels, {shape[0]});
    expect_parity([&](const std::vector<Tensor>& v) {
                    return F::cross_entropy(v[0], v[0].device().is_cuda() ? y.to(kGpu) : y, {.weight = Tensor(), .label_smoothing = 0.1f});
                  },
                  {x}, 1e-4);
  }
}

// Empty batches, an inner size of 0, rectangular kernels, and argmax over more rows than one grid covers.
TEST(CudaParity, EdgeShapes) {
  SKIP_WITHOUT_GPU();
  expect_parity([](const std::vector<Tensor>& v) { return F::matmul(v[0], v[1]); }, {random_tensor({5, 0}), random_tensor({0, 7})});
  EXPECT_EQ(F::softmax(Tensor::zeros({0, 9}, DType::Float32, kGpu), 1).numel(), 0);
  EXPECT_EQ(F::relu(Tensor::zeros({0, 3, 4, 4}, DType::Float32, kGpu)).numel(), 0);
  expect_parity([](const std::vector<Tensor>& v) { return F::conv2d(v[0], v[1], v[2], {.pad_h = 1, .pad_w = 2}); },
                {random_tensor({2, 3, 11, 13}), random_tensor({4, 3, 1, 5}), random_tensor({4})});
  const int64_t rows = 65535LL * 16 * 256 + 5, cols = 2;  // past the grid's cap of blocks x threads
  std::vector<float> host(static_cast<size_t>(rows * cols), 0.0f);
  for (int64_t r = 0; r < rows; ++r) host[static_cast<size_t>(r * cols + r % 2)] = 1.0f;
  const Tensor arg = ops::argmax_rows(Tensor::from_vector(host, {rows, cols}).to(kGpu)).to(Device::cpu());
  for (int64_t r : {int64_t{0}, int64_t{1}, rows / 2, rows - 2, rows - 1}) EXPECT_EQ(arg.data<int64_t>()[r], r % 2) << r;
}

// Convolutions through cuDNN and through im2col + cuBLAS (the oracle) both match the CPU, and the
// cuDNN gradients are the same on two runs (deterministic algorithms are preferred).
TEST(CudaParity, ConvolutionThroughCudnnAndIm2colAgree) {
  SKIP_WITHOUT_GPU();
  if (!kernels::cuda::cudnn_available()) GTEST_SKIP() << "this build has no cuDNN";
  for (int trial = 0; trial < 4; ++trial) {
    const ops::Conv2dParams p{.stride_h = random_int(1, 2), .stride_w = random_int(1, 2), .pad_h = random_int(0, 2),
                              .pad_w = random_int(0, 2), .dilation_h = 1, .dilation_w = random_int(1, 2)};
    const Tensor x = random_tensor({random_int(1, 9), random_int(1, 9), random_int(9, 31), random_int(9, 29)});
    const Tensor w = random_tensor({random_int(1, 17), x.size(1), random_int(1, 5), random_int(1, 5)}), b = random_tensor({w.size(0)});
    auto conv = [p](const std::vector<Tensor>& v) { return F::conv2d(v[0], v[1], v[2], p); };
    for (bool cudnn : {true, false}) {
      SCOPED_TRACE(cudnn ? "cuDNN" : "im2col");
      kernels::cuda::set_cudnn(cudnn);
      expect_parity(conv, {x, w, b});
    }
    kernels::cuda::set_cudnn(true);
    std::vector<float> first;
    for (int run = 0; run < 2; ++run) {
      Tensor wg = w.to(kGpu).set_requires_grad(true);
      F::sum(conv({x.to(kGpu), wg, b.to(kGpu)})).backward();
      if (run == 0) first = wg.grad().to_vector();
      else EXPECT_EQ(wg.grad().to_vector(), first) << "cuDNN weight gradient differs between runs";
    }
  }
}

// Overlapping pooling windows: the gradient is the same on every run (gathered, not scattered with atomics).
TEST(CudaParity, PoolingBackwardIsBitIdenticalAcrossRuns) {
  SKIP_WITHOUT_GPU();
  const Tensor x = random_tensor({4, 5, 33, 31});
  const ops::Pool2dParams p{.kernel_h = 3, .kernel_w = 3, .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1};
  for (bool max : {true, false}) {
    std::vector<float> first;
    for (int run = 0; run < 2; ++run) {
      Tensor in = x.to(kGpu).set_requires_grad(true);
      const Tensor out = max ? F::max_pool2d(in, p) : F::avg_pool2d(in, p);
      F::sum(F::mul(out, out)).backward();
      const auto g = in.grad().to_vector();
      if (run == 0) first = g;
      else EXPECT_EQ(g, first) << (max ? "max" : "avg");
    }
  }
}

// The GPUs nvidia-smi lists this process on (0 when it cannot see the process: no nvidia-smi, or a
// container whose PIDs differ from the host's).
int gpus_listing_this_process() {
  FILE* smi = popen("nvidia-smi --query-compute-apps=pid,gpu_bus_id --format=csv,noheader 2>/dev/null", "r");
  if (!smi) return 0;
  char line[512];
  int gpus = 0;
  const std::string pid = std::to_string(getpid()) + ",";
  while (std::fgets(line, sizeof line, smi)) gpus += std::string(line).rfind(pid, 0) == 0;
  pclose(smi);
  return gpus;
}

// With a second GPU current, a training step on it opens nothing on GPU 0 (nvidia-smi lists the
// process on one GPU only). In a fresh process: this one has used GPU 0 in the tests before.
TEST(CudaDevices, WorkOnTheSecondGpuStaysThere) {
  SKIP_WITHOUT_GPU();
  if (kernels::cuda::device_count() < 2) GTEST_SKIP() << "needs two GPUs";
  if (gpus_listing_this_process() == 0) GTEST_SKIP() << "nvidia-smi does not list this process (no nvidia-smi, or another PID namespace)";
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // the child runs this test alone, from a fresh start
  EXPECT_EXIT(
      {
        const Device second = Device::cuda(1);
        kernels::cuda::set_device(1);
        auto model = nn::make_cnn();
        model->to(second);
        optim::Adam opt(model->parameters());
        training::train_step(*model, opt, random_tensor({16, 1, 28, 28}).to(second),
                         Tensor::from_vector(std::vector<int64_t>(16, 3), {16}).to(second));
        const int gpus = gpus_listing_this_process();
        std::fprintf(stderr, "listed on %d GPU(s)\n", gpus);
        std::exit(gpus == 1 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "listed on 1 GPU");
}

// Pinned batches are reused once their copies completed: the pool stops growing.
TEST(CudaAllocator, PinnedBuffersAreReused) {
  SKIP_WITHOUT_GPU();
  Tensor target = Tensor::empty({1 << 20}, DType::Float32, kGpu);
  for (int i = 0; i < 3; ++i) {
    Tensor batch = Tensor::empty_pinned({1 << 20});
    target.copy_from(batch);
  }
  kernels::cuda::synchronize();
  const size_t held = kernels::cuda::allocator_stats().pinned_bytes;
  for (int i = 0; i < 100; ++i) {
    Tensor batch = Tensor::empty_pinned({1 << 20});
    target.copy_from(batch);
    kernels::cuda::synchronize();
  }
  EXPECT_EQ(kernels::cuda::allocator_stats().pinned_bytes, held);
}

// A pinned block whose copy is still queued is not handed out again: behind ~0.2 s of GEMMs the copy
// has not run when the block is released, so the next request gets another block.
TEST(CudaAllocator, PinnedBlockIsNotReusedWhileItsCopyIsPending) {
  SKIP_WITHOUT_GPU();
  const Tensor a = random_tensor({8192, 8192}).to(kGpu);
  Tensor target = Tensor::empty({1 << 20}, DType::Float32, kGpu);
  kernels::cuda::synchronize();
  for (int i = 0; i < 10; ++i) {
    const Tensor product = F::matmul(a, a);
    (void)product;
  }
  const void* first = nullptr;
  {
    Tensor batch = Tensor::empty_pinned({1 << 20});
    first = batch.raw_data();
    target.copy_from(batch);  // queued behind the GEMMs
  }
  Tensor next = Tensor::empty_pinned({1 << 20});
  EXPECT_NE(next.raw_data(), first) << "a pinned block was reused while a copy from it was pending";
  kernels::cuda::synchronize();
}

}  // namespace
}  // namespace horo
