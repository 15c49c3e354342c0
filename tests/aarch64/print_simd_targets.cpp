// Prints the SIMD targets this CPU (or emulator) can run, best first, one line: "sve neon scalar".
#include <cstdio>

#include "kernels/simd_target.h"

int main() {
  for (const auto& target : horo::kernels::simd_targets()) std::printf("%s ", target.c_str());
  std::printf("\n");
}
