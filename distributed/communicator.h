// What the MPI plugin (libxgrad_mpi.so, distributed/mpi_communicator.cpp) provides to the library. The library
// itself never includes <mpi.h> nor links libmpi: a process that does not train across processes loads
// neither, and a build without MPI still builds and runs (as a world of one process).
// Internal: not installed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace xgrad::distributed {

class Communicator {
 public:
  virtual ~Communicator() = default;
  // MPI_Init_thread unless MPI is initialised already (by mpi4py, or by the host program); idempotent.
  virtual void init() = 0;
  virtual bool initialized() const = 0;
  // The thread support MPI gave: calls may come from a thread other than the one that initialised MPI only
  // at MPI_THREAD_SERIALIZED or above (never two at once; the library serializes its own calls).
  virtual bool any_thread() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In place over every process, element by element.
  virtual void allreduce_sum(void* data, std::int64_t count, DType dtype) = 0;
  virtual void allreduce_max(std::int64_t* data, int count) = 0;
  // recv holds size() * bytes: every process's `bytes` in rank order.
  virtual void allgather(const void* send, std::size_t bytes, void* recv) = 0;
  virtual void broadcast(void* data, std::size_t bytes, int root) = 0;
  virtual void barrier() = 0;
  [[noreturn]] virtual void abort(int code) = 0;
  virtual std::string library() const = 0;  // "Open MPI v4.1.4, ..."
};

// Called once by the plugin when it is loaded.
void register_communicator(Communicator* communicator);

}  // namespace xgrad::distributed
