#include "core/thread_pool.h"

#include <atomic>
#include <condition_variable>
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
  std::size_t finished = 0;  // guarded by mutex
  std::exception_ptr error;  // guarded by mutex
  std::mutex mutex;
  std::condition_variable done;

  // Claims and runs tasks until none are left; returns when this thread has no more to claim.
  void work() {
    for (std::size_t i; (i = next.fetch_add(1)) < tasks;) {
      std::exception_ptr e;
      try {
        (*fn)(i);
      } catch (...) {
        e = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mutex);
      if (e && !error) error = e;
      if (++finished == tasks) done.notify_all();
    }
  }
};
}  // namespace

struct ThreadPool::State {
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::shared_ptr<Job>> jobs;  // jobs that may still have unclaimed tasks
  bool stopping = false;
  std::vector<std::thread> threads;
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
        {
          std::unique_lock<std::mutex> lock(s->mutex);
          s->wake.wait(lock, [&] { return s->stopping || !s->jobs.empty(); });
          if (s->stopping) return;
          job = s->jobs.front();
          if (job->next.load() >= job->tasks) {  // fully claimed: drop it and look again
            s->jobs.pop_front();
            continue;
          }
        }
        job->work();
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
  if (tasks > 1 && !state_->threads.empty()) {
    {
      std::lock_guard<std::mutex> lock(state_->mutex);
      state_->jobs.push_back(job);
    }
    state_->wake.notify_all();
  }
  job->work();
  std::unique_lock<std::mutex> lock(job->mutex);
  job->done.wait(lock, [&] { return job->finished == job->tasks; });
  if (job->error) std::rethrow_exception(job->error);
}

}  // namespace xgrad
