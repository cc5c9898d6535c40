// The claim on a data directory (failover, docs/operations.md "Failover"):
// which of the heads sharing one --data-dir is active.
//
// The lease is a directory of epoch files, DIR/lease/epoch-<N>, one per
// claim. A head claims epoch N+1 by creating its file with O_CREAT|O_EXCL —
// the one operation local file systems, NFSv4 and Lustre make atomic across
// machines — so exactly one head holds each epoch, and epochs only grow. The
// holder rewrites its file every `renew` (a counter that only grows, in a
// fixed-size record written in place: no new blocks, so a full disk cannot
// stop it). A standby reads the newest file every `poll` and takes the next
// epoch when the counter has not changed for `timeout` by its own clock, at
// once when the holder released it (a clean stop), and at once when the
// holder ran on this machine (same boot id) and its process is gone.
// Nothing depends on the machines' clocks agreeing: each side measures
// intervals with its own CLOCK_BOOTTIME (which keeps counting while a
// machine is suspended).
//
// Fencing. The holder's claim is valid until `start of its last renewal
// that found no newer epoch + timeout × 3/4`; valid() says whether it still
// is, and every journal write checks it first (the reactor before each
// round, the journal thread before each write, LevelDB's own files through
// the journal's Env). A head that was frozen (SIGSTOP, a stalled machine, a
// cut network) comes back with its validity gone and writes nothing. A new
// holder re-reads the previous epoch's counter after its create: if the old
// holder renewed in between, it waits `timeout` more before acting, so the
// old holder's validity has certainly ended.
//
// Thread safety: valid(), epoch() and holder() may be called from any
// thread; poll()/release() only from the thread that owns the Lease (the
// reactor). The renewer thread is the Lease's own.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/clock.hpp"
#include "common/status.hpp"
#include "common/thread_annotations.hpp"

namespace zgrid::head {

struct LeaseOptions {
  Millis renew_ms = 500;     // the holder rewrites its epoch file this often
  Millis timeout_ms = 2000;  // a standby takes over after this long unrenewed
  Millis poll_ms = 100;      // a standby reads the newest epoch file this often
};

// What an epoch file says (a fixed-size text record, key=value lines).
struct LeaseRecord {
  std::uint64_t epoch = 0;
  std::uint64_t counter = 0;  // grows with every renewal
  bool released = false;      // the holder stopped cleanly: take over at once
  std::string instance, host, boot_id;
  std::string pid_ns;  // the holder's PID namespace (/proc/self/ns/pid): containers share a boot id
  std::uint64_t pid = 0;
  std::string frontend, backend, http;  // where the holder serves
};

// This machine's boot id (Linux: /proc/sys/kernel/random/boot_id).
std::string boot_id();
// This process's PID namespace ("pid:[4026531836]").
std::string pid_namespace();
// Milliseconds of CLOCK_BOOTTIME.
Millis boottime_ms();

class Lease {
 public:
  // `self`: this head's identity and endpoints (epoch and counter ignored).
  static Result<std::unique_ptr<Lease>> open(const std::string& data_dir,
                                             const LeaseOptions& options, LeaseRecord self);
  ~Lease();
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;

  enum class Poll { kStandby, kActive };
  // Standby: reads the newest epoch file and claims the next epoch when it
  // may. kActive once this head holds the lease (then the renewer runs).
  // Call every options().poll_ms. An error: the lease directory cannot be
  // read or written (the caller logs it and polls again).
  Result<Poll> poll();
  bool held() const { return held_.load(); }

  // The fence: true while this head holds a lease it may still write under.
  // Lock-free; any thread.
  bool valid() const;
  // valid(), or else — the holder was frozen past its validity, but no
  // newer epoch exists — a renewal now that makes it valid again. False once
  // a newer epoch exists (then for good). Any thread; the fence every write
  // asks (a standby that claimed meanwhile sees the renewal when it re-reads
  // the old epoch after its create, and waits; see above).
  bool ensure_valid();
  // ensure_valid(), and no newer epoch exists and our epoch file is still
  // there (a head whose clock stood still while it was paused — a suspended
  // VM — looks valid; this finds the standby's claim). One stat or two:
  // asked once per journal group, not per write.
  bool confirm();
  // Why valid() turned false (empty while it is true).
  std::string lost_reason() const;
  // The epoch held, or (standby) the newest one seen.
  std::uint64_t epoch() const { return epoch_.load(); }
  // The newest holder seen (standby) — copied under a lock; any thread.
  LeaseRecord holder() const;
  // Milliseconds the newest holder's counter has stood still (standby).
  Millis holder_silent_ms() const;
  // Whether this head's claim ended another head's unreleased lease.
  bool took_over() const { return took_over_; }
  // ...one whose holder may still be alive somewhere (not released, not a
  // gone process of this machine): it may have a write in flight.
  bool stale_writer_possible() const { return took_over_ && !holder_gone_; }
  // Clean stop of the holder: marks its epoch file released, so a standby
  // takes over at once. Stops the renewer; the fence says no from then on.
  void release();
  // Updates the endpoints written at the next renewal (after binding).
  void set_self(const LeaseRecord& self);
  const LeaseOptions& options() const { return o_; }
  const std::string& dir() const { return dir_; }

 private:
  Lease(std::string dir, const LeaseOptions& o, LeaseRecord self);
  Status claim(std::uint64_t epoch, Millis now, const LeaseRecord& previous);
  Status write_record(bool released);
  void renew_loop();
  // One renewal: rewrite the record, then look for a newer epoch. Serialized
  // by renew_mu_. False once the lease is lost.
  bool renew_once();
  void lose(std::string why);

  const std::string dir_;  // DIR/lease
  const LeaseOptions o_;
  bool nfs_ = false;  // fsync each write (close-to-open consistency)
  mutable Mutex mu_;
  LeaseRecord self_ ZG_GUARDED_BY(mu_);
  LeaseRecord seen_ ZG_GUARDED_BY(mu_);  // the newest holder read (standby)
  std::uint64_t seen_epoch_ = 0;
  std::uint64_t seen_counter_ = 0;
  Millis seen_since_ = 0;  // when the counter last changed, by our clock
  bool seen_any_ = false;
  std::atomic<bool> held_{false};
  bool took_over_ = false;
  bool holder_gone_ = false;
  Millis act_after_ = 0;  // a claim raced a renewal: wait until then
  int fd_ = -1;           // our epoch file, while held
  std::atomic<std::uint64_t> epoch_{0};
  std::atomic<std::uint64_t> counter_{0};
  std::atomic<Millis> valid_until_{0};
  std::atomic<bool> lost_{false};
  std::string lost_reason_ ZG_GUARDED_BY(mu_);
  std::condition_variable_any cv_;
  bool stop_ ZG_GUARDED_BY(mu_) = false;
  std::thread renewer_;
  Mutex renew_mu_;  // one renewal at a time (the renewer, ensure_valid)
};

}  // namespace zgrid::head
