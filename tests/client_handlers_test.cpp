// head/client_handlers in-process: client messages handled as the reactor
// hands them over, replies recorded. Durable replies wait for the journal;
// failed writes answer the error and change nothing; fetches park and wake.
#include <gtest/gtest.h>

#include <map>

#include "head/journal_records.hpp"
#include "support/head_rooms.hpp"

namespace zgrid::head {
namespace {

using testing::Rooms;

std::string Create(Rooms& r, bool durable) {
  proto::CreateSession m;
  m.service = "factorize";
  m.durable = durable;
  EXPECT_TRUE(r.call(proto::encode_create_session(1, m)).ok());
  r.complete_writes();
  Envelope e = r.last_reply().envelope();
  proto::SessionInfo info;
  EXPECT_TRUE(proto::decode_session_info(e, &info).ok());
  EXPECT_EQ(info.durable, durable);
  return info.session_id;
}

void Open(Rooms& r, const std::string& sid, const std::string& cid = "c") {
  Status st = r.call(proto::encode_open_client(2, {sid, cid}));
  EXPECT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(r.last_reply().type(), proto::kClientOpened);
}

zmq::message_t SendOf(const std::string& sid, std::uint64_t first_seq, std::size_t n,
                      bool flush = false) {
  static const std::string payload = "1001";
  proto::Send m;
  m.session_id = sid;
  m.client_id = "c";
  m.first_seq = first_seq;
  m.flush = flush;
  for (std::size_t i = 0; i < n; ++i) m.items.push_back({"", payload});
  return proto::encode_send(3, m);
}

TEST(ClientHandlers, AnInteractiveBatchIsQueuedAndAcknowledged) {
  Rooms r;
  std::string sid = Create(r, false);
  Open(r, sid);
  ASSERT_TRUE(r.call(SendOf(sid, 1, 5)).ok());
  Envelope e = r.last_reply().envelope();
  proto::Ack ack;
  ASSERT_TRUE(proto::decode_ack(e, &ack).ok());
  EXPECT_EQ(ack.count, 5u);
  EXPECT_EQ(ack.first_request_id, 1u);
  Session* s = r.sessions.find(sid);
  EXPECT_EQ(s->queue().size(), 5u);
  EXPECT_EQ(s->total(), 5u);
  // A resend of the same sequence numbers: duplicates, nothing queued twice.
  ASSERT_TRUE(r.call(SendOf(sid, 1, 5)).ok());
  EXPECT_EQ(s->queue().size(), 5u);
  // A gap is refused.
  EXPECT_EQ(r.call(SendOf(sid, 9, 1)).code(), Code::kOutOfSequence);
}

TEST(ClientHandlers, ADurableBatchIsAcknowledgedOnlyOnceJournaled) {
  Rooms r;
  r.open_journal();
  std::string sid = Create(r, true);
  Open(r, sid);
  r.journal->hold_completions(true);
  std::size_t before = r.replies.size();
  ASSERT_TRUE(r.call(SendOf(sid, 1, 4, /*flush=*/true)).ok());
  EXPECT_EQ(r.replies.size(), before);  // no ack before the write is durable
  Session* s = r.sessions.find(sid);
  EXPECT_TRUE(r.journal->contains(jkey::numbered(jkey::kRequests, sid, 1)));
  r.journal->hold_completions(false);
  r.complete_writes();
  EXPECT_EQ(r.last_reply().type(), proto::kAck);
  EXPECT_EQ(s->total(), 4u);
  EXPECT_EQ(s->queue().size(), 4u);  // flushed: loaded to run
  EXPECT_EQ(s->client(0).acked_seq, 4u);
}

TEST(ClientHandlers, AFailedDurableSendAnswersTheErrorAndForgetsTheBatch) {
  Rooms r;
  r.open_journal();
  std::string sid = Create(r, true);
  Open(r, sid);
  r.journal->fail_writes("IO error: No space left on device");
  ASSERT_TRUE(r.call(SendOf(sid, 1, 4)).ok());
  r.complete_writes();
  EXPECT_EQ(r.last_reply().error().code, Code::kResourceExhausted);
  Session* s = r.sessions.find(sid);
  EXPECT_EQ(s->total(), 0u);
  EXPECT_EQ(s->client(0).accepted_seq, 0u);  // the resend is not a duplicate
  EXPECT_EQ(s->client(0).sent(), 0u);
  // While the journal refuses writes, new batches are refused at once.
  EXPECT_EQ(r.call(SendOf(sid, 1, 1)).code(), Code::kResourceExhausted);
}

TEST(ClientHandlers, EndRequestsCommitsAndWakesAParkedFetch) {
  Rooms r;
  r.open_journal();
  std::string sid = Create(r, true);
  Open(r, sid);
  ASSERT_TRUE(r.call(SendOf(sid, 1, 2, true)).ok());
  r.complete_writes();
  proto::Fetch f;
  f.session_id = sid;
  f.wait_ms = 10'000;
  std::size_t before = r.replies.size();
  ASSERT_TRUE(r.call(proto::encode_fetch(4, f), "rid-fetcher").ok());
  EXPECT_EQ(r.replies.size(), before);  // nothing yet: parked
  EXPECT_TRUE(r.handlers.fetches_parked());
  // Both answered and recorded, the client commits: the fetch is answered.
  Session* s = r.sessions.find(sid);
  r.add_node("a", 4);
  r.dispatch();
  proto::Results res;
  res.items = {{1, "", "7 11 13"}, {2, "", "7 11 13"}};
  r.tasks.on_results(*r.nodes.find_id("a"), res);
  r.lifecycle.flush_answers();
  r.complete_writes();
  ASSERT_TRUE(r.call(proto::encode_client_ref(proto::kEndRequests, 5, {sid, "c", 2})).ok());
  r.complete_writes();
  EXPECT_EQ(s->committed(), 2u);
  for (const std::string& woken : r.ctx.fetches_to_wake) r.handlers.wake_fetches(woken);
  const testing::Reply& fetch_reply = r.replies.back();
  EXPECT_EQ(fetch_reply.rid, "rid-fetcher");
  EXPECT_EQ(fetch_reply.type(), proto::kFetchReply);
  EXPECT_FALSE(r.handlers.fetches_parked());
}

TEST(ClientHandlers, UnknownPurgedAndRemovedAreClearErrors) {
  Rooms r;
  std::string sid = Create(r, false);
  Open(r, sid);
  EXPECT_EQ(r.call(proto::encode_attach(6, std::string(32, 'z'))).code(), Code::kNotFound);
  EXPECT_EQ(r.call(SendOf(sid, 1, 1)).code(), Code::kOk);
  r.sessions.find(sid)->remove_client(0);
  Status st = r.call(SendOf(sid, 2, 1));
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_NE(st.message().find("removed"), std::string::npos);
  // A durable session's id stays known as purged.
  r.open_journal();
  std::string did = Create(r, true);
  ASSERT_TRUE(r.call(proto::encode_close(7, {did, proto::CloseMode::kPurge})).ok());
  r.complete_writes();
  EXPECT_EQ(r.last_reply().type(), proto::kOk);
  st = r.call(proto::encode_attach(8, did));
  EXPECT_NE(st.message().find("was purged"), std::string::npos) << st.message();
  // Purging again is not an error.
  ASSERT_TRUE(r.call(proto::encode_close(9, {did, proto::CloseMode::kPurge})).ok());
  EXPECT_EQ(r.last_reply().type(), proto::kOk);
}

TEST(ClientHandlers, DurableNeedsAJournalAndDrainNeedsAKnownNode) {
  Rooms r;
  proto::CreateSession m;
  m.service = "factorize";
  m.durable = true;
  EXPECT_EQ(r.call(proto::encode_create_session(1, m)).code(), Code::kFailedPrecondition);
  m.service = "no such!";
  m.durable = false;
  EXPECT_EQ(r.call(proto::encode_create_session(1, m)).code(), Code::kInvalidArgument);
  EXPECT_EQ(r.call(proto::encode_drain(3, {"ghost", false})).code(), Code::kNotFound);
  NodeState& n = r.add_node("a");
  ASSERT_TRUE(r.call(proto::encode_drain(4, {"a", false})).ok());
  EXPECT_TRUE(n.draining);
  ASSERT_TRUE(r.call(proto::encode_drain(5, {"a", true})).ok());
  EXPECT_FALSE(n.draining);
}

// ---- submit: a whole session in one message ----------------------------------

zmq::message_t SubmitOf(bool durable, std::size_t n, const std::string& cid = "c") {
  static const std::string payload = "1001";
  proto::Submit m;
  m.create.service = "factorize";
  m.create.durable = durable;
  m.client_id = cid;
  for (std::size_t i = 0; i < n; ++i) m.items.push_back({"", payload});
  return proto::encode_submit(11, m);
}

proto::Submitted SubmittedReply(Rooms& r) {
  Envelope e = r.last_reply().envelope();
  proto::Submitted out;
  EXPECT_EQ(e.type, proto::kSubmitted);
  EXPECT_TRUE(proto::decode_submitted(e, &out).ok());
  return out;
}

TEST(ClientHandlers, AnInteractiveSubmitIsSealedCommittedAndQueuedAtOnce) {
  Rooms r;
  ASSERT_TRUE(r.call(SubmitOf(false, 3)).ok());
  proto::Submitted a = SubmittedReply(r);
  EXPECT_EQ(a.count, 3u);
  EXPECT_EQ(a.first_request_id, 1u);
  EXPECT_TRUE(a.statuses.empty());
  EXPECT_EQ(a.info.state, proto::SessionState::kSealed);
  Session* s = r.sessions.find(a.info.session_id);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->queue().size(), 3u);
  EXPECT_EQ(s->committed(), 3u);
  ASSERT_EQ(s->clients().size(), 1u);
  EXPECT_TRUE(s->client(0).ended());
  EXPECT_EQ(s->client(0).acked_seq, 3u);
  // Sealed: nobody joins it, and the client sends nothing more.
  EXPECT_EQ(r.call(proto::encode_open_client(2, {a.info.session_id, "other"})).code(),
            Code::kFailedPrecondition);
  proto::Send more;
  more.session_id = a.info.session_id;
  more.client_id = "c";
  more.first_seq = 4;
  more.items.push_back({"", "7"});
  EXPECT_EQ(r.call(proto::encode_send(3, more)).code(), Code::kFailedPrecondition);
}

TEST(ClientHandlers, AnEmptyInteractiveSubmitIsCompleteAndRetiredAtOnce) {
  Rooms r;
  ASSERT_TRUE(r.call(SubmitOf(false, 0)).ok());
  proto::Submitted a = SubmittedReply(r);
  EXPECT_EQ(a.count, 0u);
  EXPECT_EQ(r.sessions.find(a.info.session_id), nullptr);
}

TEST(ClientHandlers, SubmitRefusesWhatCreateSessionRefusesAndKeepsNothing) {
  Rooms r;
  EXPECT_EQ(r.call(SubmitOf(true, 1)).code(), Code::kFailedPrecondition);  // no journal
  EXPECT_EQ(r.call(SubmitOf(false, 1, "no spaces")).code(), Code::kInvalidArgument);
  proto::Submit m;
  m.create.service = "bad service!";
  m.client_id = "c";
  EXPECT_EQ(r.call(proto::encode_submit(1, m)).code(), Code::kInvalidArgument);
  EXPECT_TRUE(r.sessions.all().empty());
}

TEST(ClientHandlers, OversizedItemsOfASubmitAreRefusedOneByOne) {
  Rooms r;
  proto::Submit m;
  m.create.service = "factorize";
  m.client_id = "c";
  std::string big(proto::kMaxPayload + 1, 'x');
  m.items = {{"", "6"}, {"", big}, {"", "10"}};
  ASSERT_TRUE(r.call(proto::encode_submit(1, m)).ok());
  proto::Submitted a = SubmittedReply(r);
  EXPECT_EQ(a.count, 3u);
  ASSERT_EQ(a.statuses.size(), 3u);
  EXPECT_EQ(a.statuses[1], static_cast<char>(proto::kItemTooLarge));
  Session* s = r.sessions.find(a.info.session_id);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->committed(), 2u);
  ASSERT_EQ(s->queue().size(), 2u);
  EXPECT_EQ(s->queue()[1].id, 2u);
  EXPECT_EQ(s->queue()[1].payload, "10");
  EXPECT_TRUE(r.sessions.verify());
}

