// msgpack codec primitives for the wire protocol (docs/protocol.md).
//
// Writer appends msgpack values into a malloc'd buffer that becomes a
// zmq::message_t without a copy. Reader walks the top-level array of a decoded
// message with type- and bounds-checked getters; the first mismatch latches an
// error (check ok() once at the end) so decoders stay short and never throw.
//
// Untrusted bytes are unpacked only through decode_envelope(), which applies
// unpack limits (a 5-byte message cannot ask for gigabytes) and turns every
// msgpack exception into a Status. Strings and binaries are decoded as views
// into the original bytes: the message must outlive the Envelope.
//
// Thread safety: none; one Writer/Envelope per thread.
#pragma once

#ifndef MSGPACK_NO_BOOST
#define MSGPACK_NO_BOOST
#endif

// Only the parts this header needs: all of <msgpack.hpp> (every adaptor)
// costs each of the ~60 files including this one about a second to compile.
#include <msgpack/object.hpp>
#include <msgpack/pack.hpp>
#include <msgpack/sbuffer.hpp>
#include <zmq.hpp>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.hpp"

namespace zgrid {

class Writer {
 public:
  explicit Writer(std::size_t reserve = 256) : buf_(reserve) {}
  Writer(Writer&&) = default;
  Writer& operator=(Writer&&) = default;

  Writer& array(std::uint32_t n) {
    pk().pack_array(n);
    return *this;
  }
  Writer& map(std::uint32_t n) {
    pk().pack_map(n);
    return *this;
  }
  Writer& u64(std::uint64_t v) {
    pk().pack_uint64(v);
    return *this;
  }
  Writer& i64(std::int64_t v) {
    pk().pack_int64(v);
    return *this;
  }
  Writer& f64(double v) {
    pk().pack_double(v);
    return *this;
  }
  Writer& boolean(bool v) {
    if (v)
      pk().pack_true();
    else
      pk().pack_false();
    return *this;
  }
  Writer& nil() {
    pk().pack_nil();
    return *this;
  }
  Writer& str(std::string_view s) {
    pk().pack_str(static_cast<std::uint32_t>(s.size()));
    pk().pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
    return *this;
  }
  Writer& bin(std::string_view s) {
    pk().pack_bin(static_cast<std::uint32_t>(s.size()));
    pk().pack_bin_body(s.data(), static_cast<std::uint32_t>(s.size()));
    return *this;
  }
  // key/value helpers for map-encoded replies (status, nodes)
  Writer& kv(std::string_view k, std::uint64_t v) { return str(k).u64(v); }
  Writer& kv_i(std::string_view k, std::int64_t v) { return str(k).i64(v); }
  Writer& kv(std::string_view k, std::string_view v) { return str(k).str(v); }
  Writer& kv_b(std::string_view k, bool v) { return str(k).boolean(v); }
  Writer& kv_f(std::string_view k, double v) { return str(k).f64(v); }

  // Appends bytes that are already msgpack (items encoded elsewhere).
  Writer& raw(std::string_view bytes) {
    buf_.write(bytes.data(), bytes.size());
    return *this;
  }
  // An array header whose length is filled in later (always 5 bytes):
  // returns its offset for patch_array32().
  std::size_t array32_placeholder() {
    const char h[5] = {static_cast<char>(0xdd), 0, 0, 0, 0};
    buf_.write(h, sizeof h);
    return buf_.size() - sizeof h;
  }
  void patch_array32(std::size_t offset, std::uint32_t n) {
    char* p = buf_.data() + offset + 1;
    for (int i = 3; i >= 0; --i, n >>= 8) p[i] = static_cast<char>(n & 0xff);
  }
  std::size_t size() const { return buf_.size(); }
  const char* data() const { return buf_.data(); }
  // Hands the bytes to a ZeroMQ message (no copy); the Writer is empty afterwards.
  zmq::message_t finish();
  std::string finish_string() { return std::string(buf_.data(), buf_.size()); }

 private:
  // A packer only refers to its buffer: making one per call keeps Writer movable.
  msgpack::packer<msgpack::sbuffer> pk() { return msgpack::packer<msgpack::sbuffer>(buf_); }
  msgpack::sbuffer buf_;
};

class Reader {
 public:
  Reader() = default;
  // Reads the elements of `arr` (must be an array) starting at index `start`.
  Reader(const msgpack::object& arr, std::uint32_t start = 0);

