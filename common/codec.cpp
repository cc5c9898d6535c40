#include "common/codec.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

namespace zgrid {

zmq::message_t Writer::finish() {
  std::size_t n = size_;
  char* data = data_;
  data_ = nullptr;
  size_ = cap_ = 0;
  if (data == nullptr) return zmq::message_t();
  return zmq::message_t(
      data, n, [](void* d, void*) { std::free(d); }, nullptr);
}

void Writer::grow_to(std::size_t need) {
  std::size_t cap = cap_ == 0 ? need : cap_;
  while (cap < need) cap *= 2;
  void* p = std::realloc(data_, cap);
  if (p == nullptr) throw std::bad_alloc();
  data_ = static_cast<char*>(p);
  cap_ = cap;
}

Writer& Writer::i64(std::int64_t d) {
  // msgpack-c's choice: the shortest signed form below -32, else as unsigned.
  if (d >= -32) {
    if (d < 0) return byte(static_cast<unsigned>(static_cast<std::uint8_t>(d)));
    return u64(static_cast<std::uint64_t>(d));
  }
  char* p = room(9);
  std::uint64_t u = static_cast<std::uint64_t>(d);
  if (d >= -128) {
    p[0] = static_cast<char>(0xd0);
    store_be(p + 1, u, 1);
    size_ += 2;
  } else if (d >= -32768) {
    p[0] = static_cast<char>(0xd1);
    store_be(p + 1, u, 2);
    size_ += 3;
  } else if (d >= -(std::int64_t{1} << 31)) {
    p[0] = static_cast<char>(0xd2);
    store_be(p + 1, u, 4);
    size_ += 5;
  } else {
    p[0] = static_cast<char>(0xd3);
    store_be(p + 1, u, 8);
    size_ += 9;
  }
  return *this;
}

Writer& Writer::f64(double v) {
  // msgpack-c packs a double that holds an integer as that integer.
  if (v == v) {
    if (v >= 0 && v < 18446744073709551616.0 &&
        v == static_cast<double>(static_cast<std::uint64_t>(v)))
      return u64(static_cast<std::uint64_t>(v));
    if (v < 0 && v >= -9223372036854775808.0 &&
        v == static_cast<double>(static_cast<std::int64_t>(v)))
      return i64(static_cast<std::int64_t>(v));
  }
  std::uint64_t bits;
  std::memcpy(&bits, &v, 8);
  char* p = room(9);
  p[0] = static_cast<char>(0xcb);
  store_be(p + 1, bits, 8);
  size_ += 9;
  return *this;
}

namespace {

using u8 = std::uint8_t;

std::uint64_t be(const char* p, int n) {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<u8>(p[i]);
  return v;
}

// The bytes a value's header takes, from its first byte (0: never used).
// Lengths and counts follow the first byte; ext adds its type byte.
int header_size(u8 b) {
  if (b <= 0x7f || b >= 0xe0) return 1;  // fixint
  if (b <= 0xbf) return 1;               // fixmap, fixarray, fixstr
  switch (b) {
    case 0xc0:
    case 0xc2:
    case 0xc3:
      return 1;
    case 0xc4:
    case 0xd9:
      return 2;
    case 0xc5:
    case 0xda:
    case 0xdc:
    case 0xde:
      return 3;
    case 0xc6:
    case 0xdb:
    case 0xdd:
    case 0xdf:
      return 5;
    case 0xc7:
      return 3;  // ext 8: length, type
    case 0xc8:
      return 4;
    case 0xc9:
      return 6;
    case 0xca:
      return 5;
    case 0xcb:
      return 9;
    case 0xcc:
    case 0xd0:
      return 2;
    case 0xcd:
    case 0xd1:
      return 3;
    case 0xce:
    case 0xd2:
      return 5;
    case 0xcf:
    case 0xd3:
      return 9;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
      return 2;  // fixext: type byte
    default:
      return 0;  // 0xc1
  }
}

// Decodes the value at `p` whose header (header_size bytes) is in range.
// Body lengths are not checked here. The rarer encodings, out of line.
[[gnu::noinline]] void decode_head_slow(const char* p, Reader::Value* v) {
  const u8 b = static_cast<u8>(*p);
  v->ptr = nullptr;
  v->len = 0;
  v->size = static_cast<std::size_t>(header_size(b));
  if (b <= 0x7f) {
    v->kind = Kind::kUint;
    v->u = b;
    return;
  }
  if (b >= 0xe0) {
    v->kind = Kind::kNegInt;
    v->i = static_cast<std::int8_t>(b);
    return;
  }
  auto body = [&](Kind k, std::uint64_t n) {
    v->kind = k;
    v->len = static_cast<std::uint32_t>(n);
    v->ptr = p + v->size;
    v->size += n;
  };
  auto signed_int = [&](std::int64_t x) {
    if (x >= 0) {  // msgpack-c reads a non-negative signed encoding as unsigned
      v->kind = Kind::kUint;
      v->u = static_cast<std::uint64_t>(x);
    } else {
      v->kind = Kind::kNegInt;
      v->i = x;
    }
  };
  if (b <= 0x8f) {
    v->kind = Kind::kMap;
    v->u = b & 0x0f;
    return;
  }
  if (b <= 0x9f) {
    v->kind = Kind::kArray;
    v->u = b & 0x0f;
    return;
  }
  if (b <= 0xbf) return body(Kind::kStr, b & 0x1f);
  switch (b) {
    case 0xc0:
      v->kind = Kind::kNil;
      return;
    case 0xc2:
    case 0xc3:
      v->kind = Kind::kBool;
      v->u = b == 0xc3;
      return;
    case 0xc4:
      return body(Kind::kBin, be(p + 1, 1));
    case 0xc5:
      return body(Kind::kBin, be(p + 1, 2));
    case 0xc6:
      return body(Kind::kBin, be(p + 1, 4));
    case 0xc7:
      return body(Kind::kExt, be(p + 1, 1));
    case 0xc8:
      return body(Kind::kExt, be(p + 1, 2));
    case 0xc9:
      return body(Kind::kExt, be(p + 1, 4));
    case 0xca: {
      std::uint32_t bits = static_cast<std::uint32_t>(be(p + 1, 4));
      float f;
      std::memcpy(&f, &bits, 4);
      v->kind = Kind::kFloat;
      v->f = f;
      return;
    }
    case 0xcb: {
      std::uint64_t bits = be(p + 1, 8);
      double d;
      std::memcpy(&d, &bits, 8);
      v->kind = Kind::kFloat;
      v->f = d;
      return;
    }
    case 0xcc:
      v->kind = Kind::kUint;
      v->u = be(p + 1, 1);
      return;
    case 0xcd:
      v->kind = Kind::kUint;
      v->u = be(p + 1, 2);
      return;
    case 0xce:
      v->kind = Kind::kUint;
      v->u = be(p + 1, 4);
      return;
    case 0xcf:
      v->kind = Kind::kUint;
      v->u = be(p + 1, 8);
      return;
    case 0xd0:
      return signed_int(static_cast<std::int8_t>(be(p + 1, 1)));
    case 0xd1:
      return signed_int(static_cast<std::int16_t>(be(p + 1, 2)));
    case 0xd2:
      return signed_int(static_cast<std::int32_t>(be(p + 1, 4)));
    case 0xd3:
      return signed_int(static_cast<std::int64_t>(be(p + 1, 8)));
    case 0xd4:
      return body(Kind::kExt, 1);
    case 0xd5:
      return body(Kind::kExt, 2);
    case 0xd6:
      return body(Kind::kExt, 4);
    case 0xd7:
      return body(Kind::kExt, 8);
    case 0xd8:
      return body(Kind::kExt, 16);
    case 0xd9:
      return body(Kind::kStr, be(p + 1, 1));
    case 0xda:
      return body(Kind::kStr, be(p + 1, 2));
    case 0xdb:
      return body(Kind::kStr, be(p + 1, 4));
    case 0xdc:
      v->kind = Kind::kArray;
      v->u = be(p + 1, 2);
      return;
    case 0xdd:
      v->kind = Kind::kArray;
      v->u = be(p + 1, 4);
      return;
    case 0xde:
      v->kind = Kind::kMap;
      v->u = be(p + 1, 2);
      return;
    case 0xdf:
      v->kind = Kind::kMap;
      v->u = be(p + 1, 4);
      return;
    default:
      v->kind = Kind::kEnd;  // 0xc1: never used
      return;
  }
}

// The encodings a frame is mostly made of inline (small integers, short
// strings and arrays, nil, bin 8), the rest out of line.
inline void decode_head(const char* p, Reader::Value* v) {
  const u8 b = static_cast<u8>(*p);
  if (b <= 0x7f) {
    v->kind = Kind::kUint;
    v->u = b;
    v->size = 1;
  } else if (b >= 0xa0 && b <= 0xbf) {
    v->kind = Kind::kStr;
    v->len = b & 0x1f;
    v->ptr = p + 1;
    v->size = 1 + v->len;
  } else if (b >= 0x90 && b <= 0x9f) {
    v->kind = Kind::kArray;
    v->u = b & 0x0f;
    v->size = 1;
  } else if (b == 0xc4) {
    v->kind = Kind::kBin;
    v->len = static_cast<u8>(p[1]);
    v->ptr = p + 2;
    v->size = 2 + v->len;
  } else if (b == 0xc0) {
    v->kind = Kind::kNil;
    v->size = 1;
  } else {
    decode_head_slow(p, v);
  }
}

// Steps over `n` values at `p` (checked bytes); returns where they end.
const char* skip_values(const char* p, std::uint64_t n) {
  Reader::Value v;
  while (n > 0) {
    decode_head(p, &v);
    p += v.size;
    --n;
    if (v.kind == Kind::kArray)
      n += v.u;
    else if (v.kind == Kind::kMap)
      n += 2 * v.u;
  }
  return p;
}

enum class Check { kOk, kLimit, kTruncated, kMalformed };

// Checks that [p, end) starts with one whole msgpack value within `lim`,
// in the order msgpack-c's unpacker meets the same faults (a count over its
// limit as soon as its header is read; a string's length only once its
// bytes are all there). *stop: where the value ends.
Check check_value(const char* p, const char* end, const DecodeLimits& lim, const char** stop) {
  std::uint64_t left[DecodeLimits::kMaxDepth];  // values still to come in each open container
  std::size_t open = 0;
  const std::size_t max_depth = std::min(lim.max_depth, DecodeLimits::kMaxDepth);
  Reader::Value v;
  for (;;) {
    if (p >= end) return Check::kTruncated;
    if (end - p < 9) {  // every header is at most 9 bytes: check it fits
      int h = header_size(static_cast<u8>(*p));
      if (h == 0) return Check::kMalformed;
      if (end - p < h) return Check::kTruncated;
    }
    decode_head(p, &v);
    if (v.kind == Kind::kEnd) return Check::kMalformed;  // 0xc1
    if (v.kind == Kind::kArray || v.kind == Kind::kMap) {
      if (v.u > (v.kind == Kind::kArray ? lim.max_array : lim.max_map)) return Check::kLimit;
      // msgpack-c: a container may open inside at most max_depth - 1 others.
      if (open + 1 > lim.max_depth || open + 1 > max_depth) return Check::kLimit;
      p += v.size;
      if (v.u > 0) {
        left[open++] = v.kind == Kind::kArray ? v.u : 2 * v.u;
        continue;
      }
    } else {
      if (static_cast<std::size_t>(end - p) < v.size) return Check::kTruncated;
      if ((v.kind == Kind::kStr && v.len > lim.max_str) ||
          (v.kind == Kind::kBin && v.len > lim.max_bin) ||
          (v.kind == Kind::kExt && std::uint64_t{v.len} + 1 > lim.max_bin))
        return Check::kLimit;
      p += v.size;
    }
    // A value ended: so may the containers it closes.
    while (open > 0 && --left[open - 1] == 0) --open;
    if (open == 0) {
      *stop = p;
      return Check::kOk;
    }
  }
}

Status check_bytes(const void* data, std::size_t size, const DecodeLimits& lim) {
  if (size == 0) return Status::Protocol("empty message");
  const char* p = static_cast<const char*>(data);
  const char* stop = nullptr;
  switch (check_value(p, p + size, lim, &stop)) {
    case Check::kOk:
      break;
    case Check::kLimit:
      return Status::Protocol("message exceeds a decode limit");
    case Check::kTruncated:
      return Status::Protocol("truncated message");
    case Check::kMalformed:
      return Status::Protocol("malformed msgpack");
  }
  if (stop != p + size) return Status::Protocol("trailing bytes after the message");
  return Status::OK();
}

}  // namespace

void Reader::settle() {
  if (pending_ > 0) {
    p_ = skip_values(p_, pending_);
    pending_ = 0;
  }
}

bool Reader::next(const char* what, Value* v) {
  if (!ok_) return false;
  if (pos_ >= size_) {
    fail(what);
    return false;
  }
  settle();
  decode_head(p_, v);
  ++pos_;
  p_ += v->size;
  if (v->kind == Kind::kArray)
    pending_ = v->u;
  else if (v->kind == Kind::kMap)
    pending_ = 2 * v->u;
  return true;
}

Kind Reader::peek() {
  if (!ok_ || pos_ >= size_) return Kind::kEnd;
  settle();
  Value v;
  decode_head(p_, &v);
  return v.kind;
}

void Reader::skip() {
  Value v;
  (void)next("missing field", &v);
}

std::uint64_t Reader::u64() {
  Value v;
  if (!next("missing integer field", &v)) return 0;
  if (v.kind != Kind::kUint) {
    fail("expected an unsigned integer");
    return 0;
  }
  return v.u;
}

std::int64_t Reader::i64() {
  Value v;
  if (!next("missing integer field", &v)) return 0;
  if (v.kind == Kind::kUint) {
    if (v.u > static_cast<std::uint64_t>(INT64_MAX)) {
      fail("integer out of range");
      return 0;
    }
    return static_cast<std::int64_t>(v.u);
  }
  if (v.kind == Kind::kNegInt) return v.i;
  fail("expected an integer");
  return 0;
}

std::uint64_t Reader::u64_in(std::uint64_t lo, std::uint64_t hi, const char* field) {
  std::uint64_t v = u64();
  if (ok_ && (v < lo || v > hi)) {
    range_ = {field, static_cast<std::int64_t>(lo), static_cast<std::int64_t>(hi), v, false};
    fail("field out of range");
    return 0;
  }
  return v;
}

std::int64_t Reader::i64_in(std::int64_t lo, std::int64_t hi, const char* field) {
  if (peek() == Kind::kUint) {
    Reader look = *this;
    std::uint64_t u = look.u64();
    if (u > static_cast<std::uint64_t>(INT64_MAX)) {  // well formed, just far out of range
      *this = look;
      range_ = {field, lo, hi, u, false};
      fail("field out of range");
      return 0;
    }
  }
  std::int64_t v = i64();
  if (ok_ && (v < lo || v > hi)) {
    range_ = {field, lo, hi, static_cast<std::uint64_t>(v), v < 0};
    fail("field out of range");
    return 0;
  }
  return v;
}

double Reader::f64() {
  Value v;
  if (!next("missing number field", &v)) return 0;
  switch (v.kind) {
    case Kind::kFloat:
      return v.f;
    case Kind::kUint:
      return static_cast<double>(v.u);
    case Kind::kNegInt:
      return static_cast<double>(v.i);
    default:
      fail("expected a number");
      return 0;
  }
}

bool Reader::boolean() {
  Value v;
  if (!next("missing boolean field", &v)) return false;
  if (v.kind != Kind::kBool) {
    fail("expected a boolean");
    return false;
  }
  return v.u != 0;
}

std::string_view Reader::bytes(std::size_t max_len) {
  bool was_nil = false;
  std::string_view v = bytes_or_nil(&was_nil, max_len);
  if (was_nil) fail("expected a string");
  return v;
}

std::string_view Reader::bytes_or_nil(bool* was_nil, std::size_t max_len) {
  *was_nil = false;
  Value v;
  if (!next("missing string field", &v)) return {};
  if (v.kind == Kind::kNil) {
    *was_nil = true;
    return {};
  }
  if (v.kind != Kind::kStr && v.kind != Kind::kBin) {
    fail("expected a string");
    return {};
  }
  if (v.len > max_len) {
    fail("string too long");
    return {};
  }
  return {v.ptr, v.len};
}

Reader Reader::nested(Kind want, std::uint64_t max, const char* missing, const char* wrong,
                      const char* too_long) {
  Value v;
  Reader r;
  if (!next(missing, &v)) {
    r.fail(error_);
    return r;
  }
  if (v.kind != want) {
    fail(wrong);
    r.fail(wrong);
    return r;
  }
  if (v.u > max) {
    fail(too_long);
    r.fail(too_long);
    return r;
  }
  // The child starts where this reader's pending values are: it reads them,
  // this one steps over them when it reads on.
  return over_checked(p_, static_cast<std::uint32_t>(want == Kind::kMap ? 2 * v.u : v.u));
}

Reader Reader::array(std::uint32_t max_len) {
  return nested(Kind::kArray, max_len, "missing array field", "expected an array",
                "array too long");
}

Reader Reader::map(std::uint32_t max_pairs) {
  return nested(Kind::kMap, max_pairs, "missing map field", "expected a map", "map too long");
}

Status decode_envelope(const void* data, std::size_t size, Envelope* out, const DecodeLimits& lim) {
  ZG_RETURN_IF_ERROR(check_bytes(data, size, lim));
  const char* p = static_cast<const char*>(data);
  Reader::Value root, h[3];
  decode_head(p, &root);
  if (root.kind != Kind::kArray || root.u < 3)
    return Status::Protocol("message is not an array [version, type, corr, ...]");
  p += root.size;
  for (auto& x : h) {
    decode_head(p, &x);
    if (x.kind != Kind::kUint)
      return Status::Protocol("message header must be three unsigned integers");
    p += x.size;
  }
  if (h[0].u > UINT32_MAX || h[1].u > UINT32_MAX) return Status::Protocol("bad message header");
  out->version = static_cast<std::uint32_t>(h[0].u);
  out->type = static_cast<std::uint32_t>(h[1].u);
  out->corr = h[2].u;
  out->fields = Reader::over_checked(p, static_cast<std::uint32_t>(root.u - 3));
  return Status::OK();
}

Status decode_array(const void* data, std::size_t size, Reader* out, const DecodeLimits& lim) {
  ZG_RETURN_IF_ERROR(check_bytes(data, size, lim));
  const char* p = static_cast<const char*>(data);
  Reader::Value root;
  decode_head(p, &root);
  if (root.kind != Kind::kArray) return Status::Protocol("expected an array");
  *out = Reader::over_checked(p + root.size, static_cast<std::uint32_t>(root.u));
  return Status::OK();
}

}  // namespace zgrid
