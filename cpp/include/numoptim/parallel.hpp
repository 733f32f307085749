// One parallel region for the drivers, safe in a forked child.
//
// GNU OpenMP (libgomp) keeps its worker threads parked for the next region. A child of
// fork() inherits that pool's bookkeeping but not its threads, so its first parallel
// region waits forever for workers that do not exist (the default start method of
// Python's multiprocessing on Linux is fork). A pthread_atfork handler marks the child;
// there the same region runs on freshly created std::threads instead, so a forked child
// steps as fast as its parent. LLVM's and Intel's OpenMP runtimes would cope, but the
// wheel ships libgomp, so the child never touches OpenMP at all.
#pragma once

#include <omp.h>
#include <pthread.h>

#include <atomic>
#include <thread>
#include <vector>

namespace numoptim {

namespace detail {

inline std::atomic<bool> in_forked_child{false};

inline void mark_forked_child() { in_forked_child.store(true, std::memory_order_relaxed); }

// Registered once, when the library is loaded: the handler must be in place before any
// fork, whether or not this process has stepped yet.
inline const bool fork_handler_registered =
    pthread_atfork(nullptr, nullptr, &mark_forked_child) == 0;

}  // namespace detail

// Whether this process is a child of fork() (of a process that had loaded numoptim).
inline bool forked_child() {
  (void)detail::fork_handler_registered;
  return detail::in_forked_child.load(std::memory_order_relaxed);
}

// Runs body(thread, threads) once for each thread = 0 .. threads-1, concurrently, and
// returns when all have finished: an OpenMP region, or std::threads in a forked child.
template <class Body>
void parallel_region(int num_threads, const Body& body) {
  const std::size_t threads = num_threads > 1 ? static_cast<std::size_t>(num_threads) : 1;
  if (forked_child()) {
    std::vector<std::thread> workers;
    workers.reserve(threads - 1);
    for (std::size_t t = 1; t < threads; ++t) workers.emplace_back([&body, t, threads] {
      body(t, threads);
    });
    body(std::size_t(0), threads);
    for (std::thread& w : workers) w.join();
    return;
  }
#pragma omp parallel num_threads(static_cast<int>(threads))
  body(static_cast<std::size_t>(omp_get_thread_num()),
       static_cast<std::size_t>(omp_get_num_threads()));
}

}  // namespace numoptim
