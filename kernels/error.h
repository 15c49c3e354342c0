// horo's exception types. Library code throws these; only a program's main() prints and exits.
// Every message says what was expected, what came, and names the thing (layer, tensor, file).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace horo {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// A tensor's shape, rank or channel count is not what an op or layer expects.
class ShapeError : public Error { using Error::Error; };
// An argument or option is outside its valid range (a label, a kernel size, a learning rate).
class ValueError : public Error { using Error::Error; };
// The tensor's dtype or device does not suit the op.
class TypeError : public Error { using Error::Error; };
// A file is missing, unreadable, truncated or not in the expected format.
class IOError : public Error { using Error::Error; };
// A NaN or infinity where a finite number is required (the loss, a layer's output).
class NumericError : public Error { using Error::Error; };
// Memory for a tensor could not be had (torch.OutOfMemoryError); the message gives its shape and size.
class OutOfMemoryError : public Error { using Error::Error; };
// The backend (CUDA, cuBLAS, MPI, NCCL, HDF5) reported a failure.
class BackendError : public Error { using Error::Error; };

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}
// `text` as a JSON string literal, quotes included.
std::string json_quote(const std::string& text);
}  // namespace detail

}  // namespace horo

// HORO_CHECK(cond, ErrorType, message parts...): throws ErrorType(message) when cond is false.
#define HORO_CHECK(cond, ErrorType, ...)                            \
  do {                                                              \
    if (!(cond)) throw ErrorType(::horo::detail::concat(__VA_ARGS__)); \
  } while (0)
