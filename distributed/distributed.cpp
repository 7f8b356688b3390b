#include "distributed/distributed.h"

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "core/device.h"
#include "core/error.h"
#include "core/plugin.h"
#include "core/thread_pool.h"
#include "distributed/collectives.h"
#include "distributed/communicator.h"

namespace xgrad::distributed {

namespace {

Communicator*& registered() {
  static Communicator* communicator = nullptr;
  return communicator;
}

std::string& load_error() {
  static std::string error;
  return error;
}

// libxgrad_mpi.so (core/plugin.h), opened RTLD_GLOBAL: Open MPI loads its own components (mca_*.so) with
// dlopen, and they bind to libmpi's symbols, which must therefore be global.
void load_plugin() {
#if defined(XGRAD_HAVE_MPI)
  load_error() = open_plugin("libxgrad_mpi.so", "the MPI plugin", true);
  if (load_error().empty() && !registered()) load_error() = "libxgrad_mpi.so loaded but registered no communicator";
#else
  load_error() = "this xgrad was built without MPI (CMake found no MPI; install libopenmpi-dev and rebuild)";
#endif
}

Communicator* plugin() {
  static std::once_flag loaded;
  std::call_once(loaded, load_plugin);
  return registered();
}

// How many processes the launcher started, from its environment (Open MPI's mpirun, PMI launchers, srun);
// 1 when none says. Only read to refuse running as a world of one inside a larger job.
int launched_size() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"})
    if (const char* v = std::getenv(var)) {
      const int n = std::atoi(v);
      if (n > 1) return n;
    }
  return 1;
}

// ---- the communication thread ----

// One buffer to reduce over every process, and what the processes must agree on first.
struct Reduction {
  void* data = nullptr;
  std::int64_t count = 0;
  DType dtype = DType::float32;
  Reduce op = Reduce::sum;
  std::int64_t signature = 0;
  std::string description;
};

struct Job {
  std::function<void()> fn;
  bool done = false;
  std::exception_ptr error;
  Reduction reduction;
  Tensor host, device_out;  // a device result: reduced in `host`, copied to device_out when finished
};

struct Executor {
  std::mutex mutex;
  std::condition_variable work, finished;
  std::deque<std::shared_ptr<Job>> queue;
  std::thread thread;
  bool stopping = false;

  Executor() {
    thread = std::thread([this] {
      std::unique_lock<std::mutex> lock(mutex);
      while (true) {
        work.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty()) return;  // stopping, and nothing left
        auto job = queue.front();
        queue.pop_front();
        lock.unlock();
        try {
          job->fn();
        } catch (...) {
          job->error = std::current_exception();
        }
        lock.lock();
        job->done = true;
        finished.notify_all();
      }
    });
  }
  ~Executor() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stopping = true;
    }
    work.notify_all();
    thread.join();
  }
  std::shared_ptr<Job> submit(std::function<void()> fn) {
    auto job = std::make_shared<Job>();
    job->fn = std::move(fn);
    enqueue(job);
    return job;
  }
  void enqueue(const std::shared_ptr<Job>& job) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      queue.push_back(job);
    }
    work.notify_one();
  }
  void wait(const std::shared_ptr<Job>& job) {
    std::unique_lock<std::mutex> lock(mutex);
    finished.wait(lock, [&] { return job->done; });
  }
};

struct World {
  std::mutex mutex;
  bool initialized = false;
  Communicator* comm = nullptr;  // null: a world of one
  std::unique_ptr<Executor> executor;  // when MPI takes calls from any thread
  // Reductions started and not yet finished, by buffer.
  std::mutex pending_mutex;
  std::unordered_map<void*, std::shared_ptr<Job>> pending;
  std::vector<std::shared_ptr<Job>> deferred;  // without a communication thread: reduced at the first wait
  std::mutex stats_mutex;
  Stats stats;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

World& world() {
  static World* w = new World;  // never destroyed: the communication thread may outlive static destructors
  return *w;
}

// The packed host values into a (contiguous) result on a device.
void copy_to_device(Tensor& device_out, const Tensor& host) {
  require_device(device_out.device())
      .copy_to_device(device_out.raw_data(), host.raw_data(), static_cast<std::size_t>(host.numel()) * itemsize(host.dtype()));
}

template <class T>
void scale(void* data, std::int64_t count, double factor) {
  T* p = static_cast<T*>(data);
  const T f = static_cast<T>(factor);
  for (std::int64_t i = 0; i < count; ++i) p[i] *= f;
}

}  // namespace

void register_communicator(Communicator* communicator) { registered() = communicator; }