TEST(ClientHandlers, ADurableSubmitIsOneWriteAndAnsweredOnlyOnceJournaled) {
  Rooms r;
  r.open_journal();
  r.journal->hold_completions(true);
  std::size_t before = r.replies.size();
  ASSERT_TRUE(r.call(SubmitOf(true, 4)).ok());
  EXPECT_EQ(r.replies.size(), before);  // nothing before the write is durable
  ASSERT_EQ(r.sessions.all().size(), 1u);
  Session* s = r.sessions.all().begin()->second.get();
  std::string sid = s->id;
  EXPECT_FALSE(SessionTable::complete(*s));  // not before its client is committed
  EXPECT_TRUE(r.sessions.verify());          // sealed at once: its key's loads say so
  EXPECT_EQ(r.sessions.load(s->owner).open, 0u);
  // Small: its requests may start at once (their answers may join the write).
  EXPECT_EQ(s->queue().size(), 4u);
  EXPECT_EQ(s->done(), 0u);
  // Small: one 'M' record holds the session, its client, batch and index.
  ASSERT_EQ(r.journal->written().size(), 1u);
  ASSERT_EQ(r.journal->written()[0].puts.size(), 1u);
  EXPECT_EQ(r.journal->written()[0].puts[0].first, jkey::session(jkey::kOneMessage, sid));
  EXPECT_FALSE(r.journal->contains(jkey::session(jkey::kSession, sid)));
  EXPECT_FALSE(r.journal->contains(jkey::numbered(jkey::kRequests, sid, 1)));
  EXPECT_FALSE(r.journal->contains(jkey::client(sid, "c")));
  r.journal->hold_completions(false);
  r.complete_writes();
  proto::Submitted a = SubmittedReply(r);
  EXPECT_EQ(a.info.session_id, sid);
  EXPECT_TRUE(a.info.durable);
  EXPECT_EQ(s->total(), 4u);
  EXPECT_EQ(s->committed(), 4u);
  EXPECT_EQ(s->queue().size(), 4u);  // flushed: loaded to run
  EXPECT_TRUE(s->client(0).ended());
  EXPECT_FALSE(SessionTable::complete(*s));
  EXPECT_EQ(s->client(0).flushed_id, 4u);
  EXPECT_TRUE(r.sessions.verify());
}

