#include "apps/version.h"

#include <unistd.h>

#include "kernels/device.h"
#include "kernels/error.h"
#include "kernels/gemm.h"
#include "kernels/simd_target.h"

namespace horo::apps {

std::string version_text(const std::string& program) {
  std::string targets, chosen, gemm;
  for (const std::string& t : kernels::simd_targets()) targets += (targets.empty() ? "" : " ") + t;
  try {
    chosen = kernels::simd_target();
    gemm = kernels::cpu::gemm_backend();
  } catch (const Error& e) {  // a bad HORO_SIMD: --version still answers, and says so
    chosen = std::string("none (") + e.what() + ")";
  }
  std::string gpus = "no CUDA device";
  if (kernels::cuda::available()) {
    gpus = detail::concat(kernels::cuda::device_count(), " CUDA device(s), cuDNN ",
                          kernels::cuda::cudnn_available() ? "on" : "off");
  }
  return detail::concat(program, " ", HORO_VERSION_STRING, "\n",
                        "CPU: ", kernels::cpu_description(), "\n",
                        "SIMD: ", chosen, " (this CPU can run: ", targets, "; HORO_SIMD chooses)\n",
                        "GEMM: ", gemm, "\n",
                        "GPU: ", gpus);
}

std::vector<std::pair<std::string, std::string>> run_environment() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  std::string simd, gemm;
  try {
    simd = kernels::simd_target();
    gemm = kernels::cpu::gemm_backend();
  } catch (const Error& e) {
    simd = e.what();
  }
  std::string gpu = "none";
  if (kernels::cuda::available()) gpu = detail::concat(kernels::cuda::device_count(), " CUDA device(s)");
  return {{"horo_version", HORO_VERSION_STRING}, {"git_commit", HORO_GIT_COMMIT}, {"host", host},
          {"cpu", kernels::cpu_description()}, {"simd", simd}, {"gemm", gemm}, {"gpu", gpu}};
}

void add_version_flag(CLI::App& app, const std::string& program) {
  app.set_version_flag("--version", [program] { return version_text(program); }, "print the version and SIMD target, then exit");
}

}  // namespace horo::apps
