#include "core/thread_pool.h"

#include <algorithm>
#if defined(__linux__)
#include <sched.h>
#endif
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

// Why the hand-off is built the way it is: on the machines this runs on (small VMs), moving one cache line from
// one core to another takes ~0.3 us, as long as a small kernel's whole split. Every line the caller writes and
// a worker must read before it starts (or the other way round before the caller may return) is on the critical
// path, so a split touches as few as possible: the worker polls one line (the mailbox), claims a task with one
// compare-and-swap on the job's claim word (which holds the generation, the task count and the next index), and
// reports with one increment that the caller polls. No mutex, no allocation, no reference count on the way.
//
// A job lives in a slot that is never freed, only reused, and the generation in the claim word tells a worker
// that reads a slot late that its job is over: it cannot claim a task of a finished job, nor of a newer one it
// was not posted.

namespace xgrad {

namespace {

// After its last task a worker polls for new jobs this long before it sleeps: waking a sleeping thread costs a
// futex call and a trip through the scheduler (tens of microseconds on small VMs), more than the kernels between
// two splits of a training step take. It also bounds the CPU a worker burns after the last split (OpenMP
// runtimes and OpenBLAS do the same). A caller waiting for the last task polls as long.
constexpr auto kPollBeforeSleep = std::chrono::microseconds(100);

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// The claim word: generation (24 bits) | task count (20 bits) | next unclaimed task (20 bits).
constexpr int kTaskBits = 20;
constexpr std::uint64_t kTaskMask = (std::uint64_t(1) << kTaskBits) - 1;
constexpr std::uint64_t kGenMask = (std::uint64_t(1) << 24) - 1;
constexpr std::size_t kMaxTasksPerJob = kTaskMask;

struct Claim {
  std::uint64_t word;
  std::uint64_t gen() const { return word >> (2 * kTaskBits); }
  std::size_t tasks() const { return static_cast<std::size_t>((word >> kTaskBits) & kTaskMask); }
  std::size_t next() const { return static_cast<std::size_t>(word & kTaskMask); }
  static std::uint64_t pack(std::uint64_t gen, std::size_t tasks, std::size_t next) {
    return (gen << (2 * kTaskBits)) | (std::uint64_t(tasks) << kTaskBits) | std::uint64_t(next);
  }
};

struct alignas(64) Slot {
  std::atomic<std::uint64_t> claim{0};
  const std::function<void(std::size_t)>* fn = nullptr;
  std::size_t target = 0;  // `finished` once the current job is done
  std::uint64_t gen = 0;  // written by the owning caller only
  std::uint16_t index = 0;
  alignas(64) std::atomic<std::size_t> finished{0};
  std::atomic<bool> caller_sleeping{false};
  std::mutex mutex;  // guards error; the caller sleeps on `done` with it
  std::condition_variable done;
  std::exception_ptr error;

  // Claims the next task of generation `g`; false once none is left (or the slot has moved on).
  bool claim_task(std::uint64_t g, std::size_t& task, std::size_t& tasks) {
    Claim c{claim.load(std::memory_order_acquire)};
    while (true) {
      if (c.gen() != g || c.next() >= c.tasks()) return false;
      if (claim.compare_exchange_weak(c.word, c.word + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        task = c.next();
        tasks = c.tasks();
        return true;
      }
    }
  }

  // `finished` counts every task the slot ever ran, so a new job needs no reset (a write that would wait on the
  // line coming back from the worker that last incremented it): the job is done at its base + its tasks.
  void run_task(std::size_t task, std::size_t target) {
    try {
      (*fn)(task);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex);
      if (!error) error = std::current_exception();
    }
    // Dekker with the caller's sleep: it sets caller_sleeping, then reads finished (both seq_cst).
    if (finished.fetch_add(1, std::memory_order_seq_cst) + 1 == target && caller_sleeping.load(std::memory_order_seq_cst)) {
      std::lock_guard<std::mutex> lock(mutex);
      done.notify_all();
    }
  }

