// Splitting a kernel's output rows over the CPU cores.
//
// OpenMP's runtime (libgomp) keeps its workers spinning briefly between parallel regions and
// then sleeping, which is what a decode step made of many short matmuls wants; we do not
// write our own pool. Small jobs stay on the calling thread: waking workers costs more than
// they would save.
#pragma once

#include <algorithm>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace osaurus {

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// Calls fn(begin, end) over [0, n) in contiguous chunks that are multiples of `align`, one per
// thread, when `work` (a rough count of multiply-adds) is worth the threads.
template <typename Fn>
void parallel_rows(int64_t n, int64_t align, int64_t work, Fn&& fn) {
  constexpr int64_t kMinWorkPerThread = 1 << 17;
  const int threads = int(std::min<int64_t>(max_threads(), std::max<int64_t>(1, work / kMinWorkPerThread)));
  if (threads <= 1) {
    fn(int64_t(0), n);
    return;
  }
  const int64_t units = (n + align - 1) / align;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t begin = std::min(n, units * t / nt * align);
    const int64_t end = std::min(n, units * (t + 1) / nt * align);
    if (begin < end) fn(begin, end);
  }
#else
  fn(int64_t(0), n);
#endif
}

}  // namespace osaurus
