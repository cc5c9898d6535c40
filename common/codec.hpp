// msgpack codec primitives for the wire protocol (docs/protocol.md).
//
// Writer appends msgpack values into a malloc'd buffer that becomes a
// zmq::message_t without a copy (its encodings are msgpack-c's, written
// inline). Reader walks the top-level array of a decoded
// message with type- and bounds-checked getters; the first mismatch latches an
// error (check ok() once at the end) so decoders stay short and never throw.
//
// Untrusted bytes are read only through decode_envelope(), which checks the
// whole message against decode limits (a 5-byte message cannot ask for
// gigabytes) in one pass and turns every malformation into a Status; the
// Reader then walks the bytes in place (no msgpack object tree, no copy).
// Strings and binaries are views into the original bytes: the message must
// outlive the Envelope and every Reader taken from it.
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
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "common/status.hpp"

namespace zgrid {

// Writes msgpack straight into one malloc'd buffer, choosing each value's
// encoding as msgpack-c's packer does (the same bytes on the wire).
class Writer {
 public:
  explicit Writer(std::size_t reserve = 256) { grow_to(reserve < 16 ? 16 : reserve); }
  Writer(Writer&& o) noexcept : data_(o.data_), size_(o.size_), cap_(o.cap_) {
    o.data_ = nullptr;
    o.size_ = o.cap_ = 0;
  }
  Writer& operator=(Writer&& o) noexcept {
    if (this != &o) {
      std::free(data_);
      data_ = o.data_;
      size_ = o.size_;
      cap_ = o.cap_;
      o.data_ = nullptr;
      o.size_ = o.cap_ = 0;
    }
    return *this;
  }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;
  ~Writer() { std::free(data_); }

  Writer& array(std::uint32_t n) {
    container(n, 0x90, 0xdc);
    return *this;
  }
  Writer& map(std::uint32_t n) {
    container(n, 0x80, 0xde);
    return *this;
  }
  Writer& u64(std::uint64_t v) {
    char* p = room(9);
    if (v < 128) {
      p[0] = static_cast<char>(v);
      size_ += 1;
    } else if (v < 256) {
      p[0] = static_cast<char>(0xcc);
      p[1] = static_cast<char>(v);
      size_ += 2;
    } else if (v < 65536) {
      p[0] = static_cast<char>(0xcd);
      store_be(p + 1, v, 2);
      size_ += 3;
    } else if (v < (std::uint64_t{1} << 32)) {
      p[0] = static_cast<char>(0xce);
      store_be(p + 1, v, 4);
      size_ += 5;
    } else {
      p[0] = static_cast<char>(0xcf);
      store_be(p + 1, v, 8);
      size_ += 9;
    }
    return *this;
  }
  Writer& i64(std::int64_t v);
  Writer& f64(double v);
  Writer& boolean(bool v) { return byte(v ? 0xc3 : 0xc2); }
  Writer& nil() { return byte(0xc0); }
  Writer& str(std::string_view s) {
    const std::size_t n = s.size();
    char* p = room(5 + n);
    if (n < 32) {
      p[0] = static_cast<char>(0xa0 | n);
      p += 1;
    } else if (n < 256) {
      p[0] = static_cast<char>(0xd9);
      p[1] = static_cast<char>(n);
      p += 2;
    } else {
      p = long_header(p, n, 0xda);
    }
    return body(p, s);
  }
  Writer& bin(std::string_view s) {
    const std::size_t n = s.size();
    char* p = room(5 + n);
    if (n < 256) {
      p[0] = static_cast<char>(0xc4);
      p[1] = static_cast<char>(n);
      p += 2;
    } else {
      p = long_header(p, n, 0xc5);
    }
    return body(p, s);
  }
  // key/value helpers for map-encoded replies (status, nodes)
  Writer& kv(std::string_view k, std::uint64_t v) { return str(k).u64(v); }
  Writer& kv_i(std::string_view k, std::int64_t v) { return str(k).i64(v); }
  Writer& kv(std::string_view k, std::string_view v) { return str(k).str(v); }
  Writer& kv_b(std::string_view k, bool v) { return str(k).boolean(v); }
  Writer& kv_f(std::string_view k, double v) { return str(k).f64(v); }

  // Appends bytes that are already msgpack (items encoded elsewhere).
  Writer& raw(std::string_view bytes) {
    char* p = room(bytes.size());
    if (!bytes.empty()) std::memcpy(p, bytes.data(), bytes.size());
    size_ += bytes.size();
    return *this;
  }
  // An array header whose length is filled in later (always 5 bytes):
  // returns its offset for patch_array32().
  std::size_t array32_placeholder() {
    const char h[5] = {static_cast<char>(0xdd), 0, 0, 0, 0};
    raw(std::string_view(h, sizeof h));
    return size_ - sizeof h;
  }
  void patch_array32(std::size_t offset, std::uint32_t n) { store_be(data_ + offset + 1, n, 4); }
  std::size_t size() const { return size_; }
  const char* data() const { return data_; }
  // Hands the bytes to a ZeroMQ message (no copy); the Writer is empty afterwards.
  zmq::message_t finish();
  std::string finish_string() { return std::string(data_, size_); }