  void work(std::uint64_t g) {
    std::size_t task, tasks;
    while (claim_task(g, task, tasks)) run_task(task, target);  // a claimed task: target is this job's
  }

  void wait_until_finished(std::size_t target) {
    const auto complete = [&] { return finished.load(std::memory_order_acquire) == target; };
    if (complete()) return;
    // The last task is usually a polling worker's, moments away: poll for it before sleeping.
    const auto until = std::chrono::steady_clock::now() + kPollBeforeSleep;
    for (int spins = 1; !complete(); ++spins) {
      cpu_relax();
      if ((spins & 63) == 0 && std::chrono::steady_clock::now() > until) break;
    }
    if (complete()) return;
    std::unique_lock<std::mutex> lock(mutex);
    caller_sleeping.store(true, std::memory_order_seq_cst);
    done.wait(lock, [&] { return finished.load(std::memory_order_seq_cst) == target; });
    caller_sleeping.store(false, std::memory_order_relaxed);
  }
};

// Slots are handed out to calling threads (one per nesting depth) and returned when the thread ends; they are
// never deleted, so a worker may read any slot at any time.
constexpr std::size_t kMaxSlots = 1 << 16;

struct SlotRegistry {
  std::mutex mutex;
  std::vector<Slot*> all;   // index -> slot
  std::vector<Slot*> free;  // returned by threads that ended
  static SlotRegistry& instance() {
    static SlotRegistry* registry = new SlotRegistry;  // outlives every thread_local that returns slots
    return *registry;
  }
};

// The mailbox word: generation << 16 | slot index. Published slots are read lock-free through this table,
// filled before any index is published.
Slot* g_slot_table[kMaxSlots];

Slot* acquire_slot() {
  SlotRegistry& r = SlotRegistry::instance();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (!r.free.empty()) {
    Slot* s = r.free.back();
    r.free.pop_back();
    return s;
  }
  if (r.all.size() >= kMaxSlots) return nullptr;  // callers then run their tasks themselves
  Slot* s = new Slot;
  s->index = static_cast<std::uint16_t>(r.all.size());
  r.all.push_back(s);
  g_slot_table[s->index] = s;
  return s;
}

// This thread's slots, one per depth of nested run() calls.
struct ThreadSlots {
  std::vector<Slot*> by_depth;
  std::size_t depth = 0;
  ~ThreadSlots() {
    SlotRegistry& r = SlotRegistry::instance();
    std::lock_guard<std::mutex> lock(r.mutex);
    for (Slot* s : by_depth)
      if (s) r.free.push_back(s);
  }
};
thread_local ThreadSlots t_slots;

struct DepthGuard {
  DepthGuard() { ++t_slots.depth; }
  ~DepthGuard() { --t_slots.depth; }
};

void run_serially(std::size_t tasks, const std::function<void(std::size_t)>& fn) {
  std::exception_ptr error;
  for (std::size_t i = 0; i < tasks; ++i) {
    try {
      fn(i);
    } catch (...) {
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace

struct ThreadPool::State {
  alignas(64) std::atomic<std::uint64_t> mailbox{0};  // the latest job posted; workers poll this line
  alignas(64) std::atomic<std::size_t> sleepers{0};
  std::atomic<bool> stopping{false};
  std::mutex mutex;  // for sleeping workers
  std::condition_variable wake;
  std::vector<std::thread> threads;

  // Polls the mailbox until it moves past `seen` or the poll time is up; true if it moved.
  bool poll(std::uint64_t seen) const {
    const auto until = std::chrono::steady_clock::now() + kPollBeforeSleep;
    for (int spins = 1;; ++spins) {
      if (mailbox.load(std::memory_order_acquire) != seen || stopping.load(std::memory_order_relaxed)) return true;
      cpu_relax();
      if ((spins & 63) == 0 && std::chrono::steady_clock::now() > until) return false;
      // Now and then let a thread of another pool (OpenMP's, under oneDNN) have this core; not often, as the
      // system call takes microseconds here.
      if ((spins & 1023) == 0) std::this_thread::yield();
    }
  }

  void worker_loop() {
    std::uint64_t seen = mailbox.load(std::memory_order_acquire);
    while (!stopping.load(std::memory_order_relaxed)) {
      if (!poll(seen)) {
        std::unique_lock<std::mutex> lock(mutex);
        sleepers.fetch_add(1, std::memory_order_seq_cst);
        wake.wait(lock, [&] {
          return stopping.load(std::memory_order_relaxed) || mailbox.load(std::memory_order_acquire) != seen;
        });
        sleepers.fetch_sub(1, std::memory_order_relaxed);
        continue;
      }
      seen = mailbox.load(std::memory_order_acquire);
      if (seen == 0) continue;
      g_slot_table[seen & 0xffff]->work(seen >> 16);
    }
  }

  // A release store, no fence: the caller starts its own task while the line travels. Without the fence a
  // worker that is just going to sleep may miss this post; the caller then runs every task itself (a lost
  // chance to share, never a hang), and the next post wakes the worker.
  void post(const Slot& slot) {
    mailbox.store((slot.gen << 16) | slot.index, std::memory_order_release);
    if (sleepers.load(std::memory_order_relaxed) > 0) {
      std::lock_guard<std::mutex> lock(mutex);
      wake.notify_all();
    }
  }
};

// The cores this process may run on: a process bound to one core (mpirun binds each rank to its own) gets no
// workers, where counting the machine's cores would put a spinning worker on another process's core.
std::size_t usable_cores() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool& ThreadPool::instance() {
  static ThreadPool pool(usable_cores() - 1);
  return pool;
}

ThreadPool::ThreadPool(std::size_t workers) : state_(new State) {
  for (std::size_t w = 0; w < workers; ++w) state_->threads.emplace_back([s = state_] { s->worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stopping.store(true);
  }
  state_->wake.notify_all();
  for (auto& t : state_->threads) t.join();
  delete state_;
}

std::size_t ThreadPool::workers() const { return state_->threads.size(); }

void ThreadPool::run(std::size_t tasks, const std::function<void(std::size_t)>& fn) {
  if (tasks == 0) return;
  if (tasks == 1 || state_->threads.empty()) return run_serially(tasks, fn);
  if (tasks > kMaxTasksPerJob) {  // more than a claim word counts: in rounds
    std::exception_ptr error;
    for (std::size_t first = 0; first < tasks; first += kMaxTasksPerJob) {
      const std::size_t count = std::min(kMaxTasksPerJob, tasks - first);
      try {
        run(count, [&](std::size_t i) { fn(first + i); });
      } catch (...) {
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
    return;
  }
  const std::size_t depth = t_slots.depth;
  if (t_slots.by_depth.size() <= depth) t_slots.by_depth.resize(depth + 1, nullptr);
  if (!t_slots.by_depth[depth]) t_slots.by_depth[depth] = acquire_slot();
  Slot* slot = t_slots.by_depth[depth];
  if (!slot) return run_serially(tasks, fn);
  DepthGuard nested;  // a task that calls run() uses the next slot

  // Every task of this slot's previous job finished before that run() returned, so no worker writes to it
  // now; a late one reads an old generation from the claim word and leaves.
  slot->gen = (slot->gen + 1) & kGenMask;
  if (slot->gen == 0) slot->gen = 1;  // mailbox 0 means "nothing posted yet"
  slot->fn = &fn;
  slot->target = slot->finished.load(std::memory_order_relaxed) + tasks;
  // The caller keeps task 0: a kernel that splits its data the same way on every call then finds its part in
  // the same core's cache each time (with two cores, the worker always gets part 1).
  slot->claim.store(Claim::pack(slot->gen, tasks, 1), std::memory_order_release);
  state_->post(*slot);
  slot->run_task(0, slot->target);
  slot->work(slot->gen);
  slot->wait_until_finished(slot->target);
  std::exception_ptr error;
  std::swap(error, slot->error);
  if (error) std::rethrow_exception(error);
}

}  // namespace xgrad
