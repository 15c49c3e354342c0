#include "train/loop.h"

#include <chrono>
#include <cmath>

#include "data/sampler.h"
#include "dist/timeline.h"

namespace horo::training {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int64_t count_correct(const Tensor& logits, const Tensor& labels) {
  return static_cast<int64_t>(ops::count_correct(logits, labels.to(logits.device())).item());
}

// Re-runs the forward pass with every layer's output checked, to name where a non-finite loss began.
std::string locate_non_finite(nn::Module& model, const Tensor& images) {
  autograd::NoGradGuard no_grad;
  const bool previous = nn::detect_anomaly();
  nn::set_detect_anomaly(true);
  std::string where;
  try {
    nn::functional::check_finite(images, "input batch");
    model.forward(images);
    where = "every layer's output is finite, so the loss itself overflowed (is the learning rate too high?)";
  } catch (const NumericError& e) {
    where = e.what();
  }
  nn::set_detect_anomaly(previous);
  return where;
}

}  // namespace

ResumePlan resize_on_resume(int64_t saved_ranks, int64_t saved_batch, int64_t epoch, int64_t batch_in_epoch, int64_t ranks,
                            int64_t batch, bool batch_given, const std::function<int64_t(int64_t batch)>& batches_per_epoch) {
  ResumePlan plan{batch, epoch, batch_in_epoch, ""};
  if (saved_ranks <= 0 || saved_ranks == ranks) return plan;  // same ranks (or not recorded): nothing to convert
  const int64_t saved_global = saved_batch * saved_ranks;
  if (!batch_given && saved_global % ranks == 0) plan.batch = saved_global / ranks;
  const int64_t global = plan.batch * ranks;
  const std::string written = detail::concat(saved_ranks, " ranks x batch ", saved_batch);
  const std::string now = detail::concat(ranks, " ranks x batch ", plan.batch);
  if (global == saved_global) {
    plan.note = detail::concat("the checkpoint was written by ", written, "; on ", now, " the global batch (", global,
                               ") is the same, so the run continues the same trajectory (samples are dealt by global "
                               "position; BatchNorm layers normalise over each rank's ", plan.batch, " samples unless --sync-bn)");
    return plan;
  }
  // Another global batch: the same samples already seen, counted in batches of the new size.
  const int64_t seen = batch_in_epoch * saved_global;
  plan.batch_in_epoch = seen / global;
  const int64_t repeated = seen - plan.batch_in_epoch * global;
  if (plan.batch_in_epoch >= batches_per_epoch(plan.batch)) {
    ++plan.epoch;
    plan.batch_in_epoch = 0;
  }
  plan.note = detail::concat(
      "the global batch changes from ", saved_global, " (", written, ") to ", global, " (", now, ")",
      batch_given ? "" : detail::concat(": ", saved_global, " samples do not split evenly over ", ranks, " ranks"),
      "; the gradient is averaged over ", global, " samples per step from here on, with the learning rate unchanged; epoch ",
      plan.epoch + 1, " continues at batch ", plan.batch_in_epoch,
      repeated > 0 ? detail::concat(" (", repeated, " samples of the interrupted batch are seen again)") : std::string(),
      batch_given || saved_global % ranks != 0 ? "" : detail::concat("; give --batch ", saved_global / ranks, " to keep it"));
  return plan;
}

MemorySource::MemorySource(data::ImageDataset dataset, int64_t batch, uint64_t seed, int64_t rank, int64_t world)
    : dataset_(std::move(dataset)), batch_(batch), seed_(seed), rank_(rank), world_(world),
      per_rank_(dataset_.size() / std::max<int64_t>(1, world)) {
  HORO_CHECK(batch > 0, ValueError, "batch size must be positive, got ", batch);
  HORO_CHECK(per_rank_ > 0, ValueError, "the training set (", dataset_.size(), " samples) is smaller than the ", world,
             " ranks");
}

int64_t MemorySource::batches_per_epoch() const { return (per_rank_ + batch_ - 1) / batch_; }

void MemorySource::seek(int64_t epoch, int64_t batch) {
  next(epoch);  // builds the epoch's order (and consumes batch 0)
  position_ = std::min(per_rank_, batch * batch_);
}

