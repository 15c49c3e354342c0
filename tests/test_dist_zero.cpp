// ZeRO-1 (sharded optimizer state) and the collectives under it, run under `mpirun -np 2|3|4` (every
// rank runs every test) and as one process.
#include <gtest/gtest.h>

#include <cmath>

#include "dist/communicator.h"
#include "dist/reducer.h"
#include "dist/sharded_optimizer.h"
#include "nn/checkpoint.h"
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





class ShardCollectiveTest : public ::testing::TestWithParam<Algorithm> {};

TEST_P(ShardCollectiveTest, ReduceScatterLeavesEachRankTheSumOfItsBlock) {
  auto comm = with_algorithm(GetParam());
  const int n = comm->size(), rank = comm->rank();
  // Odd sizes, one element, empty blocks, and blocks past the ring's 1 MiB chunk.
  for (int64_t each : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{1000}, (int64_t{1} << 18) + 3}) {
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Average}) {
      std::vector<float> data(static_cast<size_t>(each * n));
      for (int64_t i = 0; i < each * n; ++i) data[static_cast<size_t>(i)] = value_of(rank, i);
      comm->reduce_scatter(data.data(), each, op);
      double worst = 0;
      for (int64_t i = rank * each; i < (rank + 1) * each; ++i) {
        double expected = 0;
        for (int r = 0; r < n; ++r) expected += value_of(r, i);
        if (op == ReduceOp::Average) expected /= n;
        worst = std::max(worst, std::fabs(expected - data[static_cast<size_t>(i)]));
      }
      EXPECT_LT(worst, 1e-5) << each << " floats per rank, op " << static_cast<int>(op);
    }
  }
}

TEST_P(ShardCollectiveTest, AllgatherInPlaceGivesEveryRankEveryBlock) {
  auto comm = with_algorithm(GetParam());
  const int n = comm->size();
  for (int64_t each : {int64_t{1}, int64_t{13}, int64_t{100003}}) {
    Tensor blocks = Tensor::full({each * n}, -1.0f);
    float* data = blocks.data<float>();
    for (int64_t i = comm->rank() * each; i < (comm->rank() + 1) * each; ++i) data[i] = value_of(0, i);
    comm->allgather_in_place(blocks);
    for (int64_t i = 0; i < each * n; ++i) ASSERT_EQ(data[i], value_of(0, i)) << "element " << i << " of " << each * n;
  }
}

INSTANTIATE_TEST_SUITE_P(Algorithms, ShardCollectiveTest, ::testing::Values(Algorithm::Ring, Algorithm::Mpi), algorithm_name);

// A small CNN without dropout (deterministic), with parameters of 4 to 1,024 elements, so that some
// pieces are empty on 3 and 4 ranks.
std::shared_ptr<nn::Sequential> small_net(uint64_t seed) {
  manual_seed(seed);
  return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Conv2d>(nn::Conv2dOptions{.in = 1, .out = 4, .kernel = 3}), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::MaxPool2d>(nn::Pool2dOptions{.kernel = 2}), std::make_shared<nn::Flatten>(),
      std::make_shared<nn::Linear>(nn::LinearOptions{.in = 4 * 4 * 4, .out = 16}), std::make_shared<nn::Tanh>(),
      std::make_shared<nn::Linear>(nn::LinearOptions{.in = 16, .out = 3})});
}

// This rank's rows of step s's global batch (every rank computes the same global batch).
void rank_batch(const Communicator& comm, int64_t step, Tensor& x, Tensor& y) {
  const int64_t per_rank = 3, rows = per_rank * comm.size();
  Tensor gx = Tensor::normal({rows, 1, 10, 10}, 0.0f, 1.0f, 1000 + static_cast<uint64_t>(step));
  std::vector<int64_t> labels(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) labels[static_cast<size_t>(i)] = (i * 7 + step) % 3;
  const int64_t begin = comm.rank() * per_rank;
  x = gx.slice(begin, begin + per_rank).clone();
  y = Tensor::from_vector(labels, {rows}).slice(begin, begin + per_rank).clone();
}


void train_steps(Communicator& comm, nn::Module& net, optim::Optimizer& optimizer, GradientReducer& reducer, int64_t first, int64_t steps) {
  for (int64_t step = first; step < first + steps; ++step) {
    Tensor x, y;
    rank_batch(comm, step, x, y);
    optimizer.zero_grad();
    F::cross_entropy(net(x), y).backward();
    reducer.synchronize();
    optimizer.step();
  }
}

