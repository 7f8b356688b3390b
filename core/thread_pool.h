// A process-wide pool of worker threads for splitting large kernels. The
// caller runs task 0 itself, takes part in the rest and blocks until every
// task is done. A thread waiting in run() only ever runs tasks of its own job
// (it never picks up another job's work), so a task may call run() again
// (nested splits) and runs from many threads can share the pool without
// deadlock; it also means a task's thread_local scratch is never re-entered.
#pragma once
#include <cstddef>
#include <functional>

namespace xgrad {

class ThreadPool {
 public:
  static ThreadPool& instance();  // usable cores (the process's CPU affinity) - 1 workers; none on one core
  std::size_t workers() const;

  // Runs fn(0) ... fn(tasks - 1) on the workers and the calling thread; rethrows
  // the first exception a task threw once all tasks have finished.
  void run(std::size_t tasks, const std::function<void(std::size_t)>& fn);

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool();

 private:
  explicit ThreadPool(std::size_t workers);
  struct State;
  State* state_;
};

}  // namespace xgrad
