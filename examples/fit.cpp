// The custom model trained by horo::training::Trainer, the session horo-train runs on: broadcast of
// rank 0's weights, gradient averaging, checkpoints, resume, clean stops on SIGTERM, logs.
//   mpirun -np 2 fit [DIR]      (one process without mpirun works too)
// The first fit() stops at step 30, as a job whose time ran out; the second resumes from the newest
// checkpoint and finishes the three epochs. A custom loss (label smoothing) and evaluation are callbacks.
#include <cstdio>
#include <string>

#include "residual_net.h"
#include "train/trainer.h"

int main(int argc, char** argv) {
  auto comm = horo::dist::make_communicator();
  const int rank = comm->rank();
  try {
    const std::string dir = argc > 1 ? argv[1] : ".";
    const std::string path = dir + "/quadrants-fit.h5";
    if (rank == 0) write_quadrant_dataset(path, 2048, 7);
    comm->barrier();
    std::vector<float> held_out_images;
    std::vector<int64_t> held_out_labels;
    quadrant_images(512, 3'000'000, held_out_images, held_out_labels);
    const horo::Tensor held_out = horo::Tensor::from_vector(held_out_images, {512, 1, 16, 16});

    auto session = [&](int64_t max_steps) {
      horo::manual_seed(1);
      ResidualNet model(4);
      horo::optim::Adam adam(model.parameters(), {.lr = 3e-3f});
      horo::training::TrainerOptions options;
      options.epochs = 3;
      options.batch = 32;
      options.max_steps = max_steps;
      options.checkpoint_dir = dir + "/fit-checkpoints";
      options.checkpoint_every = 20;
      options.log_dir = dir + "/fit-logs";  // metrics.csv, metrics.jsonl, report.html
      horo::training::Trainer trainer(model, adam, *comm, options);

      horo::data::ReaderOptions data;  // this rank's shard of each epoch's order, prefetched
      data.path = path;
      data.batch = options.batch;
      data.rank = rank;
      data.world = comm->size();
      data.seed = options.seed;
      data.num_epochs = options.epochs;
      if (auto latest = horo::training::Trainer::latest_checkpoint(options.checkpoint_dir)) {
        trainer.resume(*latest, latest->state.epoch, latest->state.batch_in_epoch);
        data.start_epoch = latest->state.epoch;
        data.start_batch = latest->state.batch_in_epoch;
        if (rank == 0) std::printf("resuming from %s (step %lld)\n", latest->path.c_str(), static_cast<long long>(latest->state.step));
      }
      horo::training::ReaderSource batches(data);
      horo::training::TrainCallbacks callbacks;
      callbacks.loss = [](const horo::Tensor& logits, const horo::Tensor& labels) {
        return F::cross_entropy(logits, labels, {.label_smoothing = 0.1f});
      };
      callbacks.evaluate = [&] {
        horo::autograd::NoGradGuard no_grad;
        model.eval();
        return accuracy(model(held_out), held_out_labels);
      };
      return trainer.fit(batches, callbacks);
    };
    const auto first = session(30);
    const auto second = session(-1);
    if (rank == 0) {
      std::printf("first run: stopped at step %lld; second: resumed at step %lld, ended at step %lld; held-out accuracy %.3f\n",
                  static_cast<long long>(first.step), static_cast<long long>(second.start_step),
                  static_cast<long long>(second.step), second.test_accuracy);
    }
    return first.step == 30 && second.start_step == 30 && second.test_accuracy >= 0.9 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fit (rank %d): %s\n", rank, e.what());
    horo::dist::abort_job(1);
  }
}