std::optional<data::Batch> MemorySource::next(int64_t epoch) {
  const auto start = Clock::now();
  if (epoch != epoch_) {
    epoch_ = epoch;
    position_ = 0;
    const auto all = data::permutation(dataset_.size(), seed_, static_cast<uint64_t>(epoch));
    order_.resize(static_cast<size_t>(per_rank_));
    for (int64_t k = 0; k < per_rank_; ++k) order_[k] = all[static_cast<size_t>(k * world_ + rank_)];
  }
  if (position_ >= per_rank_) return std::nullopt;
  const int64_t end = std::min(per_rank_, position_ + batch_);
  data::Batch batch = data::gather_batch(dataset_, order_, position_, end);
  position_ = end;
  wait_seconds_ += seconds_since(start);
  return batch;
}

ReaderSource::ReaderSource(const data::ReaderOptions& options) : reader_(options) {}

std::optional<data::Batch> ReaderSource::next(int64_t epoch) {
  if (!pending_) pending_ = reader_.next();
  if (!pending_ || pending_->epoch != epoch) return std::nullopt;
  data::Batch batch{pending_->data, pending_->labels};
  pending_.reset();
  return batch;
}

data::ReaderOptions reader_options(const std::string& path, int64_t batch, uint64_t seed, int64_t epochs) {
  data::ReaderOptions o;
  o.path = path;
  o.batch = batch;
  o.seed = seed;
  o.num_epochs = epochs;
  const data::H5DatasetFile file(path);
  // Training, validation and evaluation compare against labels (without this check, a file without
  // them failed later as "use of an undefined tensor").
  HORO_CHECK(file.schema().has_labels, ValueError, path, ": has no /labels dataset; training and evaluation need ",
             "one class index per sample (docs/data-format.md)");
  for (double m : file.schema().mean) o.transforms.mean.push_back(static_cast<float>(m));
  for (double s : file.schema().std) o.transforms.std.push_back(static_cast<float>(s));
  return o;
}

Device model_device(const nn::Module& model) {
  const auto params = model.parameters();
  return params.empty() ? Device::cpu() : params.front().device();
}

double evaluate(nn::Module& model, BatchSource& batches) {
  const bool was_training = model.is_training();
  model.eval();
  autograd::NoGradGuard no_grad;
  int64_t correct = 0, seen = 0;
  const Device device = model_device(model);
  while (auto batch = batches.next(0)) {
    correct += count_correct(model.forward(batch->images.to(device)), batch->labels);
    seen += batch->labels.numel();
  }
  model.train(was_training);
  return seen ? static_cast<double>(correct) / static_cast<double>(seen) : 0.0;
}

double evaluate(nn::Module& model, const data::ImageDataset& dataset, int64_t batch) {
  const bool was_training = model.is_training();
  model.eval();
  autograd::NoGradGuard no_grad;
  int64_t correct = 0;
  for (int64_t begin = 0; begin < dataset.size(); begin += batch) {
    const int64_t end = std::min(dataset.size(), begin + batch);
    const Tensor images = data::normalize_images(dataset.images.slice(begin, end)).to(model_device(model));
    correct += count_correct(model.forward(images), dataset.labels.slice(begin, end));
  }
  model.train(was_training);
  return dataset.size() ? static_cast<double>(correct) / static_cast<double>(dataset.size()) : 0.0;
}

float train_step(nn::Module& model, optim::Optimizer& optimizer, const Tensor& images, const Tensor& labels,
                 int64_t* correct, dist::GradientReducer* reducer, const LossFunction& loss_function) {
  Tensor logits, loss;
  {
    dist::TimelineScope scope("forward", "compute", "main");
    logits = model.forward(images);
    loss = loss_function ? loss_function(logits, labels) : nn::functional::cross_entropy(logits, labels);
    HORO_CHECK(loss.defined() && loss.numel() == 1, ShapeError, "the training loss must be one value, got ",
               loss.defined() ? loss.describe() : std::string("an undefined tensor"));
  }
  // The step's one host wait: the loss and the correct count, copied together.
  const Tensor both = ops::cat({loss.detach().view({1}), ops::count_correct(logits.detach(), labels).view({1})}, 0)
                          .to(Device::cpu());
  const float value = both.data<float>()[0];
  if (correct) *correct = static_cast<int64_t>(both.data<float>()[1]);
  if (!std::isfinite(value)) {
    throw NumericError(detail::concat("training loss is ", std::isnan(value) ? "NaN" : "infinite", " at optimizer step ",
                                      optimizer.step_count() + 1, ": ", locate_non_finite(model, images)));
  }
  optimizer.zero_grad();
  {
    dist::TimelineScope scope("backward", "compute", "main");
    loss.backward();
  }
  if (reducer) reducer->synchronize();
  {
    dist::TimelineScope scope("optimizer step", "compute", "main");
    optimizer.step();
  }
  return value;
}

