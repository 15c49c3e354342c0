// Collectives and the gradient reducer, run under `mpirun -np 2|3|4` (every rank runs every test).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <functional>

#include "dist/communicator.h"
#include "dist/reducer.h"
#include "kernels/device.h"
#include "nn/models.h"
#include "tests/dist_test_util.h"
#include "tests/test_util.h"

namespace horo::dist {
namespace {

namespace F = nn::functional;
using shared::algorithm_name;
using shared::flat_parameters;
using shared::value_of;
using shared::with_algorithm;
using shared::world;




class CollectiveTest : public ::testing::TestWithParam<Algorithm> {};

TEST_P(CollectiveTest, SumAndAverageMatchTheReferenceForManySizes) {
  auto comm = with_algorithm(GetParam());
  const int n = comm->size();
  for (int64_t count : {int64_t{1}, int64_t{2}, int64_t{7}, int64_t{1000}, int64_t{65537}, (int64_t{1} << 20) + 3,
                        int64_t{3} << 20}) {
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Average}) {
      std::vector<float> data(static_cast<size_t>(count));
      for (int64_t i = 0; i < count; ++i) data[i] = value_of(comm->rank(), i);
      comm->allreduce(data.data(), count, op);
      double worst = 0;
      for (int64_t i = 0; i < count; ++i) {
        double expected = 0;
        for (int r = 0; r < n; ++r) expected += value_of(r, i);
        if (op == ReduceOp::Average) expected /= n;
        worst = std::max(worst, std::fabs(expected - data[i]));
      }
      EXPECT_LT(worst, 1e-5) << "count " << count << " op " << static_cast<int>(op);
    }
  }
}

TEST_P(CollectiveTest, Fp16CompressionStaysWithinHalfPrecision) {
  auto comm = with_algorithm(GetParam());
  const int64_t count = 100003;
  std::vector<float> data(count);
  for (int64_t i = 0; i < count; ++i) data[i] = value_of(comm->rank(), i);
  comm->allreduce(data.data(), count, ReduceOp::Average, Compression::Fp16);
  for (int64_t i = 0; i < count; i += 97) {
    double expected = 0;
    for (int r = 0; r < comm->size(); ++r) expected += value_of(r, i);
    expected /= comm->size();
    EXPECT_NEAR(data[i], expected, 0.01) << i;
  }
}

TEST_P(CollectiveTest, BroadcastFromEveryRootAndAllgather) {
  auto comm = with_algorithm(GetParam());
  for (int root = 0; root < comm->size(); ++root) {
    std::vector<int32_t> data(1001, comm->rank() * 10 + 1);
    comm->broadcast(data.data(), static_cast<int64_t>(data.size() * 4), root);
    for (int32_t v : data) ASSERT_EQ(v, root * 10 + 1);
  }
  const int64_t mine[2] = {comm->rank(), comm->rank() * comm->rank()};
  std::vector<int64_t> all(static_cast<size_t>(2 * comm->size()));
  comm->allgather(mine, sizeof mine, all.data());
  for (int r = 0; r < comm->size(); ++r) {
    EXPECT_EQ(all[2 * r], r);
    EXPECT_EQ(all[2 * r + 1], r * r);
  }
  comm->barrier();
}

// NCCL on GPU buffers against the same reference, where a GPU and NCCL are present.
// This rank's GPU (node-local rank modulo the GPUs), selected before anything touches a GPU: with
// two GPUs on a node two ranks must not both open NCCL on GPU 0.
Device rank_gpu(Communicator& comm) {
  const Device gpu = Device::cuda(comm.local_rank() % kernels::cuda::device_count());
  kernels::cuda::set_device(gpu.index);
  return gpu;
}

std::unique_ptr<Communicator> nccl_on_rank_gpu() {
  auto mpi = make_mpi_communicator(Algorithm::Auto, 120.0);
  rank_gpu(*mpi);
  return make_nccl_communicator(std::move(mpi));
}

TEST_P(CollectiveTest, Fp16AverageOfLargeValuesDoesNotOverflow) {
  auto comm = with_algorithm(GetParam());
  if (comm->size() == 1) GTEST_SKIP() << "needs several ranks";
  // Every rank sends 40,000: the mean fits in half precision (max 65,504) though the sum does not.
  std::vector<float> data(1000, 40000.0f);
  comm->allreduce(data.data(), static_cast<int64_t>(data.size()), ReduceOp::Average, Compression::Fp16);
  for (float v : data) ASSERT_NEAR(v, 40000.0f, 40.0f);
}

