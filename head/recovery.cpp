#include "head/recovery.hpp"

#include <algorithm>
#include <set>

#include "head/journal_records.hpp"

namespace zgrid::head {

// Walks the records of one kind (all sessions, or one session's range),
// their values read and checked. A record that cannot be read stops the
// walk with its error, except corrupt response records ('A'): those are
// reported to `corrupt` and skipped (their requests then count as not
// answered and run again: docs/operations.md, "Journal corruption").
Status scan_records(const JournalReader& j, const std::string& prefix, const RecordFn& fn,
                    const std::function<void(std::string_view key)>& corrupt) {
  auto c = j.cursor(prefix);
  if (!c) return Status::Unavailable("the journal is being reopened");
  for (c->seek(prefix); c->valid(); c->next()) {
    std::string_view key = c->key();
    if (key.size() < 1 + kSessionIdLength) continue;
    std::string_view v;
    Status st = c->value(&v);
    if (!st.ok()) {
      if (JournalReader::is_corruption(st) && key[0] == jkey::kAnswers && corrupt) {
        corrupt(key);
        continue;
      }
      return Status(st.code(), "journal record " + jkey::describe(key) + ": " + st.message());
    }
    ZG_RETURN_IF_ERROR(fn(key, key.substr(1, kSessionIdLength), v));
  }
  return Status::OK();
}

Status corrupt_record(std::string_view key) {
  return Status::DataLoss("journal record " + jkey::describe(key) +
                          " is corrupt: refusing to guess (docs/operations.md, \"Journal "
                          "corruption\": zgrid-head --data-dir DIR --purge-session ID)");
}

bool apply_answer_record(Session& s, std::string_view key, std::string_view v,
                         AnswerCounts* added) {
  std::uint64_t count = 0;
  bool intact = for_each_answer(v, &count, [&](const AnswerItem& a) {
    if (!a.intact || s.is_answered(a.request_id)) return true;  // recorded once
    const Client* c = s.client_of(a.request_id);
    if (c == nullptr || c->removed()) return true;
    s.record_answer(a.request_id, s.index_of(*c), a.ok);
    if (!a.ok && !ran_on_instance(a.fault)) s.answered_by_head(a.request_id);
    ++(a.ok ? added->done : added->faulted);
    if (!a.ok) ++added->faulted_by_code[std::string(a.fault)];
    return true;
  });
  s.next_resp_seq = std::max<std::uint64_t>(s.next_resp_seq, jkey::number_of(key) + count);
  return intact;
}

Status recover_sessions(const JournalReader& j, SessionTable& t, Millis now, std::int64_t wall_now,
                        RecoveryReport* report) {
  ZG_RETURN_IF_ERROR(scan_records(j, std::string(1, jkey::kTombstone),
                                  [&](std::string_view, std::string_view sid, std::string_view) {
                                    t.add_tombstone(std::string(sid));
                                    return Status::OK();
                                  }));
  // A session from its record ('S', or the one inside an 'M').
  auto make_session = [&](std::string_view sid, SessionRecord rec) {
    Session* s = &t.create(rec.owner, std::string(sid));
    s->service = std::move(rec.service);
    s->created_wall = rec.created;
    s->client_idle_timeout_ms = rec.client_idle_timeout_ms;
    s->restore_state(rec.state);
    s->task_timeout_ms = rec.task_timeout_ms;
    s->deadline_wall = rec.deadline;
    s->stateful = rec.stateful;
    t.set_token(*s, std::move(rec.token));  // a resent create_session finds it
    if (s->deadline_wall > 0)
      s->deadline = now + std::max<std::int64_t>(0, s->deadline_wall - wall_now) * 1000;
    s->durable = true;
    s->last_activity = now;
    return s;
  };
  ZG_RETURN_IF_ERROR(
      scan_records(j, std::string(1, jkey::kSession),
                   [&](std::string_view key, std::string_view sid, std::string_view v) {
                     SessionRecord rec;
                     if (!SessionRecord::decode(v, &rec)) return corrupt_record(key);
                     make_session(sid, std::move(rec));
                     return Status::OK();
                   }));
  // One-message sessions: session, client, batch and index in one record.
  // An 'S' record of the same session is newer (a cancel) and stands.
  ZG_RETURN_IF_ERROR(scan_records(
      j, std::string(1, jkey::kOneMessage),
      [&](std::string_view key, std::string_view sid, std::string_view v) {
        OneMessageRecord rec;
        if (!OneMessageRecord::decode(v, &rec)) return corrupt_record(key);
        Session* s = t.find(std::string(sid));
        if (s == nullptr) s = make_session(sid, std::move(rec.session));
        if (s->find_client(rec.client_id) != nullptr) return corrupt_record(key);
        Client c;
        c.id = rec.client_id;
        c.acked_seq = c.accepted_seq = rec.acked_seq;
        c.flushed_id = c.max_id = rec.max_id;
        c.last_activity = now;
        std::uint32_t ci = s->add_client(std::move(c), rec.sent, /*ended=*/true, false);
        if (rec.n > 0) {
          BatchRef b;
          b.first_id = rec.first_request_id;
          b.n = static_cast<std::uint32_t>(rec.n);
          b.client = ci;
          b.one_record = true;
          s->add_batch(std::move(b), v.size());
        } else {
          s->add_journal_bytes(v.size());
        }
        return Status::OK();
      }));
  ZG_RETURN_IF_ERROR(
      scan_records(j, std::string(1, jkey::kClient),
                   [&](std::string_view key, std::string_view sid, std::string_view v) {
                     Session* s = t.find(std::string(sid));
                     if (!s) return Status::OK();
                     // A one-message session's client is in its 'M' record
                     // and never written again (ended clients are not removed).
                     if (s->find_client(std::string(jkey::client_of(key))) != nullptr)
                       return corrupt_record(key);
                     ClientRecord rec;
                     if (!ClientRecord::decode(v, &rec)) return corrupt_record(key);
                     Client c;
                     c.id = std::string(jkey::client_of(key));
                     c.acked_seq = c.accepted_seq = rec.acked_seq;
                     c.flushed_id = rec.flushed_id;
                     c.max_id = rec.max_id;
                     c.removed_wall = rec.removed_at;
                     c.removed_idle_ms = rec.idle_ms;
                     c.last_activity = now;  // idle timers restart
                     s->add_client(std::move(c), rec.sent, rec.ended, rec.removed);
                     return Status::OK();
                   }));
  ZG_RETURN_IF_ERROR(
      scan_records(j, std::string(1, jkey::kIndex),
                   [&](std::string_view key, std::string_view sid, std::string_view v) {
                     Session* s = t.find(std::string(sid));
                     if (!s) return Status::OK();
                     IndexRecord rec;
                     if (!IndexRecord::decode(v, &rec)) return corrupt_record(key);
                     const Client* c = s->find_client(rec.client_id);
                     if (c == nullptr) return corrupt_record(key);
                     BatchRef b;
                     b.first_id = jkey::number_of(key);
                     b.n = static_cast<std::uint32_t>(rec.n);
                     b.client = s->index_of(*c);
                     s->add_batch(std::move(b), rec.record_bytes);
                     return Status::OK();
                   }));
  ZG_RETURN_IF_ERROR(scan_records(
      j, std::string(1, jkey::kAnswers),
      [&](std::string_view key, std::string_view sid, std::string_view v) {
        Session* s = t.find(std::string(sid));
        if (!s) return Status::OK();
        AnswerCounts added;
        s->add_journal_bytes(v.size());
        if (!apply_answer_record(*s, key, v, &added))
          report->corrupt_answers.emplace_back(s, std::string(key));
        return Status::OK();
      },
      [&](std::string_view key) {
        if (Session* s = t.find(std::string(key.substr(1, kSessionIdLength)))) {
          s->next_resp_seq = std::max(s->next_resp_seq, jkey::number_of(key) + 1);
          report->corrupt_answers.emplace_back(s, std::string(key));
        }
      }));
  return Status::OK();
}

Status reconcile_sessions(const JournalReader& j, SessionTable& t, RecoveryReport* report) {
  std::uint64_t& fixed = report->fixed;
  for (auto& kv : t.all()) {
    Session& s = *kv.second;
    if (!s.durable) continue;
    ZG_RETURN_IF_ERROR(
        scan_records(j, jkey::session(jkey::kClient, s.id),
                     [&](std::string_view key, std::string_view, std::string_view v) {
                       Client* found = s.find_client(std::string(jkey::client_of(key)));
                       if (found == nullptr) return Status::OK();
                       Client& c = *found;
                       ClientRecord rec;
                       if (!ClientRecord::decode(v, &rec)) return corrupt_record(key);
                       if (rec.acked_seq > c.acked_seq) {
                         c.acked_seq = rec.acked_seq;
                         c.accepted_seq = std::max(c.accepted_seq, rec.acked_seq);
                         s.raise_sent(s.index_of(c), rec.sent);
                         ++fixed;
                       }
                       c.flushed_id = std::max(c.flushed_id, rec.flushed_id);
                       c.max_id = std::max(c.max_id, rec.max_id);
                       if (rec.ended && !c.ended()) s.commit_client(s.index_of(c));
                       return Status::OK();
                     }));
    std::set<std::uint64_t> known;
    for (const BatchRef& b : s.batches()) known.insert(b.first_id);
    ZG_RETURN_IF_ERROR(
        scan_records(j, jkey::session(jkey::kIndex, s.id),
                     [&](std::string_view key, std::string_view, std::string_view v) {
                       std::uint64_t first = jkey::number_of(key);
                       if (known.count(first)) return Status::OK();
                       IndexRecord rec;
                       if (!IndexRecord::decode(v, &rec)) return corrupt_record(key);
                       std::uint64_t n = rec.n;
                       const Client* c = s.find_client(rec.client_id);
                       if (c == nullptr) return corrupt_record(key);
                       BatchRef b;
                       b.first_id = first;
                       b.n = static_cast<std::uint32_t>(n);
                       b.client = s.index_of(*c);
                       // In its place among the batches, as at a restart.
                       s.add_batch(std::move(b), rec.record_bytes);
                       report->taken[&s].requests += n;
                       ++fixed;
                       return Status::OK();
                     }));
    ZG_RETURN_IF_ERROR(scan_records(
        j, jkey::session(jkey::kAnswers, s.id),
        [&](std::string_view key, std::string_view, std::string_view v) {
          AnswerCounts added;
          if (!apply_answer_record(s, key, v, &added))
            report->corrupt_answers.emplace_back(&s, std::string(key));
          report->counted.done += added.done;
          report->counted.faulted += added.faulted;
          AnswerCounts& mine = report->taken[&s].answers;
          mine.done += added.done;
          mine.faulted += added.faulted;
          for (const auto& [code, n] : added.faulted_by_code) mine.faulted_by_code[code] += n;
          fixed += added.done + added.faulted;
          return Status::OK();
        },
        [&](std::string_view key) { report->corrupt_answers.emplace_back(&s, std::string(key)); }));
  }
  return Status::OK();
}

}  // namespace zgrid::head