// A small durable submit's requests run at once; answers back before the
// journal has taken the session's write join it: one write holds the 'M'
// record and the answers, and nothing is replied, counted or served before.
TEST(ClientHandlers, ASmallDurableSubmitAndItsEarlyAnswersAreOneWrite) {
  Rooms r;
  r.open_journal();
  NodeState& n = r.add_node("a");
  r.journal->hold_completions(true);  // the write waits in the journal's queue
  std::size_t before = r.replies.size();
  ASSERT_TRUE(r.call(SubmitOf(true, 2)).ok());
  auto sent = r.round();
  ASSERT_EQ(sent.size(), 1u);
  ASSERT_EQ(sent[0].second, 2u);
  proto::Tasks t;
  Envelope te = r.to_nodes.back().envelope();
  ASSERT_TRUE(proto::decode_tasks(te, &t).ok());
  ASSERT_TRUE(r.results(n, {{t.items[0].task_id, ""}, {t.items[1].task_id, ""}}).ok());
  r.round();  // the answers are written: they join the session's write
  EXPECT_EQ(r.replies.size(), before);
  Session* s = r.sessions.all().begin()->second.get();
  ASSERT_EQ(r.journal->written().size(), 1u);
  const auto& puts = r.journal->written()[0].puts;
  ASSERT_EQ(puts.size(), 2u);
  EXPECT_EQ(puts[0].first, jkey::session(jkey::kOneMessage, s->id));
  EXPECT_EQ(puts[1].first, jkey::numbered(jkey::kAnswers, s->id, 1));
  EXPECT_EQ(s->done(), 0u);  // not counted before the write is durable
  EXPECT_FALSE(SessionTable::complete(*s));
  r.journal->hold_completions(false);
  r.complete_writes();
  proto::Submitted a = SubmittedReply(r);
  EXPECT_EQ(a.info.session_id, s->id);
  EXPECT_EQ(s->done(), 2u);
  EXPECT_TRUE(SessionTable::complete(*s));
  EXPECT_TRUE(r.sessions.verify());
}

