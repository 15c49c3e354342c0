// SyncBatchNorm: BatchNorm whose batch statistics cover every rank's batch, as torch.nn.SyncBatchNorm
// and Horovod's hvd.SyncBatchNorm. Forward gathers each rank's (count, mean, sum of squared
// deviations) and combines them exactly (Chan et al.'s parallel formula, in double), so ranks may
// hold batches of different sizes; backward sums the two per-channel gradient sums over the ranks.
// N ranks with batch B then compute what one process computes with batch N*B: the same outputs, the
// same running statistics and, after the gradient reducer's average, the same parameter gradients.
// Works over every backend (local, ring, MPI, NCCL); GPU statistics are staged through the host,
// 2C + 1 numbers per layer and step.
#pragma once

#include <memory>

#include "dist/communicator.h"
#include "nn/norm.h"

namespace horo::dist {

class SyncBatchNorm : public nn::BatchNorm, private nn::functional::BatchNormSync {
 public:
  // `comm` must outlive the layer; every rank must run the layer the same number of times.
  SyncBatchNorm(const nn::BatchNormOptions& options, Communicator& comm);
  // Takes over a BatchNorm layer's options, parameters and buffers (the same tensors, so an optimizer
  // built on them keeps working).
  SyncBatchNorm(const nn::BatchNorm& other, Communicator& comm);
  std::string type_name() const override { return "SyncBatchNorm"; }

 protected:
  nn::functional::BatchNormSync* sync() override { return this; }

 private:
  int64_t reduce_statistics(Tensor& mean, Tensor& var, int64_t count) override;
  void reduce_gradient_sums(Tensor& sum_dy, Tensor& sum_dy_xhat) override;
  Communicator& comm_;
};

// Replaces every BatchNorm1d/BatchNorm2d of the model by a SyncBatchNorm over comm, keeping its
// tensors (torch.nn.SyncBatchNorm.convert_sync_batchnorm); returns how many it replaced.
int convert_sync_batchnorm(nn::Module& model, Communicator& comm);

}  // namespace horo::dist
