// Batch normalisation, adaptive pooling, concatenation and the fused residual add + ReLU, with
// their gradients.
#include <cmath>
#include <tuple>

#include "nn/functional.h"

namespace horo::nn::functional {

using autograd::Node;
using autograd::record;
using autograd::saved;

Tensor adaptive_avg_pool2d(const Tensor& input, int64_t out_h, int64_t out_w) {
  Tensor out = ops::adaptive_avgpool2d(input, out_h, out_w);
  if (!autograd::any_requires_grad({&input})) return out;
  return record(out, {&input}, "adaptive_avg_pool2d", [shape = input.shape()](const Tensor& g, const Node&) -> std::vector<Tensor> {
    return {ops::adaptive_avgpool2d_backward(g, shape)};
  });
}

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, const BatchNormArgs& args) {
  HORO_CHECK(x.dim() == 2 || x.dim() == 4, ShapeError, "batch_norm: expected [batch, channels] or [batch, channels, ",
             "height, width], got ", x.describe());
  HORO_CHECK(std::isfinite(args.eps) && args.eps > 0.0f, ValueError, "batch_norm: eps must be positive, got ", args.eps);
  Tensor mean, var;
  int64_t count = x.numel() / std::max<int64_t>(1, x.size(1));
  if (args.training) {
    if (args.batch_mean.defined() && args.batch_var.defined()) {
      mean = args.batch_mean.clone();  // the sync below overwrites them
      var = args.batch_var.clone();
    } else {
      std::tie(mean, var) = ops::batch_norm_stats(x);
    }
    if (args.sync) count = args.sync->reduce_statistics(mean, var, count);
    // As PyTorch: one value per channel has no variance to normalise by.
    HORO_CHECK(count > 1, ValueError, "batch_norm: expected more than 1 value per channel when training, got input ",
               x.describe());
    if (running_mean.defined() || running_var.defined()) {
      HORO_CHECK(running_mean.defined() && running_var.defined(), ValueError,
                 "batch_norm: running_mean and running_var must both be given or both be absent");
      Tensor rm = running_mean, rv = running_var;
      ops::batch_norm_update_running(mean, var, args.momentum,
                                     static_cast<float>(static_cast<double>(count) / static_cast<double>(count - 1)), rm, rv);
    }
  } else {
    HORO_CHECK(running_mean.defined() && running_var.defined(), ValueError,
               "batch_norm: evaluation needs running_mean and running_var (or normalise by the batch: training=true)");
    mean = running_mean;
    var = running_var;
  }
  HORO_CHECK(mean.size(0) == x.size(1), ShapeError, "batch_norm: ", x.describe(), " has ", x.size(1),
             " channels but the statistics have ", mean.size(0));
  const auto k = ops::batch_norm_coefficients(mean, var, weight, bias, args.eps);
  const Tensor& residual = args.residual;
  Tensor out = ops::batch_norm_apply(x, k.scale, k.shift, args.relu, residual);
  if (!autograd::any_requires_grad({&x, &weight, &bias, &residual})) return out;
  // The statistics are those used in the forward pass: in eval mode the running statistics as they
  // were then (copied, since training later updates them in place).
  if (!args.training) mean = mean.clone();
  // The ReLU's mask: recomputed from x and the coefficients without a residual; with one, the output.
  const bool mask_from_x = args.relu && !residual.defined(), mask_from_y = args.relu && residual.defined();
  return record(out, {&x, &weight, &bias, &residual}, residual.defined() ? "batch_norm_add_relu" : args.relu ? "batch_norm_relu" : "batch_norm",
                [x = saved(x), scale = mask_from_x ? k.scale : Tensor(), shift = mask_from_x ? k.shift : Tensor(),
                 y = mask_from_y ? saved(out) : Tensor(), w = saved(weight), mean, invstd = k.invstd,
                 training = args.training, sync = args.sync, count](const Tensor& g_out, const Node& node) -> std::vector<Tensor> {
                  Tensor gx, gw, gb, gr;
                  // Through the ReLU after a residual add: the gradient of both the normalisation and the residual.
                  const Tensor g = y.defined() ? ops::unary_backward(kernels::Unary::ReLU, 0.0f, y, y, g_out) : g_out;
                  if (node.needs_input_grad(3)) gr = g;
                  const bool input_grad = node.needs_input_grad(0);
                  if (node.needs_input_grad(1) || node.needs_input_grad(2) || (training && input_grad)) {
                    Tensor sum_dy, sum_dy_xhat;
                    if (training && input_grad && !sync) {
                      // The statistics are this process's: the sums and the input gradient in one pass.
                      auto grads = ops::batch_norm_backward(x, scale, shift, g, mean, invstd, w);
                      gx = grads.grad_input;
                      sum_dy = grads.sum_dy;
                      sum_dy_xhat = grads.sum_dy_xhat;
                    } else {
                      std::tie(sum_dy, sum_dy_xhat) = ops::batch_norm_backward_reduce(x, scale, shift, g, mean, invstd);
                      if (training && input_grad) {  // SyncBatchNorm: the input gradient takes every rank's sums
                        Tensor total_dy = sum_dy.clone(), total_dy_xhat = sum_dy_xhat.clone();
                        sync->reduce_gradient_sums(total_dy, total_dy_xhat);
                        gx = ops::batch_norm_backward_input(x, scale, shift, g, mean, invstd, w, total_dy, total_dy_xhat,
                                                            static_cast<double>(count));
                      }
                    }
                    // The parameters' gradients are this process's sums (the gradient reducer averages them).
                    if (node.needs_input_grad(1)) gw = sum_dy_xhat;
                    if (node.needs_input_grad(2)) gb = sum_dy;
                  }
                  if (!training && input_grad) {
                    gx = ops::batch_norm_backward_input(x, scale, shift, g, mean, invstd, w, Tensor(), Tensor(), 1.0);
                  }
                  return {gx, gw, gb, gr};
                });
}

Tensor add_relu(const Tensor& a, const Tensor& b) {
  Tensor out = ops::add_relu(a, b);
  if (!autograd::any_requires_grad({&a, &b})) return out;
  return record(out, {&a, &b}, "add_relu", [y = saved(out)](const Tensor& g, const Node& node) -> std::vector<Tensor> {
    // y > 0 exactly where a + b > 0, so the output gives the ReLU's mask.
    const Tensor masked = ops::unary_backward(kernels::Unary::ReLU, 0.0f, y, y, g);
    return {node.needs_input_grad(0) ? masked : Tensor(), node.needs_input_grad(1) ? masked : Tensor()};
  });
}

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  Tensor out = ops::cat(tensors, dim);
  std::vector<const Tensor*> inputs;
  for (const Tensor& t : tensors) inputs.push_back(&t);
  bool any = false;
  for (const Tensor* t : inputs) any = any || autograd::any_requires_grad({t});
  if (!any) return out;
  std::vector<int64_t> sizes;
  for (const Tensor& t : tensors) sizes.push_back(t.size(ops::normalize_dim(dim, t.dim(), "cat")));
  const int64_t d = ops::normalize_dim(dim, out.dim(), "cat");
  return record(out, inputs, "cat", [sizes, d](const Tensor& g, const Node& node) -> std::vector<Tensor> {
    std::vector<Tensor> grads;
    int64_t start = 0;
    for (size_t k = 0; k < sizes.size(); ++k) {
      grads.push_back(node.needs_input_grad(k) ? ops::narrow(g, d, start, sizes[k]) : Tensor());
      start += sizes[k];
    }
    return grads;
  });
}

}  // namespace horo::nn::functional