// ---- submit with wait_ms: the reply carries the answers ---------------------

std::uint64_t TasksIn(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& sent) {
  std::uint64_t n = 0;
  for (const auto& [node, count] : sent) n += count;
  return n;
}

zmq::message_t WaitingSubmitOf(bool durable, std::size_t n, std::uint64_t wait_ms) {
  proto::Submit m;
  m.create.service = "factorize";
  m.create.durable = durable;
  m.client_id = "c";
  std::vector<std::string> user(n);  // the items are views: they live here
  for (std::size_t i = 0; i < n; ++i) {
    user[i] = std::string("u").append(std::to_string(i));
    m.items.push_back({user[i], "1001"});
  }
  m.wait_ms = wait_ms;
  return proto::encode_submit(11, m);
}

// The answers a submitted reply carries, by request id: "user_data=data".
std::map<std::uint64_t, std::string> AnswersOf(proto::Submitted& a) {
  std::map<std::uint64_t, std::string> out;
  proto::ResponseView v;
  while (proto::read_response_item(a.answers, &v))
    out[v.request_id] = std::string(v.user_data) + "=" + std::string(v.data);
  return out;
}

// The tasks of the last task message sent, answered: the data is "f<id>".
void AnswerLastTasks(Rooms& r, NodeState& n) {
  proto::Tasks t;
  Envelope te = r.to_nodes.back().envelope();
  ASSERT_TRUE(proto::decode_tasks(te, &t).ok());
  Writer w = proto::begin(proto::kResults, 0, 1);
  w.array(static_cast<std::uint32_t>(t.items.size()));
  for (const auto& task : t.items)
    w.array(3).u64(task.task_id).nil().bin(std::string("f").append(std::to_string(task.task_id)));
  ASSERT_TRUE(r.node(w.finish(), n.rid).ok());
}

