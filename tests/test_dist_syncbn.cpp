// SyncBatchNorm under `mpirun -np 2|3`: N ranks holding slices of a batch compute what one process
// computes with the whole batch (outputs, gradients, running statistics), equal slices or not; plain
// BatchNorm under mpirun does not, which is why SyncBatchNorm exists. Run alone it checks that a
// SyncBatchNorm over one process is plain BatchNorm.
#include <gtest/gtest.h>

#include "dist/communicator.h"
#include "dist/reducer.h"
#include "dist/sync_batch_norm.h"
#include "nn/optim.h"
#include "nn/spec.h"
#include "tests/test_util.h"

namespace horo::dist {
namespace {

namespace F = nn::functional;
using horo::testing::normalized_error;

Communicator& world() {
  static std::unique_ptr<Communicator> comm = make_communicator();
  return *comm;
}

// A residual block with BatchNorm in both branches, then global pooling and a head.
std::shared_ptr<nn::Module> bn_net(uint64_t seed) {
  manual_seed(seed);
  return nn::build_model_from_text(R"(input_shape: [2, 6, 6]
layers { name: "conv" conv2d { in: 2 out: 4 kernel: 3 padding: 1 bias: false } }
layers { name: "bn" batch_norm2d {} }
layers { name: "relu" relu {} }
layers {
  name: "block"
  sequential {
    layers { name: "conv" conv2d { in: 4 out: 4 kernel: 3 padding: 1 bias: false } }
    layers { name: "bn" batch_norm2d {} }
    layers { name: "short" inputs: "input" sequential { layers { conv2d { in: 4 out: 4 kernel: 1 bias: false } } layers { batch_norm2d {} } } }
    layers { name: "add" inputs: ["bn", "short"] add {} }
    layers { name: "relu" relu {} }
  }
}
layers { name: "pool" adaptive_avg_pool2d {} }
layers { name: "flat" flatten {} }
layers { name: "fc" linear { in: 4 out: 3 } }
)", "bn_net").model;
}

Tensor global_input(int64_t step, int64_t rows) { return Tensor::normal({rows, 2, 6, 6}, 0.5f, 2.0f, 500 + static_cast<uint64_t>(step)); }

Tensor global_labels(int64_t step, int64_t rows) {
  std::vector<int64_t> labels(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) labels[i] = (i + step) % 3;
  return Tensor::from_vector(labels, {rows});
}

std::vector<float> flat(const std::vector<std::pair<std::string, Tensor>>& named, bool grads) {
  std::vector<float> out;
  for (const auto& [name, t] : named) {
    if (t.dtype() != DType::Float32) continue;
    const auto v = grads ? t.grad().to_vector() : t.to_vector();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

// Equal slices: N ranks x 3 samples against one process with 3N, for several SGD steps.
TEST(SyncBatchNorm, RanksTimesBatchEqualsOneProcessWithTheWholeBatch) {
  Communicator& comm = world();
  const int n = comm.size();
  const int64_t b = 3;
  auto distributed = bn_net(7), single = bn_net(7);
  EXPECT_EQ(convert_sync_batchnorm(*distributed, comm), 3);
  EXPECT_EQ(distributed->submodule("block.short.1")->type_name(), "SyncBatchNorm");
  broadcast_parameters(comm, *distributed);
  optim::SGD opt_d(distributed->parameters(), {.lr = 0.1f, .momentum = 0.9f}), opt_s(single->parameters(), {.lr = 0.1f, .momentum = 0.9f});
  GradientReducer reducer(comm, distributed->named_parameters());
  for (int64_t step = 0; step < 5; ++step) {
    const Tensor x = global_input(step, n * b), y = global_labels(step, n * b);
    const int64_t begin = comm.rank() * b;
    opt_d.zero_grad();
    const Tensor out_d = (*distributed)(x.slice(begin, begin + b).clone());
    F::cross_entropy(out_d, y.slice(begin, begin + b).clone()).backward();
    reducer.synchronize();
    opt_d.step();
    opt_s.zero_grad();
    const Tensor out_s = (*single)(x);
    F::cross_entropy(out_s, y).backward();
    opt_s.step();
    EXPECT_LT(normalized_error(out_d.to_vector(), out_s.slice(begin, begin + b).to_vector()), 1e-5) << "step " << step;
    EXPECT_LT(normalized_error(flat(distributed->named_parameters(), false), flat(single->named_parameters(), false)), 1e-5)
        << "parameters after step " << step;
    EXPECT_LT(normalized_error(flat(distributed->named_buffers(), false), flat(single->named_buffers(), false)), 1e-5)
        << "running statistics after step " << step;
  }
  const auto counts = distributed->named_buffers();
  EXPECT_EQ(distributed->parameter("bn.weight").shape(), (Shape{4}));
  for (const auto& [name, t] : counts) {
    if (t.dtype() == DType::Int64) {
      EXPECT_EQ(t.data<int64_t>()[0], 5) << name;
    }
  }
  // Evaluation uses the (identical) running statistics: no communication, the same outputs.
  distributed->eval();
  single->eval();
  const Tensor probe = global_input(99, 2);
  EXPECT_LT(normalized_error((*distributed)(probe).to_vector(), (*single)(probe).to_vector()), 1e-5);
}

// Unequal slices (rank r holds 2 + r samples): with a summed loss every rank's input gradient is
// the whole batch's, and the parameter gradients summed over ranks are the whole batch's.
TEST(SyncBatchNorm, UnequalBatchesPerRank) {
  Communicator& comm = world();
  const int n = comm.size();
  auto distributed = bn_net(9), single = bn_net(9);
  convert_sync_batchnorm(*distributed, comm);
  int64_t total = 0, begin = 0;
  for (int r = 0; r < n; ++r) {
    if (r == comm.rank()) begin = total;
    total += 2 + r;
  }
  const int64_t mine = 2 + comm.rank();
  GradientReducer reducer(comm, distributed->named_parameters());
  for (int64_t step = 0; step < 2; ++step) {
    const Tensor x = global_input(step, total);
    const Tensor weights = Tensor::normal({total, 3}, 0.0f, 1.0f, 77 + static_cast<uint64_t>(step));
    Tensor x_d = x.slice(begin, begin + mine).clone(), x_s = x.clone();
    x_d.set_requires_grad(true);
    x_s.set_requires_grad(true);
    distributed->zero_grad();
    single->zero_grad();
    const Tensor out_d = (*distributed)(x_d);
    F::sum(out_d * weights.slice(begin, begin + mine).clone()).backward();
    reducer.synchronize();  // the average over ranks
    const Tensor out_s = (*single)(x_s);
    F::sum(out_s * weights).backward();
    EXPECT_LT(normalized_error(out_d.to_vector(), out_s.slice(begin, begin + mine).to_vector()), 1e-5);
    EXPECT_LT(normalized_error(x_d.grad().to_vector(), x_s.grad().slice(begin, begin + mine).to_vector()), 1e-5);
    auto summed = flat(distributed->named_parameters(), true);
    for (float& g : summed) g *= static_cast<float>(n);
    EXPECT_LT(normalized_error(summed, flat(single->named_parameters(), true)), 1e-5);
    EXPECT_LT(normalized_error(flat(distributed->named_buffers(), false), flat(single->named_buffers(), false)), 1e-5);
  }
}

// Plain BatchNorm normalises each rank's slice by its own statistics: outputs and running statistics
// drift from the single-process run as soon as there are several ranks.
TEST(SyncBatchNorm, PlainBatchNormUnderMpirunDiffers) {
  Communicator& comm = world();
  if (comm.size() == 1) GTEST_SKIP() << "needs several ranks (mpirun -np 2 or more)";
  const int64_t b = 3;
  auto local = bn_net(7), single = bn_net(7);
  const Tensor x = global_input(0, comm.size() * b);
  const int64_t begin = comm.rank() * b;
  const Tensor out_local = (*local)(x.slice(begin, begin + b).clone());
  const Tensor out_single = (*single)(x);
  EXPECT_GT(normalized_error(out_local.to_vector(), out_single.slice(begin, begin + b).to_vector()), 1e-2);
  EXPECT_GT(normalized_error(flat(local->named_buffers(), false), flat(single->named_buffers(), false)), 1e-3);
}

}  // namespace
}  // namespace horo::dist
