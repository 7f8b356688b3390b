// The library's side of MPI: the loaded communicator (or a world of one), and the communication thread that
// runs every MPI call of the process in one order. Internal: used by distributed/*.cpp only.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "core/dtype.h"
#include "core/tensor.h"
#include "distributed/distributed.h"

namespace xgrad::distributed {
class Communicator;
}

namespace xgrad::distributed::detail {

// The communicator once init() ran with MPI present; nullptr in a world of one.
Communicator* communicator();

// Whether there are other processes to reduce with (false in a world of one: a bucket is its own result).
bool reducing();

// Runs fn with the communicator on the communication thread, in submission order, and waits for it
// (exceptions come back). Inline on this thread when MPI allows calls from one thread only.
void run_collective(const std::function<void()>& fn);

// Starts reducing the buffer `data` (count elements) over every process; finish() waits for it. `signature`
// (dtype and shapes) must match on every process and `description` says what it is for the error that names
// each rank's. In a world of one: nothing to do (the buffer already holds the sum and the mean).
void start_allreduce(void* data, std::int64_t count, DType dtype, Reduce op, std::int64_t signature, std::string description);
// For a result on a device: `host` (a CPU tensor holding the packed values) is reduced and, when finished,
// copied into `device_out`; the job is known by device_out's address.
void start_allreduce_through_host(Tensor host, Tensor device_out, Reduce op, std::int64_t signature, std::string description);
// Every process's `description` ("\n  rank r: ..." lines), for an error that all processes raise alike (a
// collective call: every process makes it).
std::string describe_ranks(Communicator* comm, const std::string& description);
// Waits for the reduction of `data` (a no-op when none was started); ValueError when the processes disagreed.
void finish_allreduce(void* data);

}  // namespace xgrad::distributed::detail
