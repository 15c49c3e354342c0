#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>

#include "dist/reducer.h"
#include "dist/sharded_optimizer.h"
#include "dist/sync_batch_norm.h"
#include "dist/timeline.h"
#include "train/run_log.h"
#include "train/stop_signal.h"

namespace horo::training {

Trainer::Trainer(nn::Module& model, optim::Optimizer& optimizer, dist::Communicator& comm, TrainerOptions options)
    : model_(model), base_optimizer_(optimizer), comm_(comm), options_(std::move(options)) {
  HORO_CHECK(options_.epochs >= 0 && options_.batch > 0, ValueError, "Trainer: epochs must be >= 0 and batch > 0, got epochs ",
             options_.epochs, " and batch ", options_.batch);
  HORO_CHECK(options_.zero == 0 || options_.zero == 1, ValueError, "Trainer: zero is 0 (off) or 1 (ZeRO-1), got ", options_.zero);
  HORO_CHECK(options_.checkpoint_every >= 0 && options_.keep >= 1, ValueError,
             "Trainer: checkpoint_every must be >= 0 and keep >= 1, got ", options_.checkpoint_every, " and ", options_.keep);
}

Trainer::~Trainer() = default;

void Trainer::resume(const nn::Checkpoint& checkpoint, int64_t epoch, int64_t batch_in_epoch) {
  resumed_ = checkpoint;
  start_epoch_ = epoch;
  start_batch_ = batch_in_epoch;
  start_step_ = checkpoint.state.step;
}

std::optional<nn::Checkpoint> Trainer::latest_checkpoint(const std::string& dir, int keep) {
  const std::string path = nn::CheckpointDir(dir, keep).latest();
  if (path.empty()) return std::nullopt;
  return nn::read_checkpoint(path);
}

optim::Optimizer& Trainer::optimizer() { return sharded_ ? static_cast<optim::Optimizer&>(*sharded_) : base_optimizer_; }

std::string Trainer::save_checkpoint(int64_t step, int64_t epoch, int64_t batch_in_epoch) {
  if (options_.checkpoint_dir.empty()) return "";
  if (sharded_) sharded_->consolidate_state();  // a collective: every rank takes part before rank 0 writes
  saved_step_ = step;
  if (!checkpoints_) return "";
  const auto& gen = default_generator();
  saved_path_ = checkpoints_->save(model_, &optimizer(),
                                   {.step = step, .epoch = epoch, .batch_in_epoch = batch_in_epoch, .rng_seed = gen.seed(),
                                    .rng_offset = gen.offset(), .data_seed = options_.seed, .ranks = world()},
                                   options_.model_spec, options_.train_config);
  return saved_path_;
}

FitResult Trainer::fit(BatchSource& batches, const TrainCallbacks& user) {
  HORO_CHECK(!fitted_, ValueError, "Trainer: fit() runs once per Trainer (its gradient reducer is already attached); "
             "continue a run with a new Trainer and resume()");
  fitted_ = true;
  install_stop_signals("horo");
  const bool leader = rank() == 0;
  const int ranks = world();
  if (resumed_) nn::load_model(model_, *resumed_, true);
  model_.to(options_.device);
  if (options_.sync_bn) {
    const int converted = dist::convert_sync_batchnorm(model_, comm_);
    if (leader && options_.print) std::printf("sync-bn: %d BatchNorm layers normalise over all %d ranks' batches\n", converted, ranks);
  }
  // ZeRO-1: the reducer reduce-scatters and a sharded optimizer, with the same update rule, keeps
  // each rank's shard of the state; it is the optimizer that schedules, resumes and saves act on.
  if (ranks > 1) {
    reducer_ = std::make_unique<dist::GradientReducer>(comm_, model_.named_parameters(),
                                                       dist::ReducerOptions{.shard_gradients = options_.zero == 1});
  }
  if (options_.zero == 1 && ranks == 1 && leader && options_.print) {
    std::printf("zero: one process, nothing to shard (zero 1 takes effect under mpirun)\n");
  }
  if (reducer_ && options_.zero == 1) sharded_ = std::make_unique<dist::ShardedOptimizer>(comm_, *reducer_, base_optimizer_);
  optim::Optimizer& opt = optimizer();
  std::unique_ptr<optim::LRScheduler> schedule = options_.schedule ? options_.schedule(opt) : nullptr;
  if (resumed_) {
    nn::load_optimizer(opt, model_, *resumed_);  // sharded: each rank keeps its pieces
    default_generator().set_state(resumed_->state.rng_seed, resumed_->state.rng_offset);
    for (int64_t e = 0; e < start_epoch_ && schedule; ++e) schedule->step();
  }
  // Every rank starts from rank 0's weights and optimizer state (a sharded state was read by every
  // rank from the same checkpoint).
  dist::broadcast_parameters(comm_, model_);
  if (!sharded_) dist::broadcast_optimizer_state(comm_, opt, model_);
  // The end-of-epoch barrier waits for rank 0's evaluation, however long: no watchdog on it (the
  // reducer's own communicator keeps HORO_STALL_TIMEOUT for the gradient traffic).
  comm_.set_stall_timeout(0);

  if (leader && !options_.checkpoint_dir.empty()) {
    checkpoints_ = std::make_unique<nn::CheckpointDir>(options_.checkpoint_dir, options_.keep);
    if (resumed_) {
      for (const auto& stale : checkpoints_->remove_after(resumed_->state.step)) {
        if (options_.print) std::printf("removed %s: later than the checkpoint this run resumes from\n", stale.c_str());
      }
    } else {
      const std::string existing = checkpoints_->latest();
      HORO_CHECK(existing.empty(), ValueError, options_.checkpoint_dir, " already holds checkpoints of another run (", existing,
                 "): resume it with --resume latest, or choose another --checkpoint-dir");
    }
  }
  saved_step_ = resumed_ ? resumed_->state.step : -1;

  MetricsLog log(leader ? options_.log_dir : "");
  ProgressLine progress(options_.epochs);
  const bool show = leader && options_.print;
  TrainCallbacks callbacks;
  callbacks.loss = user.loss;
  callbacks.evaluate = user.evaluate;
  bool epoch_complete = false;
  callbacks.on_step = [&](const StepReport& s) {
    epoch_complete = s.batch_in_epoch == s.batches_per_epoch;
    if (show) progress.update(s);
    if (leader) log.step(s);
    if (options_.checkpoint_every > 0 && s.step % options_.checkpoint_every == 0) {
      save_checkpoint(s.step, epoch_complete ? s.epoch + 1 : s.epoch, epoch_complete ? 0 : s.batch_in_epoch);
    }
    if (user.on_step) user.on_step(s);
  };
  // A stop request (SIGTERM, SIGINT, or the caller's condition) on any rank stops every rank after
  // the same step.
  int stopping_ranks = 0;
  callbacks.should_stop = [&]() -> int {
    int own = stop_signal_received();
    if (!own && user.should_stop) own = user.should_stop();
    float requests = own ? 1.0f : 0.0f;
    if (ranks > 1) comm_.allreduce(&requests, 1, dist::ReduceOp::Sum);
    stopping_ranks = static_cast<int>(requests);
    return stopping_ranks == 0 ? 0 : own ? own : SIGTERM;
  };
  int64_t last_step = start_step_;
  double best_test_accuracy = 0.0;
  const auto run_start = std::chrono::steady_clock::now();
  callbacks.on_epoch = [&](const EpochReport& r) {
    comm_.barrier();  // rank 0 has evaluated: every rank starts the next epoch together
    if (schedule) schedule->step();
    last_step += r.steps;
    best_test_accuracy = std::max(best_test_accuracy, r.test_accuracy);
    if (options_.checkpoint_every == 0 && epoch_complete) save_checkpoint(last_step, r.epoch, 0);
    if (leader) {
      if (show) {
        progress.finish_line();
        std::printf("epoch %lld/%lld steps=%lld loss=%.4f train_acc=%.4f test_acc=%.4f images/s=%.0f",
                    static_cast<long long>(r.epoch), static_cast<long long>(options_.epochs), static_cast<long long>(r.steps),
                    r.loss, r.train_accuracy, r.test_accuracy, r.images_per_s * ranks);
        if (ranks > 1) std::printf(" (per rank %.0f) comm_wait=%.1f%%", r.images_per_s, 100.0 * r.comm_wait_share);
        std::printf(" data_wait=%.1f%% time=%.1fs\n", 100.0 * r.data_wait_share, r.seconds);
        std::fflush(stdout);
      }
      log.epoch(r);
    }
    if (user.on_epoch) user.on_epoch(r);
  };

  const TrainConfig loop{.epochs = options_.epochs, .batch = options_.batch, .seed = options_.seed,
                         .max_steps = options_.max_steps, .start_epoch = start_epoch_, .start_batch = start_batch_,
                         .start_step = start_step_, .device = options_.device};
  FitResult result;
  static_cast<TrainResult&>(result) = train(model_, opt, batches, loop, callbacks, reducer_.get());

  // The run's final state is never lost: whatever ended it (the last epoch, max_steps, a stop
  // request), a checkpoint of the last step unless the cadence has just written one.
  if (result.step != saved_step_) save_checkpoint(result.step, result.next_epoch, result.next_batch);

  float total_rate = static_cast<float>(result.train_images_per_s);
  comm_.allreduce(&total_rate, 1, dist::ReduceOp::Sum);
  result.optimizer_state_bytes = dist::optimizer_state_bytes(opt, model_);
  float all_state_bytes = static_cast<float>(result.optimizer_state_bytes);
  comm_.allreduce(&all_state_bytes, 1, dist::ReduceOp::Sum);
  dist::Timeline::instance().flush();
  result.total_images_per_s = total_rate;
  result.all_optimizer_state_bytes = static_cast<int64_t>(all_state_bytes);
  result.best_test_accuracy = best_test_accuracy;
  result.stopping_ranks = stopping_ranks;
  result.last_checkpoint = saved_path_;
  result.start_step = start_step_;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
  char summary[256];
  std::snprintf(summary, sizeof summary, "epochs=%lld train_images_per_s=%.1f test_accuracy=%.4f",
                static_cast<long long>(result.epochs), static_cast<double>(total_rate),
                user.evaluate ? result.test_accuracy : std::nan(""));
  result.summary = summary;
  if (leader) {
    if (show) progress.finish_line();
    if (result.reason == StopReason::Requested) {
      log.write_report(options_.title + " (stopped)", detail::concat("stopped at step ", result.step));
    } else {
      log.write_report(options_.title, result.summary);
    }
  }
  return result;
}

}  // namespace horo::training