Reduce parse_reduce(const std::string& name) {
  if (name == "sum") return Reduce::sum;
  if (name == "mean") return Reduce::mean;
  throw ValueError("allreduce: op must be 'sum' or 'mean', got '" + name + "'");
}

const char* reduce_name(Reduce op) { return op == Reduce::sum ? "sum" : "mean"; }

bool is_available() { return plugin() != nullptr; }

std::string why_unavailable() {
  plugin();
  return registered() ? std::string() : load_error();
}

void init() {
  World& w = world();
  std::lock_guard<std::mutex> lock(w.mutex);
  if (w.initialized) return;
  Communicator* comm = plugin();
  if (!comm) {
    if (const int n = launched_size(); n > 1)
      throw RuntimeError("distributed.init: this process was started as one of " + std::to_string(n) +
                         " processes, but " + load_error());
    w.initialized = true;  // a world of one
    return;
  }
  comm->init();
  w.comm = comm;
  // The communication thread needs a core of its own to overlap anything: MPI busy-polls while it waits for
  // the other processes, and on a process bound to one core (mpirun's default for a rank per core) that
  // polling would take the core from the step it is meant to overlap. There the reductions run inline.
  if (comm->size() > 1 && comm->any_thread() && ThreadPool::instance().workers() > 0) w.executor = std::make_unique<Executor>();
  w.initialized = true;
}

bool is_initialized() {
  World& w = world();
  std::lock_guard<std::mutex> lock(w.mutex);
  return w.initialized;
}

int rank() {
  init();
  return world().comm ? world().comm->rank() : 0;
}

int world_size() {
  init();
  return world().comm ? world().comm->size() : 1;
}

std::string library() {
  Communicator* comm = plugin();
  return comm ? comm->library() : "no MPI: " + load_error();
}

void barrier() {
  init();
  if (world_size() > 1) detail::run_collective([] { world().comm->barrier(); });
}

Stats stats() {
  World& w = world();
  std::lock_guard<std::mutex> lock(w.stats_mutex);
  return w.stats;
}

void reset_stats() {
  World& w = world();
  std::lock_guard<std::mutex> lock(w.stats_mutex);
  w.stats = Stats{};
}

void abort(int code) {
  World& w = world();
  if (w.comm && w.comm->size() > 1) w.comm->abort(code);
  std::exit(code);
}

