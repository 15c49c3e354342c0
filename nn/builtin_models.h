// The texts of models/*.prototxt, compiled into the library (nn/builtin_models.cpp is generated).
#pragma once

#include <map>
#include <string>

namespace horo::nn {
const std::map<std::string, std::string>& builtin_model_texts();
}  // namespace horo::nn
