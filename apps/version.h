// `--version` for the horo programs: the release, and what this binary can run on this machine
// (the CPU kernels' SIMD target and the ones the CPU has; CUDA devices and cuDNN).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

namespace horo::apps {

std::string version_text(const std::string& program);
// What a run record keeps of this build and machine: horo_version, git_commit (of the source tree
// when it was configured), host, cpu, simd, gemm, gpu.
std::vector<std::pair<std::string, std::string>> run_environment();
void add_version_flag(CLI::App& app, const std::string& program);

}  // namespace horo::apps
