#include "dist/sync_batch_norm.h"

#include <vector>

namespace horo::dist {

SyncBatchNorm::SyncBatchNorm(const nn::BatchNormOptions& options, Communicator& comm)
    : nn::BatchNorm(options, 0), comm_(comm) {}

SyncBatchNorm::SyncBatchNorm(const nn::BatchNorm& other, Communicator& comm) : nn::BatchNorm(other, 0), comm_(comm) {}

int64_t SyncBatchNorm::reduce_statistics(Tensor& mean, Tensor& var, int64_t count) {
  const int64_t c = mean.numel();
  // Per rank: count, then mean and sum of squared deviations per channel, in double.
  const Tensor host_mean = mean.to(Device::cpu()), host_var = var.to(Device::cpu());
  std::vector<double> mine(static_cast<size_t>(1 + 2 * c));
  mine[0] = static_cast<double>(count);
  for (int64_t k = 0; k < c; ++k) {
    mine[1 + k] = host_mean.data<float>()[k];
    mine[1 + c + k] = static_cast<double>(host_var.data<float>()[k]) * static_cast<double>(count);
  }
  const int ranks = comm_.size();
  std::vector<double> all(mine.size() * static_cast<size_t>(ranks));
  comm_.allgather(mine.data(), static_cast<int64_t>(mine.size() * sizeof(double)), all.data());
  double total = 0.0;
  for (int r = 0; r < ranks; ++r) total += all[static_cast<size_t>(r) * mine.size()];
  HORO_CHECK(total > 0.0, ValueError, where(), ": no rank has any value to normalise");
  std::vector<float> out_mean(static_cast<size_t>(c)), out_var(static_cast<size_t>(c));
  for (int64_t k = 0; k < c; ++k) {
    double m = 0.0;
    for (int r = 0; r < ranks; ++r) {
      const double* row = all.data() + static_cast<size_t>(r) * mine.size();
      m += row[0] * row[1 + k];
    }
    m /= total;
    double m2 = 0.0;  // Chan et al.: the deviations within each rank plus each rank's mean about the total's
    for (int r = 0; r < ranks; ++r) {
      const double* row = all.data() + static_cast<size_t>(r) * mine.size();
      const double d = row[1 + k] - m;
      m2 += row[1 + c + k] + row[0] * d * d;
    }
    out_mean[static_cast<size_t>(k)] = static_cast<float>(m);
    out_var[static_cast<size_t>(k)] = static_cast<float>(m2 / total);
  }
  mean.copy_from(Tensor::from_vector(out_mean, {c}));
  var.copy_from(Tensor::from_vector(out_var, {c}));
  return static_cast<int64_t>(total);
}

void SyncBatchNorm::reduce_gradient_sums(Tensor& sum_dy, Tensor& sum_dy_xhat) {
  const int64_t c = sum_dy.numel();
  Tensor both = ops::cat({sum_dy.view({1, c}), sum_dy_xhat.view({1, c})}, 0).to(Device::cpu());
  comm_.allreduce(both.data<float>(), 2 * c, ReduceOp::Sum);
  sum_dy.copy_from(both.slice(0, 1).view({c}));
  sum_dy_xhat.copy_from(both.slice(1, 2).view({c}));
}

int convert_sync_batchnorm(nn::Module& model, Communicator& comm) {
  int replaced = 0;
  for (const auto& [name, child] : model.children()) {
    auto* bn = dynamic_cast<nn::BatchNorm*>(child.get());
    if (bn && !dynamic_cast<SyncBatchNorm*>(bn)) {
      model.replace_child(name, std::make_shared<SyncBatchNorm>(*bn, comm));
      ++replaced;
    } else {
      replaced += convert_sync_batchnorm(*child, comm);
    }
  }
  return replaced;
}

}  // namespace horo::dist
