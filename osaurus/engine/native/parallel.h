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

// Calls fn(begin, end) over [0, n) in contiguous chunks that are multiples of `align`, on all
// threads when `work` (a rough count of multiply-adds) is worth them. Threads take chunks as
// they go (about 8 per thread) rather than one fixed share each: in a server other threads
// (the event loop, gRPC) take cores too, and with fixed shares every matmul would wait for
// whichever thread was descheduled. A chunk is at least `min_chunk` of the n (where the caller
// sets it): a matmul that streams its weights from memory restarts the prefetchers at every
// chunk, which costs more on a small matrix than an idle thread's wait would.
//
// A second thread pays only on matrices big enough: for the small ones of a 135M model waking
// it costs more than it saves, as the other core runs MLX's scheduling and Python
// (bench/profile.py at batch 1, MLX's layout: ~62 -> ~75 tokens/s when 1 << 17 became 1 << 22).
// Kernels that do less work per weight set a lower bar (kernels_r16.h).
constexpr int64_t kMinWorkPerThread = 1 << 22;

template <typename Fn>
void parallel_rows(int64_t n, int64_t align, int64_t work, Fn&& fn,
                   int64_t min_work_per_thread = kMinWorkPerThread, int64_t min_chunk = 0) {
  const int threads = int(
      std::min<int64_t>(max_threads(), std::max<int64_t>(1, work / min_work_per_thread)));
  if (threads <= 1) {
    fn(int64_t(0), n);
    return;
  }
  const int64_t units = (n + align - 1) / align;
  const int64_t per_chunk = std::min<int64_t>(
      std::max<int64_t>({1, units / (8 * threads), (min_chunk + align - 1) / align}),
      (units + threads - 1) / threads);  // never fewer chunks than threads
  const int64_t chunks = (units + per_chunk - 1) / per_chunk;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = c * per_chunk * align, end = std::min(n, (c + 1) * per_chunk * align);
    if (begin < end) fn(begin, end);
  }
#else
  fn(int64_t(0), n);
#endif
}

}  // namespace osaurus
