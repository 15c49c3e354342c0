// Command line shared by the training-throughput benchmark and its libtorch peer, so both measure
// the same thing: --model cnn|mlp|resnet20 --batch B --threads T --steps S --warmup W [--device cpu|cuda]
// [--inference] (eval mode, no gradients, forward passes only: prints the median latency per batch).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

struct TrainBenchArgs {
  std::string model = "cnn", device = "cpu";
  long batch = 64, threads = 1, steps = 50, warmup = 5;
  bool inference = false;
};

// Times `steps` calls of step() after `warmup` untimed ones: total seconds and the median call in ms.
template <typename Step>
std::pair<double, double> time_steps(const TrainBenchArgs& a, const Step& step) {
  for (long i = 0; i < a.warmup; ++i) step();
  std::vector<double> each;
  const auto start = std::chrono::steady_clock::now();
  auto last = start;
  for (long i = 0; i < a.steps; ++i) {
    step();
    const auto now = std::chrono::steady_clock::now();
    each.push_back(std::chrono::duration<double, std::milli>(now - last).count());
    last = now;
  }
  std::sort(each.begin(), each.end());
  return {std::chrono::duration<double>(last - start).count(), each.empty() ? 0.0 : each[each.size() / 2]};
}

inline TrainBenchArgs parse_train_bench_args(int argc, char** argv) {
  TrainBenchArgs a;
  for (int i = 1; i < argc; ++i) {
    const char* key = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    auto number = [&](long& out) {
      if (!value) { std::fprintf(stderr, "%s: missing value\n", key); std::exit(2); }
      out = std::strtol(value, nullptr, 10);
      ++i;
    };
    if (!std::strcmp(key, "--inference")) a.inference = true;
    else if (!std::strcmp(key, "--model") && value) { a.model = value; ++i; }
    else if (!std::strcmp(key, "--device") && value) { a.device = value; ++i; }
    else if (!std::strcmp(key, "--batch")) number(a.batch);
    else if (!std::strcmp(key, "--threads")) number(a.threads);
    else if (!std::strcmp(key, "--steps")) number(a.steps);
    else if (!std::strcmp(key, "--warmup")) number(a.warmup);
    else { std::fprintf(stderr, "unknown argument %s (expected --model --batch --threads --steps --warmup --device --inference)\n", key); std::exit(2); }
  }
  if (a.model != "cnn" && a.model != "mlp" && a.model != "resnet20") {
    std::fprintf(stderr, "--model: expected cnn, mlp or resnet20\n");
    std::exit(2);
  }
  return a;
}
