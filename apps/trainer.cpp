#include "apps/trainer.h"

#include <chrono>
#include <cmath>

#include "data/sampler.h"

namespace horo::apps {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int64_t count_correct(const Tensor& logits, const Tensor& labels) {
  const Tensor predicted = ops::argmax_rows(logits);
  const int64_t* p = predicted.data<int64_t>();
  const int64_t* y = labels.data<int64_t>();
  int64_t correct = 0;
  for (int64_t i = 0; i < labels.numel(); ++i) correct += p[i] == y[i];
  return correct;
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

double evaluate(nn::Module& model, const data::ImageDataset& dataset, int64_t batch) {
  const bool was_training = model.is_training();
  model.eval();
  autograd::NoGradGuard no_grad;
  int64_t correct = 0;
  for (int64_t begin = 0; begin < dataset.size(); begin += batch) {
    const int64_t end = std::min(dataset.size(), begin + batch);
    const Tensor images = data::normalize_images(dataset.images.slice(begin, end));
    correct += count_correct(model.forward(images), dataset.labels.slice(begin, end));
  }
  model.train(was_training);
  return dataset.size() ? static_cast<double>(correct) / static_cast<double>(dataset.size()) : 0.0;
}

float train_step(nn::Module& model, optim::Optimizer& optimizer, const Tensor& images, const Tensor& labels,
                 Tensor* logits_out) {
  const Tensor logits = model.forward(images);
  const Tensor loss = nn::functional::cross_entropy(logits, labels);
  const float value = loss.item();
  if (!std::isfinite(value)) {
    throw NumericError(detail::concat("training loss is ", std::isnan(value) ? "NaN" : "infinite", " at optimizer step ",
                                      optimizer.step_count() + 1, ": ", locate_non_finite(model, images)));
  }
  optimizer.zero_grad();
  loss.backward();
  optimizer.step();
  if (logits_out) *logits_out = logits;
  return value;
}

TrainResult train(nn::Module& model, optim::Optimizer& optimizer, const data::ImageDataset& train_set,
                  const data::ImageDataset& test_set, const TrainConfig& config,
                  const std::function<void(const EpochReport&)>& on_epoch) {
  HORO_CHECK(config.batch > 0, ValueError, "batch size must be positive, got ", config.batch);
  HORO_CHECK(train_set.size() > 0, ValueError, "the training set is empty");
  TrainResult result;
  double train_seconds = 0.0;
  int64_t images_seen = 0, total_steps = 0;
  for (int64_t epoch = 0; epoch < config.epochs; ++epoch) {
    if (config.max_steps >= 0 && total_steps >= config.max_steps) break;
    model.train();
    const auto order = data::permutation(train_set.size(), config.seed, static_cast<uint64_t>(epoch));
    EpochReport report{.epoch = epoch + 1};
    double loss_sum = 0.0;
    int64_t correct = 0, seen = 0;
    const auto start = Clock::now();
    for (int64_t begin = 0; begin < train_set.size(); begin += config.batch) {
      if (config.max_steps >= 0 && total_steps >= config.max_steps) break;
      const int64_t end = std::min(train_set.size(), begin + config.batch);
      const data::Batch batch = data::gather_batch(train_set, order, begin, end);
      Tensor logits;
      loss_sum += static_cast<double>(train_step(model, optimizer, batch.images, batch.labels, &logits)) * (end - begin);
      correct += count_correct(logits, batch.labels);
      seen += end - begin;
      ++report.steps;
      ++total_steps;
    }
    report.seconds = seconds_since(start);
    train_seconds += report.seconds;
    images_seen += seen;
    report.loss = seen ? loss_sum / static_cast<double>(seen) : 0.0;
    report.train_accuracy = seen ? static_cast<double>(correct) / static_cast<double>(seen) : 0.0;
    report.images_per_s = report.seconds > 0 ? static_cast<double>(seen) / report.seconds : 0.0;
    report.test_accuracy = evaluate(model, test_set);
    result.epochs = epoch + 1;
    result.test_accuracy = report.test_accuracy;
    if (on_epoch) on_epoch(report);
  }
  result.train_images_per_s = train_seconds > 0 ? static_cast<double>(images_seen) / train_seconds : 0.0;
  return result;
}

}  // namespace horo::apps
