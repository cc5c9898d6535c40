#include "head/inflight_table.hpp"

namespace zgrid::head {

void InflightTable::add_batch(std::uint64_t first, std::uint64_t count, std::uint64_t node,
                              Millis backstop) {
  auto& list = by_node_[node];
  auto it = list.emplace(list.end());
  it->first = first;
  it->count = count;
  it->node = node;
  it->self = it;
  last_ = &*it;
  if (backstop > 0) backstops_.push({backstop, first, count});
}

void InflightTable::add(std::uint64_t task, InFlight f) {
  ++last_->live;
  tasks_.emplace(task, Entry{std::move(f), last_});
}

InFlight InflightTable::take(TaskMap::iterator it) {
  InFlight f = std::move(it->second.f);
  Batch* b = it->second.batch;
  tasks_.erase(it);
  if (--b->live == 0) {
    if (last_ == b) last_ = nullptr;
    auto node = by_node_.find(b->node);
    node->second.erase(b->self);
    if (node->second.empty()) by_node_.erase(node);
  }
  return f;
}

std::optional<InFlight> InflightTable::release(std::uint64_t task, std::uint64_t node) {
  auto it = tasks_.find(task);
  if (it == tasks_.end() || it->second.f.node != node) return std::nullopt;
  return take(it);
}

std::vector<InflightTable::Task> InflightTable::release_node(std::uint64_t node) {
  std::vector<Task> out;
  auto n = by_node_.find(node);
  if (n == by_node_.end()) return out;
  // Collect first: taking the last task of a batch erases the batch.
  std::vector<std::uint64_t> ids;
  for (const Batch& b : n->second)
    for (std::uint64_t t = b.first; t < b.first + b.count; ++t)
      if (auto it = tasks_.find(t); it != tasks_.end() && it->second.batch == &b) ids.push_back(t);
  out.reserve(ids.size());
  for (std::uint64_t t : ids) out.emplace_back(t, take(tasks_.find(t)));
  return out;
}

std::vector<InflightTable::Task> InflightTable::release_overdue(Millis now) {
  std::vector<Task> out;
  while (!backstops_.empty() && backstops_.top().deadline <= now) {
    Backstop b = backstops_.top();
    backstops_.pop();
    for (std::uint64_t t = b.first; t < b.first + b.count; ++t) {
      auto it = tasks_.find(t);
      // Gone, or a different send of the same id range (never: ids are not reused).
      if (it == tasks_.end() || it->second.f.backstop != b.deadline) continue;
      out.emplace_back(t, take(it));
    }
  }
  return out;
}

std::size_t InflightTable::on_node(std::uint64_t node) const {
  auto n = by_node_.find(node);
  if (n == by_node_.end()) return 0;
  std::size_t k = 0;
  for (const Batch& b : n->second) k += b.live;
  return k;
}

}  // namespace zgrid::head
