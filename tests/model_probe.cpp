// A test helper for the PyTorch parity checks (tests/torch_parity.py): runs a checkpoint's model on
// inputs from an HDF5 file and writes what it computed, so Python can compare it with torch.
//   model_probe CHECKPOINT IN.h5 OUT.h5 [--train]
// IN.h5 holds /x0, /x1, ... (float32 inputs, one per step) and optionally /g0, /g1, ... (gradients of
// the outputs). For each step k the model runs forward (train mode with --train, else eval) and
// writes /y<k>; with /g<k> it runs backward and writes /dx<k> and /grad<k>/<parameter>. After the
// last step it writes the buffers under /buffers (running statistics after the steps).
#include <cstdio>
#include <cstring>
#include <string>

#include "nn/checkpoint.h"
#include "nn/spec.h"
#include "tensor/hdf5.h"

namespace {
std::string numbered(const char* prefix, int k) {
  std::string name = prefix;
  name += std::to_string(k);
  return name;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: model_probe CHECKPOINT IN.h5 OUT.h5 [--train]\n");
    return 2;
  }
  const bool train = argc > 4 && std::strcmp(argv[4], "--train") == 0;
  try {
    namespace h5 = horo::h5;
    const auto checkpoint = horo::nn::read_checkpoint(argv[1]);
    auto built = horo::nn::build_model_from_text(checkpoint.model_spec, std::string(argv[1]) + ":model_spec");
    horo::nn::load_model(*built.model, checkpoint, true);
    built.model->train(train);
    h5::Handle in = h5::open_file(argv[2]);
    h5::Handle out = h5::create_file(argv[3]);
    for (int k = 0;; ++k) {
      const std::string x_name = numbered("x", k), g_name = numbered("g", k);
      if (!h5::has_dataset(in.get(), x_name)) break;
      horo::Tensor x = h5::read_tensor(in.get(), x_name, argv[2]);
      const bool backward = h5::has_dataset(in.get(), g_name);
      x.set_requires_grad(backward);
      built.model->zero_grad();
      const horo::Tensor y = built.model->forward(x);
      h5::write_tensor(out.get(), numbered("y", k), y.detach(), argv[3]);
      if (!backward) continue;
      y.backward(h5::read_tensor(in.get(), g_name, argv[2]));
      h5::write_tensor(out.get(), numbered("dx", k), x.grad(), argv[3]);
      h5::Handle grads = h5::create_group(out.get(), numbered("grad", k), argv[3]);
      for (const auto& [name, p] : built.model->named_parameters()) {
        if (p.grad().defined()) h5::write_tensor(grads.get(), name, p.grad(), argv[3]);
      }
    }
    h5::Handle buffers = h5::create_group(out.get(), "buffers", argv[3]);
    for (const auto& [name, b] : built.model->named_buffers()) h5::write_tensor(buffers.get(), name, b, argv[3]);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "model_probe: error: %s\n", e.what());
    return 1;
  }
}
