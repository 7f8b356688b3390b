// Data-parallel training across processes on MPI (Open MPI from Debian, started by mpirun or srun).
//
//   distributed::init();                                    // once per process (idempotent)
//   distributed::broadcast_params(graph.params(), 0);       // every process starts from rank 0's weights
//   optim::Adam opt(params);
//   auto step = graph.compile(loss, opt.minimize(loss, distributed::Reduce::mean));  // gradients averaged
//
// The MPI library is loaded on init() (libxgrad_mpi.so, beside libxgrad): a process that never asks pays
// nothing. Without MPI (a build that found none, or a launch outside mpirun) the world is one process and
// every call below still works: allreduce is the identity, broadcast does nothing.
//
// Collective calls (init, allreduce steps inside a Program, broadcast_params, barrier) must be made by every
// process in the same order, from one thread per process, as with any MPI program.
#pragma once
#include <string>
#include <vector>

#include "core/graph.h"

namespace xgrad::distributed {

enum class Reduce { sum, mean };
Reduce parse_reduce(const std::string& name);  // "sum" | "mean"; ValueError otherwise
const char* reduce_name(Reduce op);

// Whether MPI can be used by this build in this process, and if not, why (built without MPI, or its library
// failed to load).
bool is_available();
std::string why_unavailable();

// Initialises MPI (or joins an MPI that mpi4py or the host program initialised). Without MPI: a world of one,
// unless the process was started by mpirun with more than one process, which is a RuntimeError (the results
// would silently differ from what the job asks for).
void init();
bool is_initialized();
int rank();        // 0 in a world of one
int world_size();  // 1 in a world of one
std::string library();  // the MPI library's version string, or why there is none

// A graph op: the elementwise sum or mean of `x` over all processes (same on every process). Its gradient is
// the allreduce of the incoming gradient, with the same op. Shapes and dtypes are checked across processes
// when it runs: a mismatch is a ValueError on every process, naming the node and each rank's type, raised
// before any data is reduced.
Var allreduce(Var x, Reduce op = Reduce::sum);

inline constexpr std::size_t kDefaultBucketBytes = 1 << 20;

// Several values reduced as buckets: consecutive values (in the order given) packed into flat buckets of at
// most `bucket_bytes` (a value larger than that gets one of its own). Each bucket's reduction starts as soon
// as the Program has computed its members and runs on a communication thread while the Program goes on; the
// Program waits for it only where a result is first read. `names` label the buckets in print(program).
std::vector<Var> allreduce_buckets(const std::vector<Var>& values, Reduce op, std::size_t bucket_bytes = kDefaultBucketBytes,
                                   const std::vector<std::string>& names = {});

// Every process gets root's values of these params (their shapes and dtypes must agree: ValueError otherwise,
// on every process).
void broadcast_params(const std::vector<Var>& params, int root = 0);
void barrier();

// What this process's reductions cost since the last reset: how many, how many bytes, seconds the
// communication thread spent reducing (MPI), and seconds the Programs waited for a result (the part the rest
// of the step did not hide).
struct Stats {
  long long reductions = 0;
  long long bytes = 0;
  double communicating_seconds = 0;
  double waiting_seconds = 0;
};
Stats stats();
void reset_stats();

// Ends every process of the job with this exit code (MPI_Abort); exits this process in a world of one.
[[noreturn]] void abort(int code);

}  // namespace xgrad::distributed
