// One parallel region for the drivers, safe in a forked child.
//
// GNU OpenMP (libgomp) keeps its worker threads parked for the next region. A child of
// fork() inherits that pool's bookkeeping but not its threads, so its first parallel
// region waits forever for workers that do not exist (the default start method of
// Python's multiprocessing on Linux is fork). A pthread_atfork handler marks the child;
// there the same region runs on a pool of std::threads that the child starts on first
// use and keeps, so a forked child steps as fast as its parent. LLVM's and Intel's OpenMP runtimes would cope, but the
// wheel ships libgomp, so the child never touches OpenMP at all.
#pragma once

#include <omp.h>
#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

namespace numoptim {

namespace detail {

// Worker threads for the parallel regions of a forked child, started on first use and
// kept for the next region, as OpenMP keeps its own. Each region runs body(t, threads)
// for t = 1 .. threads-1 on the workers and t = 0 on the caller. The pool is never
// destroyed: its threads run until the process exits.
class ThreadPool {
 public:
  template <class Body>
  void run(std::size_t threads, const Body& body) {
    std::lock_guard<std::mutex> one_region_at_a_time(run_mutex_);
    const std::function<void(std::size_t)> task = [&](std::size_t t) { body(t, threads); };
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (workers_ + 1 < threads) {
        // A new worker starts from the generation before this region's, so it takes
        // part in this region however late it first gets the lock.
        std::thread(&ThreadPool::work, this, ++workers_, generation_.load()).detach();
      }
      task_ = &task;
      threads_ = threads;
      pending_.store(threads - 1);
      generation_.fetch_add(1);
    }
    wake_.notify_all();
    body(std::size_t(0), threads);
    spin_while([&] { return pending_.load(std::memory_order_acquire) != 0; });
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_.load() == 0; });
  }

 private:
  // Waits by spinning for a while before sleeping, as OpenMP's threads do: waking a
  // sleeping thread costs tens of microseconds, a step on a large group about 200.
  template <class Condition>
  static void spin_while(const Condition& condition) {
    for (int i = 0; i < 4096 && condition(); ++i) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#else
      std::this_thread::yield();
#endif
    }
  }

  void work(std::size_t index, std::uint64_t seen) {
    for (;;) {
      spin_while([&] { return generation_.load(std::memory_order_acquire) == seen; });
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
      seen = generation_.load();
      if (index >= threads_) continue;  // this region needs fewer threads
      const auto* task = task_;
      lock.unlock();
      (*task)(index);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> done_lock(mutex_);
        done_.notify_one();
      }
    }
  }

  std::mutex run_mutex_, mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(std::size_t)>* task_ = nullptr;  // guarded by mutex_
  std::size_t workers_ = 0, threads_ = 0;                   // guarded by mutex_
  std::atomic<std::size_t> pending_{0};
  std::atomic<std::uint64_t> generation_{0};
};

// The forked child's pool; null until its first parallel region. A child of the child
// needs a pool of its own (the threads do not survive fork either), so every fork
// forgets the pool it inherited, leaking it: it cannot be destroyed safely there.
inline std::atomic<ThreadPool*> fork_child_pool{nullptr};

inline std::atomic<bool> in_forked_child{false};

inline void mark_forked_child() {
  in_forked_child.store(true, std::memory_order_relaxed);
  fork_child_pool.store(nullptr, std::memory_order_relaxed);
}

// Registered once, when the library is loaded: the handler must be in place before any
// fork, whether or not this process has stepped yet.
inline const bool fork_handler_registered =
    pthread_atfork(nullptr, nullptr, &mark_forked_child) == 0;

inline ThreadPool& fork_child_pool_instance() {
  ThreadPool* pool = fork_child_pool.load();
  if (pool == nullptr) {
    auto* fresh = new ThreadPool();
    if (fork_child_pool.compare_exchange_strong(pool, fresh)) {
      pool = fresh;
    } else {
      delete fresh;  // another thread made one first; `pool` holds it
    }
  }
  return *pool;
}

}  // namespace detail

// Whether this process is a child of fork() (of a process that had loaded numoptim).
inline bool forked_child() {
  (void)detail::fork_handler_registered;
  return detail::in_forked_child.load(std::memory_order_relaxed);
}

// Runs body(thread, threads) once for each thread = 0 .. threads-1, concurrently, and
// returns when all have finished: an OpenMP region, or the pool's threads in a forked
// child.
template <class Body>
void parallel_region(int num_threads, const Body& body) {
  const std::size_t threads = num_threads > 1 ? static_cast<std::size_t>(num_threads) : 1;
  if (forked_child()) {
    if (threads == 1) return body(std::size_t(0), threads);
    return detail::fork_child_pool_instance().run(threads, body);
  }
#pragma omp parallel num_threads(static_cast<int>(threads))
  body(static_cast<std::size_t>(omp_get_thread_num()),
       static_cast<std::size_t>(omp_get_num_threads()));
}

}  // namespace numoptim
