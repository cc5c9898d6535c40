// Resubmit (docs/operations.md, "Resubmitting what faulted"): a durable
// session's stored requests, the faulted ones picked by their responses, and
// a new session made of them. Part of the client library (Connection).
#include <zgrid/client.hpp>

#include <algorithm>
#include <unordered_map>

#include "client/transport.hpp"
#include "common/protocol.hpp"

namespace zgrid::client {

Result<Connection::RequestsPage> Connection::stored_requests(const std::string& session_id,
                                                             std::uint64_t from_id,
                                                             std::uint64_t max) {
  max = std::clamp<std::uint64_t>(max, 1, proto::kMaxBatchItems);
  proto::Requests q{session_id, from_id, max};
  auto r = t_->call(proto::encode_requests(t_->next_corr(), q), proto::kRequestsReply,
                    options().timeout_ms);
  if (!r.ok()) return r.status();
  proto::RequestsReply m;
  if (Status st = proto::decode_requests_reply((*r)->env, &m); !st.ok())
    return Status::Protocol("malformed requests reply: " + st.message());
  RequestsPage page;
  page.next_id = m.next_id;
  page.end = m.end;
  page.requests.reserve(m.items.size());
  for (auto& it : m.items)
    page.requests.push_back({it.request_id, std::move(it.user_data), std::move(it.payload), {}});
  if (!page.end && page.next_id <= from_id)
    return Status::Protocol("requests reply does not move forward");
  return page;
}

Result<std::vector<Connection::StoredRequest>> Connection::faulted_requests(
    const std::string& session_id, const std::vector<std::string>& codes) {
  auto st = session_status(session_id);
  if (!st.ok()) return st.status();
  if (!st->boolean("durable"))
    return Status::FailedPrecondition(
        "session " + session_id +
        " is interactive: the head keeps the requests of durable sessions only (submit with "
        "--durable to resubmit later)");
  if (!st->boolean("complete"))
    return Status::FailedPrecondition("session " + session_id +
                                      " is not complete yet: wait for it (zgrid wait " +
                                      session_id + "), then resubmit");
  // Which requests faulted, and how: from its responses.
  std::unordered_map<std::uint64_t, std::string> faults;
  std::uint64_t cursor = 0;
  while (true) {
    auto page = fetch(session_id, cursor, 16384, 0);
    if (!page.ok()) return page.status();
    for (auto& r : page->responses) {
      if (r.ok()) continue;
      if (!codes.empty() && std::find(codes.begin(), codes.end(), r.fault_code) == codes.end())
        continue;
      faults.emplace(r.request_id, std::move(r.fault_code));
    }
    if (page->responses.empty() || page->next_cursor <= cursor) break;
    cursor = page->next_cursor;
  }
  std::vector<StoredRequest> out;
  if (faults.empty()) return out;
  std::uint64_t from = 0;
  while (out.size() < faults.size()) {
    auto page = stored_requests(session_id, from);
    if (!page.ok()) return page.status();
    for (auto& q : page->requests) {
      auto f = faults.find(q.request_id);
      if (f == faults.end()) continue;
      q.fault_code = f->second;
      q.user_data = std::to_string(q.request_id);
      out.push_back(std::move(q));
    }
    if (page->end) break;
    from = page->next_id;
  }
  return out;
}

Result<proto::SessionInfo> Connection::resubmit(const std::string& session_id,
                                                const std::vector<std::string>& codes,
                                                proto::CreateSession request) {
  if (!request.durable)
    return Status::InvalidArgument(
        "resubmit() makes a durable session; for an interactive one send faulted_requests() "
        "through a BrokerClient, which receives the results");
  auto original = attach(session_id);
  if (!original.ok()) return original.status();
  auto picked = faulted_requests(session_id, codes);
  if (!picked.ok()) return picked.status();
  if (picked->empty())
    return Status::NotFound("session " + session_id + " has no faulted requests" +
                            (codes.empty() ? std::string() : " with those fault codes") +
                            ": nothing to resubmit");
  if (request.service.empty()) request.service = original->service;
  auto info = create_session(request);
  if (!info.ok()) return info.status();
  auto bc = BrokerClient::open(*this, info->session_id, "resubmit-of-" + session_id.substr(0, 8));
  if (!bc.ok()) return bc.status();
  for (const auto& q : *picked) ZG_RETURN_IF_ERROR((*bc)->send(q.payload, q.user_data));
  ZG_RETURN_IF_ERROR((*bc)->end_requests());
  return info;
}

}  // namespace zgrid::client