// Two parameter groups (the last layer at 3x the rate), so that per-group learning rates are exercised.
std::vector<optim::ParamGroup> two_groups(nn::Module& net, float lr) {
  std::vector<Tensor> body, head;
  for (const auto& [name, p] : net.named_parameters()) (name.rfind("6.", 0) == 0 ? head : body).push_back(p);
  return {{body, lr}, {head, 3 * lr}};
}

std::unique_ptr<optim::Optimizer> make_optimizer(const std::string& kind, nn::Module& net) {
  if (kind == "adam") return std::make_unique<optim::Adam>(two_groups(net, 1e-2f), optim::AdamOptions{.lr = 1e-2f});
  if (kind == "adamw") return std::make_unique<optim::AdamW>(net.parameters(), optim::AdamOptions{.lr = 1e-2f, .weight_decay = 0.1f, .decoupled_weight_decay = true});
  return std::make_unique<optim::SGD>(two_groups(net, 0.05f),
                                      optim::SgdOptions{.lr = 0.05f, .momentum = 0.9f, .weight_decay = 1e-3f, .nesterov = true});
}

struct ZeroCase {
  Algorithm algorithm;
  std::string optimizer;
  int64_t fusion_bytes;
};

class ZeroTest : public ::testing::TestWithParam<ZeroCase> {};

// The sharded run against the unsharded one, both data-parallel over the same ranks and batches:
// 20 steps, equal to 1e-6 of the largest parameter, identical on every rank; and each rank holds
// about 1/N of the unsharded optimizer state.
TEST_P(ZeroTest, ShardedEqualsUnshardedAfterTwentySteps) {
  const ZeroCase c = GetParam();
  auto comm = with_algorithm(c.algorithm);
  const int n = comm->size();
  auto plain_net = small_net(11), zero_net = small_net(11);
  auto plain_opt = make_optimizer(c.optimizer, *plain_net);
  GradientReducer plain_reducer(*comm, plain_net->named_parameters(), {.fusion_bytes = c.fusion_bytes});
  auto prototype = make_optimizer(c.optimizer, *zero_net);
  GradientReducer zero_reducer(*comm, zero_net->named_parameters(), {.fusion_bytes = c.fusion_bytes, .shard_gradients = true});
  ShardedOptimizer zero_opt(*comm, zero_reducer, *prototype);
  EXPECT_EQ(zero_opt.type_name(), plain_opt->type_name());
  for (int64_t step = 0; step < 20; ++step) {
    train_steps(*comm, *plain_net, *plain_opt, plain_reducer, step, 1);
    train_steps(*comm, *zero_net, zero_opt, zero_reducer, step, 1);
    const double error = testing::normalized_error(flat_parameters(*zero_net), flat_parameters(*plain_net));
    ASSERT_LE(error, 1e-6) << "step " << step << " on rank " << comm->rank();
  }
  auto mine = flat_parameters(*zero_net), root = mine;
  comm->broadcast(root.data(), static_cast<int64_t>(root.size() * sizeof(float)), 0);
  EXPECT_EQ(mine, root) << "rank " << comm->rank() << " differs from rank 0";

  const int64_t plain_bytes = optimizer_state_bytes(*plain_opt, *plain_net);
  const int64_t zero_bytes = optimizer_state_bytes(zero_opt, *zero_net);
  // Per parameter and state, at most ceil(numel / N) elements, plus Adam's 8-byte step count.
  int64_t bound = 0;
  const int64_t per_element = c.optimizer == "sgd" ? 4 : 8;
  for (const auto& p : zero_net->parameters()) bound += (p.numel() + n - 1) / n * per_element + 8;
  EXPECT_LE(zero_bytes, bound) << "plain " << plain_bytes << " bytes";
  float total = static_cast<float>(zero_bytes);
  comm->allreduce(&total, 1, ReduceOp::Sum);
  EXPECT_GE(static_cast<int64_t>(total), plain_bytes - 8 * static_cast<int64_t>(zero_net->parameters().size()));
  if (n > 1) {
    EXPECT_LT(zero_bytes, plain_bytes);
  }
}

std::string zero_case_name(const ::testing::TestParamInfo<ZeroCase>& p) {
  const int64_t fusion = p.param.fusion_bytes;
  return algorithm_name({p.param.algorithm, 0}) + "_" + p.param.optimizer + "_" + (fusion < 0 ? std::string("defaultbuckets") : "buckets" + std::to_string(fusion));
}

