// The custom model's training loop, data-parallel as Horovod does it:
//   mpirun -np 2 distributed [DIR]      (one process without mpirun works too)
// Rank 0 writes the dataset (DIR/quadrants.h5, horo's HDF5 layout); every rank reads its own shard of
// each epoch's shuffled order, starts from rank 0's weights, and averages gradients with the
// communicator's allreduce, bucket by bucket while backward runs.
#include <cstdio>
#include <string>

#include "data/reader.h"
#include "dist/communicator.h"
#include "dist/reducer.h"
#include "residual_net.h"

int main(int argc, char** argv) {
  auto comm = horo::dist::make_communicator();  // mpirun: MPI (ring allreduce); alone: one process
  const int rank = comm->rank(), ranks = comm->size();
  try {
    const std::string path = std::string(argc > 1 ? argv[1] : ".") + "/quadrants.h5";
    if (rank == 0) write_quadrant_dataset(path, 2048, 7);
    comm->barrier();  // the file exists for everyone

    horo::manual_seed(static_cast<uint64_t>(rank));  // different on purpose: the broadcast makes them equal
    ResidualNet model(4);
    horo::dist::broadcast_parameters(*comm, model);
    horo::optim::Adam optimizer(model.parameters(), {.lr = 3e-3f});
    horo::dist::GradientReducer reducer(*comm, model.named_parameters());
    horo::data::ReaderOptions options;  // this rank's shard of each epoch's order, prefetched
    options.path = path;
    options.batch = 32;
    options.rank = rank;
    options.world = ranks;
    options.seed = 1;
    options.num_epochs = 3;
    horo::data::Reader reader(options);
    int64_t step = 0;
    while (auto batch = reader.next()) {
      const horo::Tensor loss = F::cross_entropy(model(batch->data), batch->labels);
      optimizer.zero_grad();
      loss.backward();
      reducer.synchronize();  // every rank now holds the average gradient
      optimizer.step();
      float mean_loss = loss.item();
      comm->allreduce(&mean_loss, 1, horo::dist::ReduceOp::Average);
      if (++step % 20 == 0 && rank == 0) {
        std::printf("epoch %lld step %lld loss %.4f (%d ranks x batch 32)\n", static_cast<long long>(batch->epoch + 1),
                    static_cast<long long>(step), mean_loss, ranks);
      }
    }
    // Every rank ends with the same weights: compare a checksum of them.
    float checksum = 0;
    for (const auto& p : model.parameters()) {
      for (float v : p.to_vector()) checksum += v;
    }
    std::vector<float> all(static_cast<size_t>(ranks));
    comm->allgather(&checksum, sizeof checksum, all.data());
    bool same = true;
    for (float c : all) same = same && c == all[0];
    model.eval();
    std::vector<float> images;
    std::vector<int64_t> labels;
    quadrant_images(512, 3'000'000, images, labels);
    const double held_out = accuracy(model(horo::Tensor::from_vector(images, {512, 1, 16, 16})), labels);
    if (rank == 0) {
      std::printf("%lld steps on %d ranks; held-out accuracy %.3f; weights identical on every rank: %s\n",
                  static_cast<long long>(step), ranks, held_out, same ? "yes" : "NO");
    }
    return same && held_out >= 0.9 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "distributed (rank %d): %s\n", rank, e.what());
    horo::dist::abort_job(1);  // the other ranks may wait for this one in a collective
  }
}
