#include "head/inflight_table.hpp"

namespace zgrid::head {

void InflightTable::add_batch(std::uint64_t first, std::uint64_t count, std::uint64_t node,
                              Millis backstop) {
  if (count == 0) return;
  // Ids only grow: the new record goes at the end (amortized constant).
  if (!records_.empty() && records_.rbegin()->first >= first) return;  // ids are never reused
  auto it = records_.emplace_hint(records_.end(), first, Record{});
  Record& r = it->second;
  r.self = it;
  r.first = first;
  r.count = count;
  r.node = node;
  r.backstop = backstop;
  if (!spare_.empty()) {
    r.requests = std::move(spare_.back());
    spare_.pop_back();
  }
  r.requests.reserve(count);
  if (count > 64) r.taken_big.assign((count + 63) / 64, 0);
  NodeList& list = by_node_[node];
  r.prev = list.tail;
  if (list.tail)
    list.tail->next = &r;
  else
    list.head = &r;
  list.tail = &r;
  last_ = &r;
  if (backstop > 0) backstops_.push({backstop, first});
}

void InflightTable::add(std::uint64_t task, std::uint64_t session, Millis started,
                        int svc_max_retries, Request&& req) {
  Record* r = last_;
  if (r == nullptr || task != r->first + r->requests.size() || r->requests.size() >= r->count)
    return;  // not the next task of the message add_batch() began: a caller's bug
  if (r->requests.empty()) {
    r->session = session;
    r->started = started;
    r->svc_max_retries = svc_max_retries;
  }
  r->requests.push_back(std::move(req));
  ++r->live;
  ++live_;
}

InflightTable::Record* InflightTable::find(std::uint64_t task, std::uint64_t node) {
  if (last_ && last_->holds(task)) return last_;
  Record* found = nullptr;
  if (auto n = by_node_.find(node); n != by_node_.end()) {
    int k = 0;
    for (Record* r = n->second.head; r && k < 8; r = r->next, ++k)
      if (r->holds(task)) {
        found = r;
        break;
      }
  }
  if (!found) {
    auto it = records_.upper_bound(task);
    if (it == records_.begin()) return nullptr;
    found = &std::prev(it)->second;
    if (!found->holds(task)) return nullptr;
  }
  last_ = found;
  return found;
}

void InflightTable::take(Record* r, std::uint64_t i, InFlight* f) {
  r->set_taken(i);
  --live_;
  f->session = r->session;
  f->node = r->node;
  f->started = r->started;
  f->backstop = r->backstop;
  f->request = std::move(r->requests[i]);
  f->svc_max_retries = r->svc_max_retries;
  if (--r->live > 0) return;
  // Its last task: the record leaves.
  if (last_ == r) last_ = nullptr;
  auto node = by_node_.find(r->node);
  NodeList& list = node->second;
  (r->prev ? r->prev->next : list.head) = r->next;
  (r->next ? r->next->prev : list.tail) = r->prev;
  if (list.head == nullptr) by_node_.erase(node);
  if (spare_.size() < 64 && r->requests.capacity() <= 1024) {
    r->requests.clear();
    spare_.push_back(std::move(r->requests));
  }
  records_.erase(r->self);
}

bool InflightTable::release(std::uint64_t task, std::uint64_t node, InFlight* out) {
  Record* r = find(task, node);
  if (r == nullptr || r->node != node) return false;
  std::uint64_t i = task - r->first;
  if (r->taken(i)) return false;  // answered already: a duplicate or late report
  take(r, i, out);
  return true;
}

std::optional<InFlight> InflightTable::release(std::uint64_t task, std::uint64_t node) {
  InFlight f;
  if (!release(task, node, &f)) return std::nullopt;
  return f;
}

std::vector<InflightTable::Task> InflightTable::release_node(std::uint64_t node) {
  std::vector<Task> out;
  auto n = by_node_.find(node);
  if (n == by_node_.end()) return out;
  std::size_t k = 0;
  for (const Record* r = n->second.head; r; r = r->next) k += r->live;
  out.reserve(k);
  // Taking a record's last task erases it (and, at the end, the list).
  for (Record* r = n->second.head; r;) {
    Record* next = r->next;
    const std::uint64_t first = r->first, sent = r->requests.size();
    for (std::uint64_t i = 0; i < sent; ++i) {
      if (r->taken(i)) continue;
      bool last = r->live == 1;
      out.emplace_back(first + i, take(r, i));
      if (last) break;
    }
    r = next;
  }
  return out;
}

std::vector<InflightTable::Task> InflightTable::release_overdue(Millis now) {
  std::vector<Task> out;
  while (!backstops_.empty() && backstops_.top().deadline <= now) {
    Backstop b = backstops_.top();
    backstops_.pop();
    auto it = records_.find(b.first);
    if (it == records_.end()) continue;  // every task of it left already
    Record* r = &it->second;
    const std::uint64_t sent = r->requests.size();
    for (std::uint64_t i = 0; i < sent; ++i) {
      if (r->taken(i)) continue;
      bool last = r->live == 1;
      out.emplace_back(b.first + i, take(r, i));
      if (last) break;
    }
  }
  return out;
}

std::size_t InflightTable::on_node(std::uint64_t node) const {
  auto n = by_node_.find(node);
  if (n == by_node_.end()) return 0;
  std::size_t k = 0;
  for (const Record* r = n->second.head; r; r = r->next) k += r->live;
  return k;
}

}  // namespace zgrid::head