TEST(ClientHandlers, AnInteractiveSubmitWithWaitIsAnsweredByOneReplyThatCarriesTheAnswers) {
  Rooms r;
  NodeState& n = r.add_node("a");
  std::size_t before = r.replies.size();
  ASSERT_TRUE(r.call(WaitingSubmitOf(false, 3, 5'000)).ok());
  EXPECT_EQ(TasksIn(r.round()), 3u);
  EXPECT_EQ(r.replies.size(), before);  // held for its answers
  AnswerLastTasks(r, n);
  r.round();
  ASSERT_EQ(r.replies.size(), before + 1);  // one message: no `responses` push
  proto::Submitted a = SubmittedReply(r);
  ASSERT_TRUE(a.has_answers);
  EXPECT_EQ(a.count, 3u);
  auto answers = AnswersOf(a);
  ASSERT_EQ(answers.size(), 3u);
  for (std::uint64_t id = 1; id <= 3; ++id)
    EXPECT_EQ(answers[id].substr(0, 3),
              std::string("u").append(std::to_string(id - 1)).append("="));
  // Delivered with the reply (no resp_ack comes for them): the head forgets it.
  EXPECT_EQ(r.sessions.find(a.info.session_id), nullptr);
}

TEST(ClientHandlers, AnInteractiveSubmitWhoseWaitEndsIsRepliedAloneAndItsAnswersFollow) {
  Rooms r;
  NodeState& n = r.add_node("a");
  ASSERT_TRUE(r.call(WaitingSubmitOf(false, 2, 100)).ok());
  EXPECT_EQ(TasksIn(r.round()), 2u);
  std::size_t before = r.replies.size();
  r.ctx.now += 100;  // the wait is over before any answer
  r.round();
  ASSERT_EQ(r.replies.size(), before + 1);
  proto::Submitted a = SubmittedReply(r);
  EXPECT_FALSE(a.has_answers);
  AnswerLastTasks(r, n);
  r.round();
  ASSERT_EQ(r.replies.size(), before + 2);
  EXPECT_EQ(r.replies.back().type(), proto::kResponses);   // as after any submit
  ASSERT_NE(r.sessions.find(a.info.session_id), nullptr);  // until they are acknowledged
}

TEST(ClientHandlers, ADurableSubmitWithWaitIsRepliedOnceItsAnswersAreCommittedAndCarriesThem) {
  Rooms r;
  r.open_journal();
  NodeState& n = r.add_node("a");
  std::size_t before = r.replies.size();
  ASSERT_TRUE(r.call(WaitingSubmitOf(true, 2, 5'000)).ok());
  r.complete_writes();  // the session's write is synced before any answer
  EXPECT_EQ(TasksIn(r.round()), 2u);
  EXPECT_EQ(r.replies.size(), before);  // held (parked) for its answers
  AnswerLastTasks(r, n);
  r.round();            // the answers are written
  r.complete_writes();  // and synced
  r.round();
  ASSERT_EQ(r.replies.size(), before + 1);
  proto::Submitted a = SubmittedReply(r);
  ASSERT_TRUE(a.has_answers);
  auto answers = AnswersOf(a);
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[1].substr(0, 3), "u0=");
  EXPECT_EQ(answers[2].substr(0, 3), "u1=");
  Session* s = r.sessions.find(a.info.session_id);
  ASSERT_NE(s, nullptr);  // kept for fetch, as any durable session
  EXPECT_TRUE(SessionTable::complete(*s));
}

// A submit whose frame would not stay inline in LevelDB is written as the
// four records a session made step by step has, in one write.
TEST(ClientHandlers, ABigDurableSubmitIsWrittenAsFourRecordsInOneWrite) {
  Rooms r;
  r.open_journal();
  ASSERT_TRUE(r.call(SubmitOf(true, 200)).ok());  // about 1.4 KB: above 512
  r.complete_writes();
  proto::Submitted a = SubmittedReply(r);
  std::string sid = a.info.session_id;
  ASSERT_EQ(r.journal->written().size(), 1u);
  EXPECT_TRUE(r.journal->contains(jkey::session(jkey::kSession, sid)));
  EXPECT_TRUE(r.journal->contains(jkey::numbered(jkey::kRequests, sid, 1)));
  EXPECT_TRUE(r.journal->contains(jkey::numbered(jkey::kIndex, sid, 1)));
  EXPECT_TRUE(r.journal->contains(jkey::client(sid, "c")));
  EXPECT_FALSE(r.journal->contains(jkey::session(jkey::kOneMessage, sid)));
  Session* s = r.sessions.find(sid);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->queue().size(), 200u);
}

TEST(ClientHandlers, AFailedDurableSubmitAnswersTheErrorAndForgetsTheSession) {
  Rooms r;
  r.open_journal();
  r.journal->fail_writes("IO error: No space left on device");
  ASSERT_TRUE(r.call(SubmitOf(true, 4)).ok());
  r.complete_writes();
  EXPECT_EQ(r.last_reply().error().code, Code::kResourceExhausted);
  EXPECT_TRUE(r.sessions.all().empty());
  // While the journal refuses writes, a submit is refused at once.
  EXPECT_EQ(r.call(SubmitOf(true, 1)).code(), Code::kResourceExhausted);
}

TEST(ClientHandlers, StatusReportsTheGridASessionAndTheNodes) {
  Rooms r;
  r.add_node("a", 4);
  std::string sid = Create(r, false);
  Open(r, sid);
  ASSERT_TRUE(r.call(SendOf(sid, 1, 3)).ok());
  ASSERT_TRUE(r.call(proto::encode_query(proto::kStatus, 10, sid)).ok());
  {
    Envelope e = r.last_reply().envelope();
    proto::SessionStatus st;
    ASSERT_TRUE(proto::decode_session_status(e, &st).ok());
    EXPECT_EQ(st.session_id, sid);
    EXPECT_EQ(st.state, "open");
    EXPECT_EQ(st.total, 3u);
    EXPECT_EQ(st.queued, 3u);
    EXPECT_EQ(st.clients_open, 1u);
    EXPECT_FALSE(st.complete);
  }
  r.dispatch();
  ASSERT_TRUE(r.call(proto::encode_query(proto::kStatus, 11, "")).ok());
  {
    Envelope e = r.last_reply().envelope();
    proto::GridStatus g;
    ASSERT_TRUE(proto::decode_grid_status(e, &g).ok());
    EXPECT_EQ(g.nodes, 1u);
    EXPECT_EQ(g.sessions, 1u);
    EXPECT_EQ(g.running, 3u);
    EXPECT_EQ(g.journal, "none");
  }
  ASSERT_TRUE(r.call(proto::begin(proto::kNodes, 12, 0).finish()).ok());
  {
    Envelope e = r.last_reply().envelope();
    std::vector<proto::NodeStatus> nodes;
    ASSERT_TRUE(proto::decode_nodes_reply(e, &nodes).ok());
    ASSERT_EQ(nodes.size(), 1u);
    EXPECT_EQ(nodes[0].node_id, "a");
    EXPECT_EQ(nodes[0].inflight, 3u);
    EXPECT_EQ(nodes[0].services, "factorize@1");
  }
  ASSERT_TRUE(r.call(proto::begin(proto::kSessions, 13, 0).finish()).ok());
  {
    Envelope e = r.last_reply().envelope();
    std::vector<proto::SessionStatus> list;
    ASSERT_TRUE(proto::decode_sessions_reply(e, &list).ok());
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0].running, 3u);
  }
}

// ---- resent requests (docs/protocol.md, "Resent requests") ---------------------

zmq::message_t CreateWithToken(std::uint64_t corr, bool durable, const std::string& token,
                               const std::string& service = "factorize") {
  proto::CreateSession m;
  m.service = service;
  m.durable = durable;
  m.token = token;
  return proto::encode_create_session(corr, m);
}

std::string SessionIdOf(const testing::Reply& reply) {
  Envelope e = reply.envelope();
  proto::SessionInfo info;
  EXPECT_TRUE(proto::decode_session_info(e, &info).ok()) << reply.error().message;
  return info.session_id;
}

TEST(ClientHandlers, AResentCreateSessionIsTheSameSession) {
  Rooms r;
  ASSERT_TRUE(r.call(CreateWithToken(1, false, "tok-1")).ok());
  std::string sid = SessionIdOf(r.last_reply());
  ASSERT_TRUE(r.call(CreateWithToken(1, false, "tok-1")).ok());
  EXPECT_EQ(SessionIdOf(r.last_reply()), sid);
  EXPECT_EQ(r.sessions.size(), 1u);
  // Another token, or the same token from another key: another session.
  ASSERT_TRUE(r.call(CreateWithToken(2, false, "tok-2")).ok());
  EXPECT_NE(SessionIdOf(r.last_reply()), sid);
  ASSERT_TRUE(r.call(CreateWithToken(3, false, "tok-1"), "rid-x", "other-key").ok());
  EXPECT_NE(SessionIdOf(r.last_reply()), sid);
  EXPECT_EQ(r.sessions.size(), 3u);
  // A token names one request: reused for another service it is refused.
  EXPECT_EQ(r.call(CreateWithToken(4, false, "tok-1", "echo")).code(), Code::kInvalidArgument);
  EXPECT_EQ(r.call(CreateWithToken(5, false, "bad token")).code(), Code::kInvalidArgument);
  // The index goes with the session.
  ASSERT_TRUE(r.call(proto::encode_close(6, {sid, proto::CloseMode::kPurge})).ok());
  EXPECT_EQ(r.sessions.by_token("", "tok-1"), nullptr);
  EXPECT_EQ(r.sessions.tokens(), 2u);
}

TEST(ClientHandlers, AResentDurableCreateWaitsForTheFirstWriteAndGetsItsAnswer) {
  Rooms r;
  r.open_journal();
  r.journal->hold_completions(true);
  std::size_t before = r.replies.size();
  ASSERT_TRUE(r.call(CreateWithToken(1, true, "tok-d")).ok());
  ASSERT_TRUE(r.call(CreateWithToken(1, true, "tok-d"), "rid-again").ok());
  EXPECT_EQ(r.replies.size(), before);  // neither answered before the write is synced
  EXPECT_EQ(r.sessions.size(), 1u);
  EXPECT_EQ(r.journal->written().size(), 1u);  // one session record
  r.journal->hold_completions(false);
  r.complete_writes();
  ASSERT_EQ(r.replies.size(), before + 2);
  std::string sid = SessionIdOf(r.replies[before]);
  EXPECT_EQ(r.replies[before].rid, "rid-c");
  EXPECT_EQ(SessionIdOf(r.replies[before + 1]), sid);
  EXPECT_EQ(r.replies[before + 1].rid, "rid-again");
  // Once synced, a resend is answered at once.
  ASSERT_TRUE(r.call(CreateWithToken(1, true, "tok-d")).ok());
  EXPECT_EQ(SessionIdOf(r.last_reply()), sid);
}

TEST(ClientHandlers, AFailedDurableCreateAnswersEveryCopyAndForgetsTheToken) {
  Rooms r;
  r.open_journal();
  r.journal->hold_completions(true);
  r.journal->fail_writes("IO error: disk gone");
  ASSERT_TRUE(r.call(CreateWithToken(1, true, "tok-f")).ok());
  ASSERT_TRUE(r.call(CreateWithToken(1, true, "tok-f")).ok());
  r.journal->hold_completions(false);
  r.complete_writes();
  ASSERT_GE(r.replies.size(), 2u);
  EXPECT_EQ(r.replies[r.replies.size() - 2].error().code, Code::kUnavailable);
  EXPECT_EQ(r.replies.back().error().code, Code::kUnavailable);
  EXPECT_EQ(r.sessions.size(), 0u);
  EXPECT_EQ(r.sessions.tokens(), 0u);
}

TEST(ClientHandlers, AResentCreateIsNotRefusedByThePerKeyCap) {
  HeadOptions o = testing::TestOptions();
  o.max_sessions_per_key = 1;
  Rooms r(o);
  ASSERT_TRUE(r.call(CreateWithToken(1, false, "tok-1")).ok());
  std::string sid = SessionIdOf(r.last_reply());
  ASSERT_TRUE(r.call(CreateWithToken(1, false, "tok-1")).ok());
  EXPECT_EQ(SessionIdOf(r.last_reply()), sid);
  EXPECT_EQ(r.call(CreateWithToken(2, false, "tok-2")).code(), Code::kResourceExhausted);
}

TEST(ClientHandlers, RecoveryRebuildsTheTokenIndex) {
  Rooms r;
  r.open_journal();
  ASSERT_TRUE(r.call(CreateWithToken(1, true, "tok-r", "echo")).ok());
  r.complete_writes();
  std::string sid = SessionIdOf(r.last_reply());
  std::string key = jkey::session(jkey::kSession, sid), value;
  ASSERT_TRUE(r.journal->get(key, &value).ok());
  // A restarted head over the same records.
  auto j = std::make_unique<MemoryJournal>();
  j->put(key, value);
  Rooms again;
  again.open_journal(std::move(j));
  ASSERT_NE(again.sessions.by_token("", "tok-r"), nullptr);
  ASSERT_TRUE(again.call(CreateWithToken(9, true, "tok-r", "echo")).ok());
  EXPECT_EQ(SessionIdOf(again.last_reply()), sid);
  EXPECT_EQ(again.sessions.size(), 1u);
}

TEST(ClientHandlers, AResentOpenClientWithItsTokenIsTheSameClient) {
  Rooms r;
  std::string sid = Create(r, false);
  ASSERT_TRUE(r.call(proto::encode_open_client(2, {sid, "c", "opener-1"}), "rid-1").ok());
  // The same opener on another connection (its first answer was lost): ok.
  ASSERT_TRUE(r.call(proto::encode_open_client(2, {sid, "c", "opener-1"}), "rid-2").ok());
  EXPECT_EQ(r.last_reply().type(), proto::kClientOpened);
  // Another opener of the same id while the first is live: refused.
  EXPECT_EQ(r.call(proto::encode_open_client(3, {sid, "c", "opener-2"}), "rid-3").code(),
            Code::kAlreadyExists);
  EXPECT_EQ(r.call(proto::encode_open_client(3, {sid, "c"}), "rid-4").code(), Code::kAlreadyExists);
  EXPECT_EQ(r.sessions.find(sid)->clients().size(), 1u);
}

TEST(ClientHandlers, AResentCloseOfASessionThatLeftIsAnsweredOk) {
  Rooms r;
  std::string sid = Create(r, false);
  Open(r, sid);
  ASSERT_TRUE(r.call(proto::encode_client_ref(proto::kEndRequests, 5, {sid, "c", 0})).ok());
  ASSERT_TRUE(r.call(proto::encode_close(6, {sid, proto::CloseMode::kSeal})).ok());
  EXPECT_EQ(r.sessions.find(sid), nullptr);  // complete and delivered: retired
  for (auto mode : {proto::CloseMode::kSeal, proto::CloseMode::kCancel, proto::CloseMode::kPurge})
    EXPECT_TRUE(r.call(proto::encode_close(6, {sid, mode})).ok());
  EXPECT_TRUE(r.call(proto::encode_client_ref(proto::kEndRequests, 5, {sid, "c", 0})).ok());
  EXPECT_EQ(r.last_reply().type(), proto::kOk);
  // Not for another key, and not for a session that never was.
  EXPECT_EQ(r.call(proto::encode_close(6, {sid, proto::CloseMode::kSeal}), "rid-x", "other").code(),
            Code::kNotFound);
  EXPECT_EQ(r.call(proto::encode_close(6, {std::string(32, 'f'), proto::CloseMode::kSeal})).code(),
            Code::kNotFound);
  // A purged interactive session: a resent purge is ok, a resent end_requests is not found.
  std::string sid2 = Create(r, false);
  ASSERT_TRUE(r.call(proto::encode_close(7, {sid2, proto::CloseMode::kPurge})).ok());
  EXPECT_TRUE(r.call(proto::encode_close(7, {sid2, proto::CloseMode::kPurge})).ok());
  EXPECT_EQ(r.call(proto::encode_client_ref(proto::kEndRequests, 8, {sid2, "c", 0})).code(),
            Code::kNotFound);
}

TEST(ClientHandlers, AResentDurablePurgeWaitsForTheFirstAndPurgesOnce) {
  Rooms r;
  r.open_journal();
  std::string sid = Create(r, true);
  r.journal->hold_completions(true);
  std::size_t writes = r.journal->written().size();
  std::size_t before = r.replies.size();
  ASSERT_TRUE(r.call(proto::encode_close(6, {sid, proto::CloseMode::kPurge})).ok());
  ASSERT_TRUE(r.call(proto::encode_close(6, {sid, proto::CloseMode::kPurge})).ok());
  EXPECT_EQ(r.replies.size(), before);
  EXPECT_EQ(r.journal->written().size(), writes + 1);  // one purge
  r.journal->hold_completions(false);
  r.complete_writes();
  ASSERT_EQ(r.replies.size(), before + 2);
  EXPECT_EQ(r.replies[before].type(), proto::kOk);
  EXPECT_EQ(r.replies[before + 1].type(), proto::kOk);
  EXPECT_TRUE(r.sessions.purged(sid));
}

TEST(ClientHandlers, ResentPurgesWaitingForAPurgeAreCappedAndTheRestTryAgain) {
  // A client resending its purge while the purge is being written: the
  // first 64 copies wait for its outcome, more are answered at once with
  // "try again" (Unavailable), none is kept without bound.
  Rooms r;
  r.open_journal();
  std::string sid = Create(r, true);
  r.journal->hold_completions(true);
  std::size_t writes = r.journal->written().size();
  std::size_t before = r.replies.size();
  ASSERT_TRUE(r.call(proto::encode_close(6, {sid, proto::CloseMode::kPurge})).ok());
  constexpr std::size_t kResent = 200, kWaiting = 64;
  for (std::size_t i = 0; i < kResent; ++i)
    ASSERT_TRUE(r.call(proto::encode_close(6, {sid, proto::CloseMode::kPurge})).ok());
  ASSERT_EQ(r.replies.size(), before + kResent - kWaiting);  // answered at once
  for (std::size_t i = before; i < r.replies.size(); ++i) {
    ASSERT_EQ(r.replies[i].type(), proto::kError) << i;
    EXPECT_EQ(r.replies[i].error().code, Code::kUnavailable) << i;
    EXPECT_NE(r.replies[i].error().message.find("the purge of session " + sid + " is under way"),
              std::string::npos)
        << r.replies[i].error().message;
  }
  EXPECT_EQ(r.journal->written().size(), writes + 1);  // one purge
  std::size_t waited = r.replies.size();
  r.journal->hold_completions(false);
  r.complete_writes();
  ASSERT_EQ(r.replies.size(), waited + 1 + kWaiting);  // the purge and every waiting copy
  for (std::size_t i = waited; i < r.replies.size(); ++i)
    EXPECT_EQ(r.replies[i].type(), proto::kOk) << i;
  EXPECT_TRUE(r.sessions.purged(sid));
}

TEST(ClientHandlers, AResentPurgeWaitingForItsTurnIsAnsweredByThatPurge) {
  // More purges than the journal takes at once: the last one waits in the
  // head (paced), and its resent copy must hear that purge, not the write
  // that happens to be last in the journal.
  Rooms r;
  r.open_journal();
  std::vector<std::string> sids;
  for (int i = 0; i < 1'100; ++i) sids.push_back(Create(r, true));
  r.journal->hold_completions(true);
  std::size_t writes = r.journal->written().size();
  std::size_t before = r.replies.size();
  for (const auto& sid : sids)
    ASSERT_TRUE(r.call(proto::encode_close(6, {sid, proto::CloseMode::kPurge})).ok());
  EXPECT_LT(r.journal->written().size(), writes + sids.size());  // some wait their turn
  ASSERT_TRUE(r.call(proto::encode_close(7, {sids.back(), proto::CloseMode::kPurge})).ok());
  r.journal->hold_completions(false);
  for (int round = 0; round < 10 && r.replies.size() < before + sids.size() + 1; ++round)
    r.complete_writes();
  ASSERT_EQ(r.replies.size(), before + sids.size() + 1);
  for (std::size_t i = before; i < r.replies.size(); ++i)
    EXPECT_EQ(r.replies[i].type(), proto::kOk) << i;
  EXPECT_EQ(r.journal->written().size(), writes + sids.size());  // one purge each
  for (const auto& sid : sids) EXPECT_TRUE(r.sessions.purged(sid));
}

TEST(ClientHandlers, AResentDrainChangesNothingTwice) {
  Rooms r;
  r.add_node("a");
  std::size_t events = r.ctx.observed.events.events().size();
  ASSERT_TRUE(r.call(proto::encode_drain(1, {"a", false})).ok());
  ASSERT_TRUE(r.call(proto::encode_drain(1, {"a", false})).ok());
  EXPECT_EQ(r.last_reply().type(), proto::kOk);
  EXPECT_EQ(r.ctx.observed.events.events().size(), events + 1);
  EXPECT_TRUE(r.nodes.find_id("a")->draining);
}

}  // namespace
}  // namespace zgrid::head

namespace zgrid::head {
namespace {

// The dispatch is the table (common/messages.def): every client message
// reaches a handler of its own, and every other number, a reply's or a node
// message's included, is "unknown message type N" — what the hand-written
// switch answered.
TEST(ClientHandlers, EveryClientMessageOfTheTableHasAHandlerAndNoOtherHasOne) {
  for (const proto::MessageInfo& m : proto::kMessages) {
    Rooms r;
    Status st = r.call(proto::begin(m.type, 1, 0).finish());
    std::string unknown = "unknown message type " + std::to_string(m.type);
    if (m.role == proto::Role::kClientRequest)
      EXPECT_NE(st.message(), unknown) << m.name;
    else
      EXPECT_EQ(st.message(), unknown) << m.name;
  }
  for (std::uint32_t type : {0u, 19u, 99u, 255u, 256u, 100000u}) {
    if (proto::message_info(type) != nullptr) continue;  // a number given out since
    Rooms r;
    Status st = r.call(proto::begin(type, 1, 0).finish());
    EXPECT_EQ(st.code(), Code::kProtocol);
    EXPECT_EQ(st.message(), "unknown message type " + std::to_string(type));
  }
}

}  // namespace
}  // namespace zgrid::head
