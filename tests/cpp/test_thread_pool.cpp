// The thread pool that splits large kernels: every task runs once, the caller keeps task 0, workers that
// poll and workers that went to sleep both take part, exceptions come back to the caller, and runs nest and
// overlap from many threads. Also built into the ThreadSanitizer binary (make test-tsan).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/thread_pool.h"

using xgrad::ThreadPool;

namespace {

void busy_for(std::chrono::microseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
}

}  // namespace

TEST(ThreadPool, EveryTaskRunsExactlyOnce) {
  ThreadPool& pool = ThreadPool::instance();
  for (std::size_t tasks : {1u, 2u, 3u, 7u, 64u}) {
    for (int rep = 0; rep < 200; ++rep) {  // back to back: the workers are polling
      std::vector<std::atomic<int>> runs(tasks);
      pool.run(tasks, [&](std::size_t i) { runs[i].fetch_add(1); });
      for (std::size_t i = 0; i < tasks; ++i) ASSERT_EQ(runs[i].load(), 1) << "task " << i << " of " << tasks;
    }
  }
}

TEST(ThreadPool, TheCallerRunsTaskZero) {
  ThreadPool& pool = ThreadPool::instance();
  const auto caller = std::this_thread::get_id();
  for (int rep = 0; rep < 100; ++rep) {
    std::thread::id ran_zero;
    pool.run(2, [&](std::size_t i) {
      if (i == 0) ran_zero = std::this_thread::get_id();
    });
    ASSERT_EQ(ran_zero, caller);
  }
}

TEST(ThreadPool, SleepingWorkersWakeAndTakePart) {
  ThreadPool& pool = ThreadPool::instance();
  if (pool.workers() == 0) GTEST_SKIP() << "one hardware thread: the pool has no workers";
  int shared_runs = 0;
  for (int rep = 0; rep < 20; ++rep) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // longer than the workers poll: they sleep
    std::mutex m;
    std::set<std::thread::id> threads;
    pool.run(2, [&](std::size_t) {
      busy_for(std::chrono::milliseconds(3));  // long enough for a sleeping worker to wake and claim task 1
      std::lock_guard<std::mutex> lock(m);
      threads.insert(std::this_thread::get_id());
    });
    shared_runs += threads.size() == 2;
  }
  EXPECT_GT(shared_runs, 0) << "a woken worker never took part";
}

TEST(ThreadPool, ExceptionsReachTheCallerAndThePoolKeepsWorking) {
  ThreadPool& pool = ThreadPool::instance();
  for (std::size_t thrower : {0u, 1u, 3u}) {
    std::atomic<int> ran{0};
    EXPECT_THROW(pool.run(4, [&](std::size_t i) {
      ran.fetch_add(1);
      if (i == thrower) throw std::runtime_error("task failed");
    }), std::runtime_error);
    EXPECT_EQ(ran.load(), 4) << "every task still runs";
  }
  std::atomic<int> after{0};
  pool.run(8, [&](std::size_t) { after.fetch_add(1); });
  EXPECT_EQ(after.load(), 8);
}

TEST(ThreadPool, RunsNestAndOverlapFromManyThreads) {
  ThreadPool& pool = ThreadPool::instance();
  std::atomic<long> total{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&] {
      for (int rep = 0; rep < 200; ++rep)
        pool.run(3, [&](std::size_t) { pool.run(2, [&](std::size_t) { total.fetch_add(1); }); });
    });
  for (auto& c : callers) c.join();
  EXPECT_EQ(total.load(), 4L * 200 * 3 * 2);
}

TEST(ThreadPool, MoreTasksThanOneJobCounts) {  // a job's claim word counts 2^20 - 1 tasks; more run in rounds
  ThreadPool& pool = ThreadPool::instance();
  const std::size_t tasks = (std::size_t(1) << 20) + 3;
  std::vector<std::uint8_t> runs(tasks, 0);
  pool.run(tasks, [&](std::size_t i) { runs[i] += 1; });  // each index is written by one task only
  std::size_t once = 0;
  for (auto r : runs) once += r == 1;
  EXPECT_EQ(once, tasks);
}

TEST(ThreadPool, SlotsOfEndedThreadsAreReused) {  // callers come and go (a service's request threads)
  ThreadPool& pool = ThreadPool::instance();
  std::atomic<long> total{0};
  for (int round = 0; round < 50; ++round) {
    std::vector<std::thread> callers;
    for (int t = 0; t < 3; ++t)
      callers.emplace_back([&] {
        for (int rep = 0; rep < 20; ++rep)
          pool.run(2, [&](std::size_t) { pool.run(3, [&](std::size_t) { total.fetch_add(1); }); });
      });
    for (auto& c : callers) c.join();
  }
  EXPECT_EQ(total.load(), 50L * 3 * 20 * 2 * 3);
}
