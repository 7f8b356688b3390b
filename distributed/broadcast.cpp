// broadcast_params: every process gets root's param values. Types are compared first (one allgather of a
// small signature), so a mismatch is an error on every process instead of a hang or a torn buffer.
#include <functional>

#include "core/error.h"
#include "core/op.h"
#include "distributed/collectives.h"
#include "distributed/communicator.h"
#include "distributed/distributed.h"

namespace xgrad::distributed {

void broadcast_params(const std::vector<Var>& params, int root) {
  for (const Var& p : params)
    if (!p || p->kind() != NodeKind::param)
      throw ValueError("broadcast_params: can only broadcast params, got '" + (p ? p.name() : std::string("?")) + "'");
  const int size = world_size();
  if (root < 0 || root >= size)
    throw ValueError("broadcast_params: root " + std::to_string(root) + " is not a rank of this world of " + std::to_string(size));
  if (size == 1) return;
  Communicator* comm = detail::communicator();
  std::string mine;
  std::size_t h = params.size();
  for (const Var& p : params) {
    mine += (mine.empty() ? "" : ", ") + p.name() + ": " + to_string(p->type());
    h = h * 1000003u ^ std::hash<std::string>()(p.name() + to_string(p->type()));
  }
  detail::run_collective([&] {
    std::int64_t check[2] = {static_cast<std::int64_t>(h & 0x3fffffffffffffffULL), -static_cast<std::int64_t>(h & 0x3fffffffffffffffULL)};
    const std::int64_t expect = check[0];
    comm->allreduce_max(check, 2);
    if (check[0] != expect || check[1] != -expect)
      throw ValueError("broadcast_params: the processes hold different params (names, shapes or dtypes), so nothing was "
                       "sent:" + detail::describe_ranks(comm, mine));
    for (const Var& p : params) {
      Tensor host = p.node()->value().device() == Device::cpu ? p.node()->value() : p.node()->value().to(Device::cpu);
      if (!host.is_contiguous()) host = host.copy();
      comm->broadcast(host.raw_data(), static_cast<std::size_t>(host.numel()) * itemsize(host.dtype()), root);
      if (host.storage() != p.node()->value().storage()) p.node()->set_value(host);
    }
  });
}

}  // namespace xgrad::distributed