INSTANTIATE_TEST_SUITE_P(Cases, ZeroTest,
                         ::testing::Values(ZeroCase{Algorithm::Ring, "adam", -1}, ZeroCase{Algorithm::Mpi, "adam", -1},
                                           ZeroCase{Algorithm::Ring, "sgd", 300}, ZeroCase{Algorithm::Mpi, "sgd", 0},
                                           ZeroCase{Algorithm::Mpi, "adamw", 300}),
                         zero_case_name);

class ZeroCheckpointTest : public testing::ScratchDirTest {};

// A ZeRO run's checkpoint is an ordinary one: a plain run resumes from it, and a ZeRO run resumes from
// a plain one; either way the next steps equal the uninterrupted run's.
TEST_F(ZeroCheckpointTest, ShardedAndPlainCheckpointsResumeEachOther) {
  Communicator& comm = world();
  for (const bool save_sharded : {true, false}) {
    SCOPED_TRACE(save_sharded ? "ZeRO -> plain" : "plain -> ZeRO");
    const std::string path = this->path(save_sharded ? "zero.h5" : "plain.h5");
    // The run that writes the checkpoint after 6 steps, then goes on for 6 more.
    auto net = small_net(21);
    auto prototype = make_optimizer("adam", *net);
    GradientReducer reducer(comm, net->named_parameters(), {.fusion_bytes = 500, .shard_gradients = save_sharded});
    std::unique_ptr<ShardedOptimizer> sharded;
    if (save_sharded) sharded = std::make_unique<ShardedOptimizer>(comm, reducer, *prototype);
    optim::Optimizer& first = save_sharded ? static_cast<optim::Optimizer&>(*sharded) : *prototype;
    train_steps(comm, *net, first, reducer, 0, 6);
    if (sharded) {
      testing::expect_error<ValueError>([&] { (void)sharded->state(net->parameters().front()); }, {"consolidate_state()"});
      sharded->consolidate_state();
    }
    nn::save_checkpoint(path, *net, &first, {.step = 6}, "", "");  // every rank its own copy
    train_steps(comm, *net, first, reducer, 6, 6);

    // The other kind resumes from the file.
    const nn::Checkpoint checkpoint = nn::read_checkpoint(path);
    EXPECT_EQ(checkpoint.optimizer, "adam");
    auto resumed_net = small_net(99);
    nn::load_model(*resumed_net, checkpoint, true);
    auto resumed_prototype = make_optimizer("adam", *resumed_net);
    GradientReducer resumed_reducer(comm, resumed_net->named_parameters(), {.fusion_bytes = 300, .shard_gradients = !save_sharded});
    std::unique_ptr<ShardedOptimizer> resumed_sharded;
    if (!save_sharded) resumed_sharded = std::make_unique<ShardedOptimizer>(comm, resumed_reducer, *resumed_prototype);
    optim::Optimizer& second = save_sharded ? *resumed_prototype : static_cast<optim::Optimizer&>(*resumed_sharded);
    nn::load_optimizer(second, *resumed_net, checkpoint);
    EXPECT_EQ(second.step_count(), 6);
    train_steps(comm, *resumed_net, second, resumed_reducer, 6, 6);
    const double error = testing::normalized_error(flat_parameters(*resumed_net), flat_parameters(*net));
    EXPECT_LE(error, 1e-6) << "rank " << comm.rank();
  }
}

TEST(Zero, MisuseIsRefusedSayingWhatToDo) {
  Communicator& comm = world();
  auto net = small_net(3);
  optim::Adam prototype(net->parameters());
  GradientReducer plain(comm, net->named_parameters());
  testing::expect_error<ValueError>([&] { ShardedOptimizer opt(comm, plain, prototype); }, {"shard_gradients"});
  auto other = small_net(4);
  GradientReducer sharded_reducer(comm, other->named_parameters(), {.shard_gradients = true});
  testing::expect_error<ValueError>([&] { ShardedOptimizer opt(comm, sharded_reducer, prototype); },
                                    {"requires a gradient", "was not given it"});
  optim::Adam right(other->parameters());
  ShardedOptimizer opt(comm, sharded_reducer, right);
  testing::expect_error<ValueError>([&] { opt.step(); }, {"without a reducer.synchronize()"});
  testing::expect_error<ValueError>(
      [&] { GradientReducer r(comm, other->named_parameters(), {.compression = Compression::Fp16, .shard_gradients = true}); },
      {"fp16 compression is not supported with sharded gradients"});
}

}  // namespace
}  // namespace horo::dist
