// The MPI plugin (libxgrad_mpi.so): the one file that includes <mpi.h>. Opened by distributed/distributed.cpp
// on the first distributed call; links libmpi, and binds to xgrad's symbols in whichever library opened it.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <string>

#include "core/error.h"
#include "distributed/communicator.h"

namespace xgrad::distributed {

namespace {

void check(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw RuntimeError(std::string("MPI: ") + what + " failed: " + std::string(text, static_cast<std::size_t>(length)));
}

MPI_Datatype mpi_type(DType dtype) {
  switch (dtype) {
    case DType::float32: return MPI_FLOAT;
    case DType::float64: return MPI_DOUBLE;
    case DType::int64: return MPI_INT64_T;
    default: throw TypeError(std::string("allreduce: no MPI type for ") + dtype_name(dtype));
  }
}

class MpiCommunicator final : public Communicator {
 public:
  void init() override {
    int already = 0;
    MPI_Initialized(&already);
    if (!already) {
      int provided = 0;
      check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread");
      owns_ = true;
    }
    int level = MPI_THREAD_SINGLE;
    MPI_Query_thread(&level);
    any_thread_ = level >= MPI_THREAD_SERIALIZED;
    // Errors come back as codes (turned into exceptions) rather than aborting inside MPI.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    initialized_ = true;
  }
  bool initialized() const override { return initialized_; }
  bool any_thread() const override { return any_thread_; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void allreduce_sum(void* data, std::int64_t count, DType dtype) override {
    const MPI_Datatype type = mpi_type(dtype);
    char* p = static_cast<char*>(data);
    const std::size_t item = itemsize(dtype);
    for (std::int64_t done = 0; done < count;) {  // MPI counts are ints
      const int n = static_cast<int>(std::min<std::int64_t>(count - done, INT_MAX / 2));
      check(MPI_Allreduce(MPI_IN_PLACE, p + static_cast<std::size_t>(done) * item, n, type, MPI_SUM, MPI_COMM_WORLD),
            "MPI_Allreduce");
      done += n;
    }
  }
  void allreduce_max(std::int64_t* data, int count) override {
    check(MPI_Allreduce(MPI_IN_PLACE, data, count, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
  }
  void allgather(const void* send, std::size_t bytes, void* recv) override {
    check(MPI_Allgather(send, static_cast<int>(bytes), MPI_BYTE, recv, static_cast<int>(bytes), MPI_BYTE, MPI_COMM_WORLD),
          "MPI_Allgather");
  }
  void broadcast(void* data, std::size_t bytes, int root) override {
    char* p = static_cast<char*>(data);
    for (std::size_t done = 0; done < bytes;) {
      const int n = static_cast<int>(std::min<std::size_t>(bytes - done, INT_MAX / 2));
      check(MPI_Bcast(p + done, n, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
      done += static_cast<std::size_t>(n);
    }
  }
  void barrier() override { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }
  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }
  std::string library() const override {
    char text[MPI_MAX_LIBRARY_VERSION_STRING];
    int length = 0;
    MPI_Get_library_version(text, &length);
    std::string s(text, static_cast<std::size_t>(length));
    const std::size_t end = s.find_first_of(",\n");
    return end == std::string::npos ? s : s.substr(0, end);
  }

  ~MpiCommunicator() override {
    // MPI is finalised by whoever initialised it; this plugin's own init is finalised at exit when no other
    // process is left waiting (a clean exit of every rank).
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns_ && !finalized) MPI_Finalize();
  }

 private:
  bool initialized_ = false, owns_ = false, any_thread_ = false;
  int rank_ = 0, size_ = 1;
};

// Registered when the plugin is opened.
struct Registration {
  Registration() { register_communicator(&communicator); }
  MpiCommunicator communicator;
} registration;

}  // namespace

}  // namespace xgrad::distributed
