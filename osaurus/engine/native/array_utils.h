// Small helpers the ops share: argument errors that name the op, and inputs as contiguous bytes.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "mlx/array.h"
#include "mlx/backend/common/utils.h"

namespace osaurus {

namespace mx = mlx::core;

template <typename... Args>
[[noreturn]] inline void fail(const char* op, Args&&... args) {
  std::ostringstream msg;
  msg << op << ": ";
  (msg << ... << args);
  throw std::invalid_argument(msg.str());
}

inline std::string shape_of(const mx::array& a) {
  std::ostringstream s;
  s << "(";
  for (int i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
  s << (a.ndim() == 1 ? ",)" : ")");
  return s.str();
}

// An input as contiguous bytes: its own buffer when it is already row-contiguous, else a copy
// (a weight is loaded contiguous; x may be a view, e.g. a transposed one).
struct Contiguous {
  const uint8_t* data;
  std::vector<uint8_t> copy;

  explicit Contiguous(const mx::array& a) {
    if (a.flags().row_contiguous) {
      data = a.data<uint8_t>();
      return;
    }
    const size_t item = a.itemsize();
    copy.resize(a.size() * item);
    const uint8_t* src = a.data<uint8_t>();
    // Whole rows at a time when the last axis is dense (the usual view), else element by element.
    const bool dense_rows = a.ndim() > 0 && a.strides().back() == 1;
    const size_t run = dense_rows ? size_t(a.shape(-1)) : 1;
    for (size_t i = 0; i < a.size(); i += run)
      std::memcpy(copy.data() + i * item,
                  src + mx::elem_to_loc(int(i), a.shape(), a.strides()) * item, run * item);
    data = copy.data();
  }
};

// Memory for a primitive's intermediate results, not zeroed. `reused` is the call site's own
// thread_local vector: grown as needed and kept for the next call, where a std::vector(n) in
// every call had malloc'd and zeroed it again (memset, malloc and free: ~4% of all CPU in a perf
// profile of batch-8 decoding, on the engine's serial thread). Above kScratchReuseBytes (a
// prompt's buffers) a call gets memory of its own, so that a thread does not hold its largest
// buffer for good.
constexpr size_t kScratchReuseBytes = size_t(1) << 20;

template <typename T>
class Scratch {
 public:
  Scratch(std::vector<T>& reused, size_t n) {
    if (n * sizeof(T) <= kScratchReuseBytes) {
      if (reused.size() < n) reused.resize(n);
      data_ = reused.data();
    } else {
      own_.reset(new T[n]);
      data_ = own_.get();
    }
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  T* data() const { return data_; }
  T& operator[](size_t i) const { return data_[i]; }

 private:
  std::unique_ptr<T[]> own_;
  T* data_;
};

}  // namespace osaurus
