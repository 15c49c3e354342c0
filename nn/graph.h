// Layers wired as a graph: each layer reads the outputs of earlier layers by name (or the graph's own
// input, named "input"), so residual blocks and branches are plain layer lists, as in Caffe's
// bottom/top. The last layer's output is the graph's output. Add and Concat join branches.
//
//   auto block = std::make_shared<Graph>();
//   block->add("conv1", conv1).add("bn1", bn1).add("relu1", std::make_shared<ReLU>())
//        .add("conv2", conv2).add("bn2", bn2)
//        .add("add", std::make_shared<Add>(), {"bn2", "input"}).add("relu", std::make_shared<ReLU>());
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nn/layers.h"

namespace horo::nn {

// a + b for two same-shaped inputs (the join of a residual block).
class Add : public Module {
 public:
  Tensor forward(const Tensor& input) override;
  Tensor forward_many(const std::vector<Tensor>& inputs) override;
  int input_count() const override { return 2; }
  std::string type_name() const override { return "Add"; }
};

// Its inputs joined along a dimension (torch.cat; default 1, the channels of NCHW).
class Concat : public Module {
 public:
  explicit Concat(int64_t dim = 1) : dim_(dim) {}
  Tensor forward(const Tensor& input) override;
  Tensor forward_many(const std::vector<Tensor>& inputs) override;
  int input_count() const override { return kAnyInputs; }
  std::string type_name() const override { return "Concat"; }
  std::string extra_repr() const override;
  int64_t dim() const { return dim_; }

 private:
  int64_t dim_;
};

class Graph : public Module {
 public:
  static constexpr const char* kInput = "input";  // the name of the graph's own input

  // Adds a layer reading the named outputs; no names: the previous layer's output (the graph's input
  // for the first layer). Throws ValueError naming the layer for an unknown or later name, a
  // duplicate name, or the wrong number of inputs.
  Graph& add(const std::string& name, std::shared_ptr<Module> module, const std::vector<std::string>& inputs = {});
  Tensor forward(const Tensor& input) override;
  std::string type_name() const override { return "Graph"; }
  std::string extra_repr() const override;
  // The names a layer reads.
  std::vector<std::string> inputs_of(const std::string& layer) const;
  // Throws ValueError unless every output but the last (and the graph's input) is read by some layer.
  void check() const;

 private:
  struct Node {
    std::vector<int> inputs;  // layer indices; -1 is the graph's input
    int readers = 0;          // layers reading this one's output
    int reader = -1;          // the last layer reading it (the only one when readers == 1)
  };
  std::string name_of(int index) const;
  std::vector<Node> nodes_;
  std::map<std::string, int> index_;
  int input_readers_ = 0;
};

// torchvision's zero_init_residual: sets the weight of every BatchNorm that feeds the first input of
// an Add (the residual branch, by the convention of horo's ResNet specifications) to zero, so each
// residual block starts as the identity. Returns the number of BatchNorm layers changed.
int zero_init_residual(Module& model);

namespace fusion {
// Whether layers may run fused (HORO_FUSE=0 and anomaly mode turn it off).
bool enabled();
// Runs the first layers of `chain` (each the only reader of the previous one's output) on x, fusing
// where a pattern fits: Conv2d-ReLU-MaxPool2d (CPU), Conv2d-BatchNorm[-ReLU] with running statistics
// (BatchNorm folded into the convolution), Conv2d-BatchNorm[-ReLU] with batch statistics (CPU: the
// statistics gathered as the convolution writes its output), BatchNorm-ReLU (one pass). Returns the
// output and how many layers it ran (at least 1).
std::pair<Tensor, size_t> run_chain(const std::vector<Module*>& chain, const Tensor& x);
}  // namespace fusion

}  // namespace horo::nn