namespace detail {

bool reducing() {
  init();
  return world().comm && world().comm->size() > 1;
}

Communicator* communicator() {
  init();
  return world().comm;
}

namespace {
void run_deferred(World& w);
}

std::string describe_ranks(Communicator* comm, const std::string& description) {
  constexpr std::size_t kWidth = 400;  // each process's text, cut to a fixed size for one allgather
  char mine[kWidth] = {};
  std::strncpy(mine, description.c_str(), kWidth - 1);
  std::string all(kWidth * static_cast<std::size_t>(comm->size()), '\0');
  comm->allgather(mine, kWidth, all.data());
  std::string ranks;
  for (int rank = 0; rank < comm->size(); ++rank)
    ranks += "\n  rank " + std::to_string(rank) + ": " + std::string(all.c_str() + kWidth * static_cast<std::size_t>(rank));
  return ranks;
}

void run_collective(const std::function<void()>& fn) {
  World& w = world();
  if (!w.executor) {
    run_deferred(w);  // MPI calls keep the order they were made in
    return fn();
  }
  auto job = w.executor->submit(fn);
  w.executor->wait(job);
  if (job->error) std::rethrow_exception(job->error);
}

namespace {
std::shared_ptr<Job> submit_allreduce(void* data, std::int64_t count, DType dtype, Reduce op, std::int64_t signature,
                                      std::string description);
}

void start_allreduce(void* data, std::int64_t count, DType dtype, Reduce op, std::int64_t signature, std::string description) {
  init();
  World& w = world();
  if (!w.comm || w.comm->size() == 1) return;
  auto job = submit_allreduce(data, count, dtype, op, signature, std::move(description));
  std::lock_guard<std::mutex> lock(w.pending_mutex);
  w.pending[data] = std::move(job);
}

void start_allreduce_through_host(Tensor host, Tensor device_out, Reduce op, std::int64_t signature, std::string description) {
  init();
  World& w = world();
  if (!w.comm || w.comm->size() == 1) return;  // nothing to reduce: device_out holds the packed values
  auto job = submit_allreduce(host.raw_data(), host.numel(), host.dtype(), op, signature, std::move(description));
  job->host = std::move(host);
  job->device_out = device_out;
  std::lock_guard<std::mutex> lock(w.pending_mutex);
  w.pending[device_out.raw_data()] = std::move(job);
}

namespace {
// Agree on what is reduced before reducing it: the maximum of (s, -s) is (s, -s) everywhere only when every
// process has the same s. One call checks a batch of reductions; the error of each that disagrees names every
// rank's description of it (all processes see the same maxima, so they all gather the same ones).
std::vector<std::exception_ptr> check_agreement(Communicator* comm, const std::vector<const Reduction*>& batch) {
  std::vector<std::int64_t> check;
  for (const Reduction* r : batch) check.insert(check.end(), {r->signature, -r->signature, r->count, -r->count});
  comm->allreduce_max(check.data(), static_cast<int>(check.size()));
  std::vector<std::exception_ptr> errors(batch.size());
  for (std::size_t k = 0; k < batch.size(); ++k) {
    const Reduction& r = *batch[k];
    const std::int64_t* c = check.data() + 4 * k;
    if (c[0] == r.signature && c[1] == -r.signature && c[2] == r.count && c[3] == -r.count) continue;
    errors[k] = std::make_exception_ptr(ValueError("allreduce: the processes disagree on what to reduce (shapes or "
                                                   "dtypes differ), so nothing was reduced:" + describe_ranks(comm, r.description)));
  }
  return errors;
}

void reduce(Communicator* comm, const Reduction& r) {
  World& w = world();
  const auto t0 = std::chrono::steady_clock::now();
  comm->allreduce_sum(r.data, r.count, r.dtype);
  if (r.op == Reduce::mean) {
    const double f = 1.0 / comm->size();
    if (r.dtype == DType::float32) scale<float>(r.data, r.count, f);
    else if (r.dtype == DType::float64) scale<double>(r.data, r.count, f);
    else throw TypeError("allreduce: mean needs a floating dtype");
  }
  std::lock_guard<std::mutex> lock(w.stats_mutex);
  ++w.stats.reductions;
  w.stats.bytes += r.count * static_cast<long long>(itemsize(r.dtype));
  w.stats.communicating_seconds += seconds_since(t0);
}

// Every deferred reduction, in the order they were started (the same on every process): one agreement check
// for all, then the reductions back to back. Reducing them together costs one wait for the slowest process
// instead of one per bucket; with no second core nothing could overlap them anyway.
void run_deferred(World& w) {
  std::vector<std::shared_ptr<Job>> batch;
  batch.swap(w.deferred);
  if (batch.empty()) return;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<const Reduction*> reductions;
  for (const auto& job : batch) reductions.push_back(&job->reduction);
  std::vector<std::exception_ptr> errors;
  try {
    errors = check_agreement(w.comm, reductions);
  } catch (...) {
    errors.assign(batch.size(), std::current_exception());
  }
  {
    std::lock_guard<std::mutex> lock(w.stats_mutex);
    w.stats.communicating_seconds += seconds_since(t0);
  }
  for (std::size_t k = 0; k < batch.size(); ++k) {
    batch[k]->error = errors[k];
    if (!errors[k]) {
      try {
        reduce(w.comm, batch[k]->reduction);
      } catch (...) {
        batch[k]->error = std::current_exception();
      }
    }
    batch[k]->done = true;
  }
}

std::shared_ptr<Job> submit_allreduce(void* data, std::int64_t count, DType dtype, Reduce op, std::int64_t signature,
                                      std::string description) {
  World& w = world();
  auto job = std::make_shared<Job>();
  job->reduction = Reduction{data, count, dtype, op, signature, std::move(description)};
  if (!w.executor) {  // one core, or MPI takes calls from the initialising thread only: at the first wait
    w.deferred.push_back(job);
    return job;
  }
  Communicator* comm = w.comm;
  const Reduction* r = &job->reduction;  // the job owns its function: r lives as long as the function can run
  job->fn = [comm, r] {
    if (auto error = check_agreement(comm, {r})[0]) std::rethrow_exception(error);
    reduce(comm, *r);
  };
  w.executor->enqueue(job);
  return job;
}
}  // namespace

void finish_allreduce(void* data) {
  World& w = world();
  std::shared_ptr<Job> job;
  {
    std::lock_guard<std::mutex> lock(w.pending_mutex);
    auto found = w.pending.find(data);
    if (found == w.pending.end()) return;
    job = std::move(found->second);
    w.pending.erase(found);
  }
  if (!job->done && !w.executor) run_deferred(w);
  if (w.executor) {
    const auto t0 = std::chrono::steady_clock::now();
    w.executor->wait(job);
    std::lock_guard<std::mutex> lock(w.stats_mutex);
    w.stats.waiting_seconds += seconds_since(t0);
  }
  if (job->error) std::rethrow_exception(job->error);
  if (job->device_out.defined()) copy_to_device(job->device_out, job->host);
}

}  // namespace detail

}  // namespace xgrad::distributed
