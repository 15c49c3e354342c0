// Builds the modules a parsed model specification describes (internal to nn/spec.cpp): walks each
// layer list with the shape of one sample, checks every step, and records the summary rows.
#pragma once

#include <google/protobuf/text_format.h>

#include "nn/spec.h"
#include "proto/horo.pb.h"

namespace horo::nn::spec_builder {

// `source` names the specification in errors ("net.prototxt", "cnn").
BuiltModel build(const spec::Model& message, const google::protobuf::TextFormat::ParseInfoTree& tree,
                 const std::string& source);

}  // namespace horo::nn::spec_builder
