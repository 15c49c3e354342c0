// Google Benchmark microbenchmarks of horo's kernels through its tensor ops, on the CPU and, where a
// GPU is visible, on CUDA: GFLOP/s for GEMM and convolution, GB/s for memory-bound ops, beside the
// device's own copy bandwidth (64 MiB device-to-device) and raw cuBLAS for the same GEMM shapes.
//   horo-bench-kernels --benchmark_filter=cuda
#include <benchmark/benchmark.h>

#include "kernels/device.h"
#include "kernels/gemm.h"
#include "nn/functional.h"

namespace {

using horo::Device;
using horo::Tensor;

void sync(Device d) {
  if (d.is_cuda()) horo::kernels::cuda::synchronize();
}

// GEMM [m, k] @ [k, n]: W1's linear layers and a large square one.
void BM_gemm(benchmark::State& state, Device d) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const Tensor a = Tensor::uniform({m, k}, -1, 1, 1).to(d), b = Tensor::uniform({k, n}, -1, 1, 2).to(d);
  for (auto _ : state) {
    benchmark::DoNotOptimize(horo::ops::matmul(a, b));
    sync(d);
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// W1's convolutions at its training batch (64): layer 1 (1 -> 32 channels, 28x28) and layer 2
// (32 -> 64, 13x13), 3x3. Passes: 0 forward, 1 input gradient, 2 weight (and bias) gradient, and on
// the CPU the fused conv + ReLU + 2x2 max-pool block W1 actually runs: 3 its forward, 4 its backward
// (weight gradient, plus the input gradient for layer 2, which layer 1 never needs). GFLOP/s counts
// the convolution's multiply-adds only (2 per weight per output cell per pass).
void BM_conv(benchmark::State& state, Device d) {
  const int64_t batch = 64, layer = state.range(0), pass = state.range(1);
  const int64_t cin = layer == 1 ? 1 : 32, cout = layer == 1 ? 32 : 64, side = layer == 1 ? 28 : 13, out = side - 2;
  const Tensor x = Tensor::uniform({batch, cin, side, side}, -1, 1, 1).to(d), w = Tensor::uniform({cout, cin, 3, 3}, -0.3f, 0.3f, 2).to(d);
  const Tensor bias = Tensor::uniform({cout}, -0.1f, 0.1f, 4).to(d), g = Tensor::uniform({batch, cout, out, out}, -1, 1, 3).to(d);
  const double pass_flops = 2.0 * batch * cout * out * out * cin * 9;
  double flops = pass_flops;
  if (pass >= 3 && d.is_cuda()) {
    state.SkipWithError("the fused block is CPU only");
    return;
  }
  Tensor pooled, argmax, pooled_grad;
  if (pass == 4) {
    std::tie(pooled, argmax) = horo::ops::conv2d_relu_maxpool2d(x, w, bias, {}, {});
    pooled_grad = Tensor::uniform(pooled.shape(), -1, 1, 5);
    flops = pass_flops * (layer == 1 ? 1 : 2);
  }
  for (auto _ : state) {
    switch (pass) {
      case 0: benchmark::DoNotOptimize(horo::ops::conv2d(x, w, bias, {})); break;
      case 1: benchmark::DoNotOptimize(horo::ops::conv2d_backward_input(g, w, x.shape(), {})); break;
      case 2: benchmark::DoNotOptimize(horo::ops::conv2d_backward_weight(x, g, w.shape(), true, {})); break;
      case 3: benchmark::DoNotOptimize(horo::ops::conv2d_relu_maxpool2d(x, w, bias, {}, {})); break;
      case 4:
        benchmark::DoNotOptimize(horo::ops::conv2d_relu_maxpool2d_backward(x, w, pooled, argmax, pooled_grad, layer == 2,
                                                                           true, true, {}, {}));
        break;
    }
    sync(d);
  }
  state.counters["GFLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// W5's 3x3 stride-1 convolutions (padding 1, no bias) at its training batch (128): stage 1 (16 -> 16
// channels, 28x28), 2 (32 -> 32, 14x14) and 3 (64 -> 64, 7x7). Passes: 0 forward, 1 input gradient,
// 2 weight gradient. GFLOP/s counts the convolution's multiply-adds (2 per weight per output cell).
void BM_conv_w5(benchmark::State& state, Device d) {
  const int64_t batch = 128, stage = state.range(0), pass = state.range(1);
  const int64_t c = 16 << (stage - 1), side = 28 >> (stage - 1);
  const horo::ops::Conv2dParams p{.pad_h = 1, .pad_w = 1};
  const Tensor x = Tensor::uniform({batch, c, side, side}, -1, 1, 1).to(d), w = Tensor::uniform({c, c, 3, 3}, -0.3f, 0.3f, 2).to(d);
  const Tensor g = Tensor::uniform({batch, c, side, side}, -1, 1, 3).to(d);
  for (auto _ : state) {
    switch (pass) {
      case 0: benchmark::DoNotOptimize(horo::ops::conv2d(x, w, Tensor(), p)); break;
      case 1: benchmark::DoNotOptimize(horo::ops::conv2d_backward_input(g, w, x.shape(), p)); break;
      case 2: benchmark::DoNotOptimize(horo::ops::conv2d_backward_weight(x, g, w.shape(), false, p)); break;
    }
    sync(d);
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * batch * c * c * 9 * side * side, benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}

// Memory-bound ops on a 64 MiB float tensor: bytes read and written per second.
void BM_memory(benchmark::State& state, Device d) {
  const int64_t n = int64_t{16} << 20;
  const Tensor x = Tensor::uniform({n / 1024, 1024}, -1, 1, 1).to(d), y = Tensor::uniform({n / 1024, 1024}, -1, 1, 2).to(d);
  const Tensor planes = x.view({n / (32 * 32), 1, 32, 32});
  double bytes = 0;
  for (auto _ : state) {
    switch (state.range(0)) {
      case 0: benchmark::DoNotOptimize(horo::ops::unary(horo::kernels::Unary::ReLU, x)); bytes = 8.0 * n; break;
      case 1: benchmark::DoNotOptimize(horo::ops::binary(horo::kernels::Binary::Add, x, y)); bytes = 12.0 * n; break;
      case 2: benchmark::DoNotOptimize(horo::ops::maxpool2d(planes, {})); bytes = 4.0 * n + 8.0 * n / 4; break;
      case 3: benchmark::DoNotOptimize(x.clone()); bytes = 8.0 * n; break;  // the copy bandwidth to compare with
    }
    sync(d);
  }
  state.counters["GB/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void register_all(const char* prefix, Device d) {
  const std::string p = prefix;
  benchmark::RegisterBenchmark((p + "/gemm").c_str(), BM_gemm, d)
      ->Args({256, 128, 1600})->Args({256, 1600, 128})->Args({1600, 128, 256})->Args({2048, 2048, 2048})->UseRealTime();
  benchmark::RegisterBenchmark((p + "/conv_w1").c_str(), BM_conv, d)
      ->ArgNames({"layer", "pass"})->ArgsProduct({{1, 2}, {0, 1, 2, 3, 4}})->UseRealTime();
  benchmark::RegisterBenchmark((p + "/conv_w5").c_str(), BM_conv_w5, d)
      ->ArgNames({"stage", "pass"})->ArgsProduct({{1, 2, 3}, {0, 1, 2}})->UseRealTime();
  benchmark::RegisterBenchmark((p + "/memory_64MiB").c_str(), BM_memory, d)->ArgNames({"relu0_add1_maxpool2_copy3"})
      ->DenseRange(0, 3)->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
  register_all("cpu", Device::cpu());
  if (horo::kernels::cuda::available()) register_all("cuda", Device::cuda(0));
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