  bool ok() const { return ok_; }
  bool at_end() const { return pos_ >= size_; }
  std::uint32_t remaining() const { return pos_ < size_ ? size_ - pos_ : 0; }
  const char* error() const { return error_; }

  std::uint64_t u64();
  std::int64_t i64();
  // An integer that must lie in [lo, hi] (docs/protocol.md, "Field ranges").
  // Outside it, the reader fails with a range error naming `field`: the
  // message is well formed but its value is refused (invalid_argument, not
  // protocol). `field` must be a string literal.
  std::uint64_t u64_in(std::uint64_t lo, std::uint64_t hi, const char* field);
  std::int64_t i64_in(std::int64_t lo, std::int64_t hi, const char* field);
  double f64();
  bool boolean();
  // str or bin, returned as a view into the message bytes.
  std::string_view bytes(std::size_t max_len = SIZE_MAX);
  // bytes() or nil (nil gives an empty view and sets *was_nil).
  std::string_view bytes_or_nil(bool* was_nil, std::size_t max_len = SIZE_MAX);
  // A nested array as a new Reader (its elements).
  Reader array(std::uint32_t max_len = UINT32_MAX);
  // The raw next object (maps in replies are walked by their own code).
  const msgpack::object* object();
  void skip() { (void)object(); }
  void fail(const char* why) {
    if (ok_) error_ = why;
    ok_ = false;
  }
  // Fails with the error of a nested reader (keeping its range error).
  void fail(const Reader& inner) {
    if (ok_) {
      error_ = inner.error_;
      range_ = inner.range_;
    }
    ok_ = false;
  }
  // After a failed u64_in / i64_in: which field, its range and the value
  // (range_error() is false for a structural error).
  struct RangeError {
    const char* field = nullptr;
    std::int64_t lo = 0, hi = 0;  // as signed: every documented range fits
    std::uint64_t value = 0;
    bool negative = false;  // `value` was an i64 below zero
  };
  bool range_error() const { return !ok_ && range_.field != nullptr; }
  const RangeError& range() const { return range_; }

 private:
  const msgpack::object* next(const char* what);

  const msgpack::object* elems_ = nullptr;
  std::uint32_t size_ = 0;
  std::uint32_t pos_ = 0;
  bool ok_ = true;
  const char* error_ = "";
  RangeError range_;
};

// Reads a msgpack map of string keys into a callback-free view: find(key).
class MapView {
 public:
  MapView() = default;
  explicit MapView(const msgpack::object* obj);
  bool ok() const { return obj_ != nullptr; }
  const msgpack::object* find(std::string_view key) const;
  std::uint64_t u64(std::string_view key, std::uint64_t dflt = 0) const;
  std::int64_t i64(std::string_view key, std::int64_t dflt = 0) const;
  double f64(std::string_view key, double dflt = 0) const;
  bool boolean(std::string_view key, bool dflt = false) const;
  std::string str(std::string_view key) const;

 private:
  const msgpack::object* obj_ = nullptr;
};

// Limits applied when unpacking untrusted bytes (see docs/protocol.md).
struct DecodeLimits {
  std::size_t max_array = 65536 + 16;
  std::size_t max_map = 256;
  // Per value: a frame is at most 8 MiB anyway (ZMQ_MAXMSGSIZE); fields
  // with tighter limits (names, payloads) are checked where they are read,
  // so one oversized payload is refused alone (too_large), not its batch.
  std::size_t max_str = 8 << 20;
  std::size_t max_bin = 8 << 20;
  std::size_t max_depth = 6;
};

// A decoded message: [version, type, corr, fields...].
struct Envelope {
  msgpack::object_handle handle;
  std::uint32_t version = 0;
  std::uint32_t type = 0;
  std::uint64_t corr = 0;
  Reader fields;  // positioned after corr
};

// Parses the envelope of a message body. Errors: kProtocol for malformed bytes
// (with a short reason), never an exception. The caller checks the version.
Status decode_envelope(const void* data, std::size_t size, Envelope* out,
                       const DecodeLimits& limits = DecodeLimits());

}  // namespace zgrid