TEST(Nccl, SumAndBroadcastOnGpuBuffersMatchTheReference) {
  if (!launched_by_mpi() || !kernels::cuda::available()) GTEST_SKIP() << "needs mpirun and a GPU: NCCL test skipped";
  auto comm = nccl_on_rank_gpu();
  for (int64_t count : {int64_t{1}, int64_t{1000}, (int64_t{1} << 20) + 3}) {
    std::vector<float> host(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) host[i] = value_of(comm->rank(), i);
    Tensor data = Tensor::from_vector(host, {count}).to(rank_gpu(*comm));
    comm->allreduce(data, ReduceOp::Sum);
    const auto got = data.to_vector();
    for (int64_t i = 0; i < count; i += 97) {
      double expected = 0;
      for (int r = 0; r < comm->size(); ++r) expected += value_of(r, i);
      ASSERT_NEAR(got[i], expected, 1e-4) << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Algorithms, CollectiveTest, ::testing::Values(Algorithm::Ring, Algorithm::Mpi), algorithm_name);

// A hierarchical communicator over emulated nodes: HORO_NODE_ID = node_of(rank) on each rank.
std::unique_ptr<Communicator> hierarchical_over(const std::function<int(int rank, int size)>& node_of) {
  Communicator& comm = world();
  ::setenv("HORO_NODE_ID", std::to_string(node_of(comm.rank(), comm.size())).c_str(), 1);
  auto hierarchical = make_mpi_communicator(Algorithm::Hierarchical, 120.0);
  ::unsetenv("HORO_NODE_ID");
  return hierarchical;
}

// Node layouts: pairs of consecutive ranks, ranks dealt round-robin to 2 nodes, and a last rank alone.
const std::vector<std::pair<std::string, std::function<int(int, int)>>>& node_layouts() {
  static const std::vector<std::pair<std::string, std::function<int(int, int)>>> layouts = {
      {"pairs", [](int r, int) { return r / 2; }},
      {"round-robin", [](int r, int) { return r % 2; }},
      {"last alone", [](int r, int n) { return r == n - 1 ? 1 : 0; }}};
  return layouts;
}

TEST(Hierarchical, EqualsTheFlatRingForOddSizesAndEveryNodeLayout) {
  if (!launched_by_mpi()) GTEST_SKIP() << "needs mpirun";
  auto flat = with_algorithm(Algorithm::Ring);
  for (const auto& [layout, node_of] : node_layouts()) {
    auto hierarchical = hierarchical_over(node_of);
    EXPECT_NE(hierarchical->name().find("hierarchical"), std::string::npos) << hierarchical->name();
    for (int64_t count : {int64_t{1}, int64_t{3}, int64_t{1000}, int64_t{65537}, (int64_t{1} << 20) + 3}) {
      for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Average}) {
        std::vector<float> a(static_cast<size_t>(count)), b;
        for (int64_t i = 0; i < count; ++i) a[static_cast<size_t>(i)] = value_of(flat->rank(), i);
        b = a;
        flat->allreduce(a.data(), count, op);
        hierarchical->allreduce(b.data(), count, op);
        double worst = 0;
        for (int64_t i = 0; i < count; ++i) worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - b[i]));
        EXPECT_LT(worst, 1e-5) << layout << ", " << count << " floats, op " << static_cast<int>(op);
      }
    }
    // The other collectives are the flat ones: a broadcast from every root still reaches everyone.
    for (int root = 0; root < hierarchical->size(); ++root) {
      int64_t value = hierarchical->rank() == root ? 1000 + root : -1;
      hierarchical->broadcast(&value, sizeof value, root);
      EXPECT_EQ(value, 1000 + root) << layout << ", root " << root;
    }
  }
}

// A small CNN without dropout, so that a run is deterministic.
std::shared_ptr<nn::Sequential> small_net(uint64_t seed) {
  manual_seed(seed);
  return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Conv2d>(nn::Conv2dOptions{.in = 1, .out = 4, .kernel = 3}), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::MaxPool2d>(nn::Pool2dOptions{.kernel = 2}), std::make_shared<nn::Flatten>(),
      std::make_shared<nn::Linear>(nn::LinearOptions{.in = 4 * 4 * 4, .out = 16}), std::make_shared<nn::Tanh>(),
      std::make_shared<nn::Linear>(nn::LinearOptions{.in = 16, .out = 5})});
}

