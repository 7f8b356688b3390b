#include "core/thread_pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace xgrad {

namespace {
// One call of run(): its tasks are claimed by index until none remain.
struct Job {
  const std::function<void(std::size_t)>* fn;
  std::size_t tasks;
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> finished{0};
  std::exception_ptr error;  // guarded by mutex
  std::mutex mutex;
  std::condition_variable done;

  // Claims and runs tasks until none are left; returns when this thread has no more to claim.
  void work() {
    for (std::size_t i; (i = next.fetch_add(1)) < tasks;) run_task(i);
  }

  void run_task(std::size_t i) {
    try {
      (*fn)(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex);
      if (!error) error = std::current_exception();
    }
    if (finished.fetch_add(1, std::memory_order_acq_rel) + 1 == tasks) {
      std::lock_guard<std::mutex> lock(mutex);  // the caller may be between its check and its wait
      done.notify_all();
    }
  }
  bool complete() const { return finished.load(std::memory_order_acquire) == tasks; }
};
}  // namespace

// After its last task a worker polls for new jobs this long before it sleeps. Waking a sleeping thread costs
// a futex call and a trip through the scheduler (tens of microseconds on small VMs), more than the kernels
// between two splits of a training step take; the poll keeps back-to-back splits at a few hundred
// nanoseconds, and bounds the CPU a worker burns after the last one. (OpenMP runtimes and OpenBLAS do the same.)
constexpr auto kPollBeforeSleep = std::chrono::microseconds(100);

static void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

struct ThreadPool::State {
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::shared_ptr<Job>> jobs;  // jobs that may still have unclaimed tasks
  std::atomic<std::uint64_t> posted{0};   // jobs ever pushed: pollers watch it change
  std::size_t sleepers = 0;               // workers waiting on `wake` (guarded by mutex)
  bool stopping = false;
  std::vector<std::thread> threads;

  // Removes jobs whose tasks have all been claimed from the front of the queue (mutex held).
  void drop_claimed() {
    while (!jobs.empty() && jobs.front()->next.load() >= jobs.front()->tasks) jobs.pop_front();
  }

  // Polls `posted` until it moves past `seen` or the poll time is up; true if it moved.
  bool poll(std::uint64_t seen) const {
    const auto until = std::chrono::steady_clock::now() + kPollBeforeSleep;
    for (int spins = 0;; ++spins) {
      if (posted.load(std::memory_order_acquire) != seen) return true;
      cpu_relax();
      if ((spins & 63) == 63 && std::chrono::steady_clock::now() > until) return false;
      // Now and then let a thread of another pool (OpenMP's, under oneDNN) have this core; not often, as the
      // system call takes microseconds here.
      if ((spins & 1023) == 1023) std::this_thread::yield();
    }
  }
};

ThreadPool& ThreadPool::instance() {
  static ThreadPool pool(std::max(1u, std::thread::hardware_concurrency()) - 1);
  return pool;
}

ThreadPool::ThreadPool(std::size_t workers) : state_(new State) {
  for (std::size_t w = 0; w < workers; ++w)
    state_->threads.emplace_back([s = state_] {
      while (true) {
        std::shared_ptr<Job> job;
        std::uint64_t seen;
        {
          std::unique_lock<std::mutex> lock(s->mutex);
          s->drop_claimed();
          if (s->stopping) return;
          if (!s->jobs.empty()) job = s->jobs.front();
          seen = s->posted.load(std::memory_order_relaxed);
        }
        if (job) {
          job->work();
          continue;
        }
        if (s->poll(seen)) continue;
        std::unique_lock<std::mutex> lock(s->mutex);
        ++s->sleepers;
        s->wake.wait(lock, [&] { return s->stopping || s->posted.load(std::memory_order_relaxed) != seen; });
        --s->sleepers;
      }
    });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stopping = true;
  }
  state_->wake.notify_all();
  for (auto& t : state_->threads) t.join();
  delete state_;
}

std::size_t ThreadPool::workers() const { return state_->threads.size(); }

void ThreadPool::run(std::size_t tasks, const std::function<void(std::size_t)>& fn) {
  if (tasks == 0) return;
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->tasks = tasks;
  const bool shared = tasks > 1 && !state_->threads.empty();
  // The caller keeps task 0 for itself: a kernel that splits its data the same way on every call then finds
  // its part in the same core's cache each time (with two cores, the worker always gets part 1).
  if (shared) {
    job->next.store(1, std::memory_order_relaxed);
    bool sleeping;
    {
      std::lock_guard<std::mutex> lock(state_->mutex);
      state_->jobs.push_back(job);
      state_->posted.fetch_add(1, std::memory_order_release);
      sleeping = state_->sleepers > 0;
    }
    if (sleeping) state_->wake.notify_all();  // pollers see `posted` move without a system call
    job->run_task(0);
  }
  job->work();
  // The last task is usually a polling worker's, moments away: poll for it before sleeping on the condition.
  if (!job->complete()) {
    const auto until = std::chrono::steady_clock::now() + kPollBeforeSleep;
    for (int spins = 0; !job->complete(); ++spins) {
      cpu_relax();
      if ((spins & 63) == 63 && std::chrono::steady_clock::now() > until) {
        std::unique_lock<std::mutex> lock(job->mutex);
        job->done.wait(lock, [&] { return job->complete(); });
        break;
      }
    }
  }
  if (job->error) std::rethrow_exception(job->error);
}

}  // namespace xgrad
