#include "node/node.hpp"

#include <unistd.h>

#include <string>
#include <thread>

#include "common/util.hpp"
#include "common/zmq_util.hpp"
#include "node/io_loop.hpp"
#include "node/worker_pool.hpp"
#include "services/host.hpp"

namespace zgrid::node {

std::string default_node_id() {
  return hostname() + "-" + std::to_string(getpid()) + "-" + random_id64().substr(0, 6);
}

Status run_node(const NodeOptions& options, const svc::Registry& registry,
                const std::atomic<bool>& stop) {
  ZG_RETURN_IF_ERROR(Validate(options));
  NodeOptions o = options;
  int workers = o.workers > 0 ? o.workers : static_cast<int>(std::thread::hardware_concurrency());
  if (workers <= 0) workers = 1;
  if (o.node_id.empty()) o.node_id = default_node_id();
  if (!valid_name(o.node_id))
    return Status::InvalidArgument("--node-id must be 1..64 printable characters");
  auto host = svc::Host::start(registry, o.services, workers);
  if (!host.ok()) return host.status();

  zmq::context_t ctx(1);
  std::string results_ep = "inproc://zgrid-node-results";
  zmq::socket_t pull(ctx, zmq::socket_type::pull);
  pull.set(zmq::sockopt::linger, 0);
  pull.set(zmq::sockopt::rcvhwm, 0);
  pull.bind(results_ep);  // before the workers connect their PUSHes

  WorkerPool pool(ctx, results_ep, **host, workers, o.hooks.faulty);
  IoLoop io(o, ctx, pool, **host);
  Status st = io.run(pull, stop);
  (*host)->cancel_all();        // exec workers waiting on a reply give up
  pool.stop();                  // workers finish their runs; joined
  (*host)->end_all_sessions();  // closed before the Host (and its pools) go
  return st;
}

}  // namespace zgrid::node