TrainResult train(nn::Module& model, optim::Optimizer& optimizer, BatchSource& train_batches, const TrainConfig& config,
                  const TrainCallbacks& callbacks, dist::GradientReducer* reducer) {
  TrainResult result;
  double train_seconds = 0.0;
  int64_t images_seen = 0, total_steps = config.start_step;
  result.next_epoch = config.start_epoch;
  result.next_batch = config.start_batch;
  auto out_of_steps = [&] { return config.max_steps >= 0 && total_steps >= config.max_steps; };
  for (int64_t epoch = config.start_epoch; epoch < config.epochs && !out_of_steps() && !result.stop_code; ++epoch) {
    model.train();
    EpochReport report{.epoch = epoch + 1};
    double loss_sum = 0.0;
    int64_t correct = 0, seen = 0;
    int64_t batch_index = epoch == config.start_epoch ? config.start_batch : 0;
    const double wait_before = train_batches.wait_seconds();
    const double comm_before = reducer ? reducer->wait_seconds() : 0.0;
    const auto start = Clock::now();
    while (!out_of_steps()) {
      const auto batch = train_batches.next(epoch);
      if (!batch) break;
      const int64_t size = batch->labels.numel();
      int64_t batch_correct = 0;
      const float loss = train_step(model, optimizer, batch->images.to(config.device), batch->labels.to(config.device),
                                    &batch_correct, reducer, callbacks.loss);
      loss_sum += static_cast<double>(loss) * size;
      correct += batch_correct;
      seen += size;
      ++report.steps;
      ++total_steps;
      ++batch_index;
      if (callbacks.on_step) {
        const double elapsed = seconds_since(start);
        callbacks.on_step({.epoch = epoch, .batch_in_epoch = batch_index, .batches_per_epoch = train_batches.batches_per_epoch(),
                           .step = total_steps, .loss = loss, .accuracy = static_cast<double>(batch_correct) / size,
                           .epoch_seconds = elapsed, .images_per_s = elapsed > 0 ? seen / elapsed : 0.0,
                           .data_wait_share = elapsed > 0 ? (train_batches.wait_seconds() - wait_before) / elapsed : 0.0});
      }
      result.step = total_steps;
      const bool epoch_done = batch_index >= train_batches.batches_per_epoch();
      result.next_epoch = epoch_done ? epoch + 1 : epoch;
      result.next_batch = epoch_done ? 0 : batch_index;
      if (callbacks.should_stop && (result.stop_code = callbacks.should_stop()) != 0) break;
    }
    result.epochs = epoch + 1;
    report.seconds = seconds_since(start);
    train_seconds += report.seconds;
    images_seen += seen;
    if (result.stop_code) {  // no evaluation: the time left before a SIGKILL belongs to the checkpoint
      result.reason = StopReason::Requested;
      break;
    }
    report.data_wait_share = report.seconds > 0 ? (train_batches.wait_seconds() - wait_before) / report.seconds : 0.0;
    report.comm_wait_share = report.seconds > 0 && reducer ? (reducer->wait_seconds() - comm_before) / report.seconds : 0.0;
    report.loss = seen ? loss_sum / static_cast<double>(seen) : 0.0;
    report.train_accuracy = seen ? static_cast<double>(correct) / static_cast<double>(seen) : 0.0;
    report.images_per_s = report.seconds > 0 ? static_cast<double>(seen) / report.seconds : 0.0;
    report.test_accuracy = callbacks.evaluate ? callbacks.evaluate() : 0.0;
    result.test_accuracy = report.test_accuracy;
    if (callbacks.on_epoch) callbacks.on_epoch(report);
  }
  if (result.reason == StopReason::Completed && out_of_steps() && result.next_epoch < config.epochs) result.reason = StopReason::MaxSteps;
  result.step = total_steps;
  result.train_images_per_s = train_seconds > 0 ? static_cast<double>(images_seen) / train_seconds : 0.0;
  return result;
}

}  // namespace horo::training
