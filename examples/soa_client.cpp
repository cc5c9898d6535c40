// The SOA tutorial's pattern with the zgrid client library, in two runs of
// one program:
//
//   soa_client submit HEAD N    create a durable session, send N requests,
//                               EndRequests, print the session id, exit
//   soa_client collect HEAD ID  attach to the session by id (any process,
//                               any time later) and print every response
//
// Build: part of the zgrid build (build/examples/soa_client), or on its own
// against an installed zgrid: find_package(zgrid CONFIG REQUIRED) and
// target_link_libraries(soa_client PRIVATE zgrid::client) (docs/operations.md).
// It includes nothing of zgrid but <zgrid/client.hpp>.
#include <cstdio>
#include <cstdlib>
#include <string>

#include <zgrid/client.hpp>

using zgrid::client::BrokerClient;
using zgrid::client::Connection;

static int usage() {
  std::fprintf(stderr, "usage: soa_client submit HEAD N | soa_client collect HEAD SESSION_ID\n");
  return 2;
}

static int fail(const zgrid::Status& st) {
  std::fprintf(stderr, "soa_client: error: %s\n", st.message().c_str());
  return 2;
}

int main(int argc, char** argv) {
  if (argc != 4) return usage();
  std::string mode = argv[1];
  zgrid::client::ClientOptions options;
  options.head = argv[2];
  auto conn = Connection::open(options);
  if (!conn.ok()) return fail(conn.status());

  if (mode == "submit") {
    long n = std::strtol(argv[3], nullptr, 10);
    if (n <= 0) return usage();
    // Create a durable session bound to a service (HPC Pack: Session.CreateSession).
    zgrid::proto::CreateSession request;
    request.service = "factorize";
    request.durable = true;
    auto info = (*conn)->create_session(request);
    if (!info.ok()) return fail(info.status());
    // One sender (BrokerClient); user_data travels with each request and comes back.
    auto client = BrokerClient::open(**conn, info->session_id, "soa-example");
    if (!client.ok()) return fail(client.status());
    for (long i = 1; i <= n; ++i) {
      std::string number = std::to_string(1'000'000'007LL * i);
      zgrid::Status st = (*client)->send(number, "request " + std::to_string(i));
      if (!st.ok()) return fail(st);
    }
    // EndRequests: committed. The results are the session's now; we may exit.
    zgrid::Status st = (*client)->end_requests();
    if (!st.ok()) return fail(st);
    std::printf("%s\n", info->session_id.c_str());
    return 0;
  }

  if (mode == "collect") {
    // Attach by id (HPC Pack: DurableSession.AttachSession) and read every
    // response from the beginning; waits until the session is complete.
    std::string id = argv[3];
    auto info = (*conn)->attach(id);
    if (!info.ok()) return fail(info.status());
    zgrid::client::ResponseStream responses(**conn, id);
    zgrid::proto::Response r;
    int faults = 0;
    while (true) {
      auto more = responses.next(&r, 60'000);
      if (!more.ok()) return fail(more.status());
      if (!*more) break;
      if (r.ok()) {
        std::printf("%s: %s\n", r.user_data.c_str(), r.data.c_str());
      } else {
        ++faults;
        std::printf("%s: error: %s: %s\n", r.user_data.c_str(), r.fault_code.c_str(),
                    r.data.c_str());
      }
    }
    return faults > 0 ? 1 : 0;
  }
  return usage();
}