 private:
  static void store_be(char* p, std::uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i, v >>= 8) p[i] = static_cast<char>(v & 0xff);
  }
  // Room for `n` more bytes; returns where they go.
  char* room(std::size_t n) {
    if (cap_ - size_ < n) grow_to(size_ + n);
    return data_ + size_;
  }
  void grow_to(std::size_t need);  // at least `need` bytes, doubling
  Writer& byte(unsigned b) {
    *room(1) = static_cast<char>(b);
    ++size_;
    return *this;
  }
  void container(std::uint32_t n, unsigned fix, unsigned tag16) {
    char* p = room(5);
    if (n < 16) {
      p[0] = static_cast<char>(fix | n);
      size_ += 1;
    } else if (n < 65536) {
      p[0] = static_cast<char>(tag16);
      store_be(p + 1, n, 2);
      size_ += 3;
    } else {
      p[0] = static_cast<char>(tag16 + 1);
      store_be(p + 1, n, 4);
      size_ += 5;
    }
  }
  // A 16- or 32-bit length header (tag16, tag16 + 1) at p; returns past it.
  static char* long_header(char* p, std::size_t n, unsigned tag16) {
    if (n < 65536) {
      p[0] = static_cast<char>(tag16);
      store_be(p + 1, n, 2);
      return p + 3;
    }
    p[0] = static_cast<char>(tag16 + 1);
    store_be(p + 1, n, 4);
    return p + 5;
  }
  Writer& body(char* p, std::string_view s) {
    if (!s.empty()) std::memcpy(p, s.data(), s.size());
    size_ = static_cast<std::size_t>(p - data_) + s.size();
    return *this;
  }

  char* data_ = nullptr;
  std::size_t size_ = 0, cap_ = 0;
};

// The kind of a msgpack value (Reader::peek).
enum class Kind : std::uint8_t {
  kEnd,  // no value left (or the reader failed)
  kNil,
  kBool,
  kUint,    // a non-negative integer, however encoded
  kNegInt,  // a negative integer
  kFloat,
  kStr,
  kBin,
  kArray,
  kMap,
  kExt,
};

// Walks the elements of one msgpack array (or the key/value sequence of a
// map) straight from the received bytes: no object tree is built, strings
// and binaries are views into those bytes.
//
// Ownership: a Reader owns nothing. It points into bytes that
// decode_envelope() / decode_array() checked whole (structure, lengths,
// limits) before handing the Reader out; whoever owns those bytes (the
// received zmq::message_t, the journal value) must keep them alive and
// unchanged while the Reader, its copies, its nested Readers and every view
// they returned are used. Copies are cheap and independent (a copy re-reads
// from where the original was).
class Reader {
 public:
  Reader() = default;

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
  // A nested map as a new Reader over its 2n elements: key, value, key, ...
  Reader map(std::uint32_t max_pairs = UINT32_MAX);
  // The kind of the next value, without reading it (kEnd at the end or
  // after a failure).
  Kind peek();
  // Steps over the next value, whatever it is (missing: fails).
  void skip();
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

  // Reads `n` values starting at `p`: bytes that decode_envelope() or
  // decode_array() checked (never raw input).
  static Reader over_checked(const char* p, std::uint32_t n) {
    Reader r;
    r.p_ = p;
    r.size_ = n;
    return r;
  }

  // One value's header, decoded (internal; public for the codec's helpers).
  struct Value {
    Kind kind = Kind::kEnd;
    std::uint64_t u = 0;  // kUint; kBool (0/1); kArray/kMap: count
    std::int64_t i = 0;   // kNegInt
    double f = 0;         // kFloat
    const char* ptr = nullptr;
    std::uint32_t len = 0;  // kStr/kBin/kExt: body bytes
    std::size_t size = 0;   // header + body bytes (containers: the header only)
  };

 private:
  // Steps over values a nested reader was handed (or skip() left).
  void settle();
  // The next value, consumed; nullptr (and failed with `what`) if none.
  bool next(const char* what, Value* v);
  Reader nested(Kind want, std::uint64_t max, const char* missing, const char* wrong,
                const char* too_long);

  const char* p_ = nullptr;    // the next value (once pending_ values are stepped over)
  std::uint64_t pending_ = 0;  // values at p_ still to step over (a nested container's)
  std::uint32_t size_ = 0;     // values in this array (2n for a map)
  std::uint32_t pos_ = 0;      // values read
  bool ok_ = true;
  const char* error_ = "";
  RangeError range_;
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
  // Nesting of arrays and maps; at most kMaxDepth whatever this says.
  std::size_t max_depth = 6;
  static constexpr std::size_t kMaxDepth = 32;
  // No limit but kMaxDepth (bytes this process wrote: the journal).
  static DecodeLimits unbounded() { return {SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX, kMaxDepth}; }
};

// A decoded message: [version, type, corr, fields...]. `fields` reads the
// message bytes in place: they must outlive the Envelope (see Reader).
struct Envelope {
  std::uint32_t version = 0;
  std::uint32_t type = 0;
  std::uint64_t corr = 0;
  Reader fields;  // positioned after corr
};

// Parses the envelope of a message body. The whole body is checked first
// (one pass, no allocation): malformed bytes, a truncated value, bytes after
// the message, or a count, length or nesting over `limits` are kProtocol
// with a short reason, never an exception; after that the fields can only
// fail on types, counts and ranges. The caller checks the version.
Status decode_envelope(const void* data, std::size_t size, Envelope* out,
                       const DecodeLimits& limits = DecodeLimits());

// The same check for bytes that are one msgpack array (any length): *out
// reads its elements. kProtocol ("expected an array" if it is another value).
Status decode_array(const void* data, std::size_t size, Reader* out,
                    const DecodeLimits& limits = DecodeLimits());

}  // namespace zgrid