// The global batch of step s: `rows` samples, the same on every rank.
void global_batch(int64_t step, int64_t rows, Tensor& x, Tensor& y) {
  x = Tensor::normal({rows, 1, 10, 10}, 0.0f, 1.0f, 1000 + static_cast<uint64_t>(step));
  std::vector<int64_t> labels(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) labels[i] = (i * 3 + step) % 5;
  y = Tensor::from_vector(labels, {rows});
}


// Every rank must hold bit-identical parameters: compare with rank 0's.
void expect_identical_across_ranks(Communicator& comm, nn::Module& m) {
  auto mine = flat_parameters(m);
  auto root = mine;
  comm.broadcast(root.data(), static_cast<int64_t>(root.size() * 4), 0);
  EXPECT_EQ(mine, root) << "rank " << comm.rank() << " diverged from rank 0";
}

// N ranks x batch B per step against one process with batch N x B, for `steps` Adam steps; the
// distributed model on `device` (a GPU: through whichever communicator `comm` is).
void run_equivalence(ReducerOptions options, int64_t micro_batches, double tolerance, Communicator& comm = world(),
                     Device device = Device::cpu()) {
  const int n = comm.size();
  const int64_t b = 3;
  auto distributed = small_net(5), single = small_net(5);
  distributed->to(device);
  broadcast_parameters(comm, *distributed);
  optim::Adam opt_d(distributed->parameters(), {.lr = 1e-2f}), opt_s(single->parameters(), {.lr = 1e-2f});
  options.backward_passes_per_step = micro_batches;
  GradientReducer reducer(comm, distributed->named_parameters(), options);
  for (int64_t step = 0; step < 20; ++step) {
    Tensor x, y;
    global_batch(step, n * b * micro_batches, x, y);
    opt_d.zero_grad();
    for (int64_t m = 0; m < micro_batches; ++m) {  // this rank's rows of micro-batch m
      const int64_t begin = (m * n + comm.rank()) * b;
      F::cross_entropy((*distributed)(x.slice(begin, begin + b).clone().to(device)), y.slice(begin, begin + b).clone().to(device))
          .backward();
    }
    reducer.synchronize();
    opt_d.step();
    opt_s.zero_grad();
    F::cross_entropy((*single)(x), y).backward();
    opt_s.step();
    const auto d = flat_parameters(*distributed), s = flat_parameters(*single);
    double worst = 0;
    for (size_t i = 0; i < d.size(); ++i) worst = std::max(worst, std::fabs(static_cast<double>(d[i]) - s[i]));
    ASSERT_LT(worst, tolerance) << "step " << step;
    expect_identical_across_ranks(comm, *distributed);
  }
}

TEST(Reducer, RanksTimesBatchEqualsOneProcessWithTheWholeBatch) { run_equivalence({}, 1, 2e-5); }

TEST(Reducer, FusionOffGivesTheSameResult) { run_equivalence({.fusion_bytes = 0}, 1, 2e-5); }

TEST(Reducer, TinyFusionBucketsGiveTheSameResult) { run_equivalence({.fusion_bytes = 300}, 1, 2e-5); }

TEST(Reducer, AccumulationOverKPassesEqualsOneStepWithKTimesTheBatch) { run_equivalence({}, 3, 2e-5); }

// Adam normalises each step, so fp16 rounding of tiny gradients can move a weight by up to 2 lr a step;
// the collective test above bounds the rounding itself.
TEST(Reducer, Fp16CompressionStaysClose) { run_equivalence({.compression = Compression::Fp16}, 1, 0.05); }

