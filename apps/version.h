// `--version` for the horo programs: the release, and what this binary can run on this machine
// (the CPU kernels' SIMD target and the ones the CPU has; CUDA devices and cuDNN).
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace horo::apps {

std::string version_text(const std::string& program);
void add_version_flag(CLI::App& app, const std::string& program);

}  // namespace horo::apps