// GPU parameters through every backend: ring and MPI stage buckets through pinned host memory, NCCL
// takes them as they are; all equal one process with the whole batch (on the CPU).
TEST(Reducer, GpuGradientsThroughEveryBackendEqualOneProcess) {
  if (!kernels::cuda::available()) GTEST_SKIP() << "no CUDA device visible: GPU reducer test skipped";
  for (Algorithm algorithm : {Algorithm::Ring, Algorithm::Mpi}) {
    auto comm = with_algorithm(algorithm);
    const Device gpu = rank_gpu(*comm);
    run_equivalence({}, 1, 1e-4, *comm, gpu);
  }
  if (!launched_by_mpi()) return;
  auto nccl = nccl_on_rank_gpu();
  run_equivalence({}, 1, 1e-4, *nccl, rank_gpu(*nccl));
  run_equivalence({.fusion_bytes = 300}, 2, 1e-4, *nccl, rank_gpu(*nccl));
}

// Data-parallel training through the hierarchical allreduce equals one process with the whole batch.
TEST(Reducer, HierarchicalAllreduceEqualsOneProcess) {
  if (!launched_by_mpi()) GTEST_SKIP() << "needs mpirun";
  for (const auto& [layout, node_of] : node_layouts()) {
    SCOPED_TRACE(layout);
    auto hierarchical = hierarchical_over(node_of);
    run_equivalence({.fusion_bytes = 300}, 1, 2e-5, *hierarchical);
  }
}

// What a backend cannot take is refused, saying why: fp16 with NCCL at construction, GPU memory
// through MPI's raw-pointer calls.
TEST(Reducer, UnsupportedCombinationsAreRefusedClearly) {
  if (!launched_by_mpi() || !kernels::cuda::available()) GTEST_SKIP() << "needs mpirun and a GPU";
  auto nccl = nccl_on_rank_gpu();
  auto net = small_net(5);
  net->to(rank_gpu(*nccl));
  testing::expect_error<ValueError>([&] { GradientReducer r(*nccl, net->named_parameters(), {.compression = Compression::Fp16}); },
                                    {"fp16 compression is not supported with NCCL"});
  auto mpi = with_algorithm(Algorithm::Mpi);
  Tensor on_gpu = Tensor::zeros({16}, DType::Float32, rank_gpu(*mpi));
  testing::expect_error<TypeError>([&] { mpi->allreduce(on_gpu.data<float>(), 16, ReduceOp::Sum); },
                                   {"GPU memory", "Tensor overloads"});
  mpi->allreduce(on_gpu, ReduceOp::Sum);  // the Tensor overload stages it
}

TEST(Reducer, UnusedAndFrozenParametersNeitherHangNorMove) {
  Communicator& comm = world();
  auto net = small_net(8);
  broadcast_parameters(comm, *net);
  Tensor extra = Tensor::uniform({4}, -1, 1, 3).set_requires_grad(true);  // used on rank 0 only
  Tensor frozen = net->parameter("0.bias");
  frozen.set_requires_grad(false);
  auto named = net->named_parameters();
  named.emplace_back("extra", extra);
  GradientReducer reducer(comm, named, {.fusion_bytes = 0});
  for (const auto& bucket : reducer.buckets())
    for (const auto& name : bucket) EXPECT_NE(name, "0.bias");
  Tensor x, y;
  global_batch(0, 4, x, y);
  Tensor loss = F::cross_entropy((*net)(x), y);
  if (comm.rank() == 0) loss = loss + F::sum(extra * extra);
  loss.backward();
  const auto before = extra.to_vector();
  reducer.synchronize();  // must not hang although only rank 0 produced extra's gradient
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(extra.grad().to_vector()[i], 2 * before[i] / comm.size(), 1e-6);
  EXPECT_FALSE(frozen.grad().defined());
}

TEST(Reducer, AMismatchedModelFailsOnEveryRankNamingTheTensor) {
  Communicator& comm = world();
  if (comm.size() == 1) GTEST_SKIP() << "needs several ranks";
  manual_seed(1);
  nn::Linear layer({.in = 4, .out = comm.rank() == 1 ? 6 : 5});
  testing::expect_error<ValueError>([&] { GradientReducer reducer(comm, layer.named_parameters()); },
                                    {"differ between ranks", "ranks 1 do not match rank 0"});
  if (comm.rank() == 1) {
    testing::expect_error<ValueError>([&] { GradientReducer reducer(comm, layer.named_parameters()); },
                                      {"rank 0 has weight [5, 4] float32, this rank has weight [6, 4] float32"});
  } else {
    EXPECT_THROW(GradientReducer(comm, layer.named_parameters()), ValueError);
  }
}

}  // namespace
}  // namespace horo::dist
