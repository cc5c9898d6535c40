#include "common/codec.hpp"

#include <msgpack.hpp>

#include <cstdlib>

namespace zgrid {

zmq::message_t Writer::finish() {
  std::size_t n = buf_.size();
  char* data = buf_.release();
  if (data == nullptr) return zmq::message_t();
  return zmq::message_t(
      data, n, [](void* d, void*) { std::free(d); }, nullptr);
}

Reader::Reader(const msgpack::object& arr, std::uint32_t start) {
  if (arr.type != msgpack::type::ARRAY) {
    fail("expected an array");
    return;
  }
  elems_ = arr.via.array.ptr;
  size_ = arr.via.array.size;
  pos_ = start;
}

const msgpack::object* Reader::next(const char* what) {
  if (!ok_) return nullptr;
  if (pos_ >= size_) {
    fail(what);
    return nullptr;
  }
  return &elems_[pos_++];
}

const msgpack::object* Reader::object() {
  return next("missing field");
}

std::uint64_t Reader::u64() {
  const msgpack::object* o = next("missing integer field");
  if (!o) return 0;
  if (o->type != msgpack::type::POSITIVE_INTEGER) {
    fail("expected an unsigned integer");
    return 0;
  }
  return o->via.u64;
}

std::int64_t Reader::i64() {
  const msgpack::object* o = next("missing integer field");
  if (!o) return 0;
  if (o->type == msgpack::type::POSITIVE_INTEGER) {
    if (o->via.u64 > static_cast<std::uint64_t>(INT64_MAX)) {
      fail("integer out of range");
      return 0;
    }
    return static_cast<std::int64_t>(o->via.u64);
  }
  if (o->type == msgpack::type::NEGATIVE_INTEGER) return o->via.i64;
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
  const msgpack::object* o = ok_ && pos_ < size_ ? &elems_[pos_] : nullptr;
  bool huge = o && o->type == msgpack::type::POSITIVE_INTEGER &&
              o->via.u64 > static_cast<std::uint64_t>(INT64_MAX);
  if (huge) {  // well formed, just far out of range
    ++pos_;
    range_ = {field, lo, hi, o->via.u64, false};
    fail("field out of range");
    return 0;
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
  const msgpack::object* o = next("missing number field");
  if (!o) return 0;
  switch (o->type) {
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return o->via.f64;
    case msgpack::type::POSITIVE_INTEGER:
      return static_cast<double>(o->via.u64);
    case msgpack::type::NEGATIVE_INTEGER:
      return static_cast<double>(o->via.i64);
    default:
      fail("expected a number");
      return 0;
  }
}

bool Reader::boolean() {
  const msgpack::object* o = next("missing boolean field");
  if (!o) return false;
  if (o->type != msgpack::type::BOOLEAN) {
    fail("expected a boolean");
    return false;
  }
  return o->via.boolean;
}

std::string_view Reader::bytes(std::size_t max_len) {
  bool was_nil = false;
  std::string_view v = bytes_or_nil(&was_nil, max_len);
  if (was_nil) fail("expected a string");
  return v;
}

std::string_view Reader::bytes_or_nil(bool* was_nil, std::size_t max_len) {
  *was_nil = false;
  const msgpack::object* o = next("missing string field");
  if (!o) return {};
  std::string_view v;
  if (o->type == msgpack::type::STR)
    v = {o->via.str.ptr, o->via.str.size};
  else if (o->type == msgpack::type::BIN)
    v = {o->via.bin.ptr, o->via.bin.size};
  else if (o->type == msgpack::type::NIL) {
    *was_nil = true;
    return {};
  } else {
    fail("expected a string");
    return {};
  }
  if (v.size() > max_len) {
    fail("string too long");
    return {};
  }
  return v;
}

Reader Reader::array(std::uint32_t max_len) {
  const msgpack::object* o = next("missing array field");
  Reader r;
  if (!o) {
    r.fail(error_);
    return r;
  }
  if (o->type != msgpack::type::ARRAY) {
    fail("expected an array");
    r.fail("expected an array");
    return r;
  }
  if (o->via.array.size > max_len) {
    fail("array too long");
    r.fail("array too long");
    return r;
  }
  return Reader(*o);
}

MapView::MapView(const msgpack::object* obj) {
  if (obj && obj->type == msgpack::type::MAP) obj_ = obj;
}

const msgpack::object* MapView::find(std::string_view key) const {
  if (!obj_) return nullptr;
  const auto& m = obj_->via.map;
  for (std::uint32_t i = 0; i < m.size; ++i) {
    const auto& k = m.ptr[i].key;
    if (k.type == msgpack::type::STR && std::string_view(k.via.str.ptr, k.via.str.size) == key)
      return &m.ptr[i].val;
  }
  return nullptr;
}

std::uint64_t MapView::u64(std::string_view key, std::uint64_t dflt) const {
  const msgpack::object* o = find(key);
  return o && o->type == msgpack::type::POSITIVE_INTEGER ? o->via.u64 : dflt;
}

std::int64_t MapView::i64(std::string_view key, std::int64_t dflt) const {
  const msgpack::object* o = find(key);
  if (!o) return dflt;
  if (o->type == msgpack::type::POSITIVE_INTEGER) return static_cast<std::int64_t>(o->via.u64);
  if (o->type == msgpack::type::NEGATIVE_INTEGER) return o->via.i64;
  return dflt;
}

double MapView::f64(std::string_view key, double dflt) const {
  const msgpack::object* o = find(key);
  if (!o) return dflt;
  if (o->type == msgpack::type::FLOAT64 || o->type == msgpack::type::FLOAT32) return o->via.f64;
  if (o->type == msgpack::type::POSITIVE_INTEGER) return static_cast<double>(o->via.u64);
  return dflt;
}

bool MapView::boolean(std::string_view key, bool dflt) const {
  const msgpack::object* o = find(key);
  return o && o->type == msgpack::type::BOOLEAN ? o->via.boolean : dflt;
}

std::string MapView::str(std::string_view key) const {
  const msgpack::object* o = find(key);
  if (o && o->type == msgpack::type::STR) return std::string(o->via.str.ptr, o->via.str.size);
  if (o && o->type == msgpack::type::BIN) return std::string(o->via.bin.ptr, o->via.bin.size);
  return {};
}

namespace {
// Strings and binaries stay in the message buffer: no copy per request.
bool reference_all(msgpack::type::object_type, std::size_t, void*) {
  return true;
}
}  // namespace

Status decode_envelope(const void* data, std::size_t size, Envelope* out, const DecodeLimits& lim) {
  if (size == 0) return Status::Protocol("empty message");
  try {
    std::size_t off = 0;
    msgpack::unpack_limit limit(lim.max_array, lim.max_map, lim.max_str, lim.max_bin, lim.max_bin,
                                lim.max_depth);
    out->handle =
        msgpack::unpack(static_cast<const char*>(data), size, off, reference_all, nullptr, limit);
    if (off != size) return Status::Protocol("trailing bytes after the message");
  } catch (const msgpack::size_overflow&) {
    return Status::Protocol("message exceeds a decode limit");
  } catch (const msgpack::insufficient_bytes&) {
    return Status::Protocol("truncated message");
  } catch (const std::exception&) {
    return Status::Protocol("malformed msgpack");
  }
  const msgpack::object& root = out->handle.get();
  if (root.type != msgpack::type::ARRAY || root.via.array.size < 3)
    return Status::Protocol("message is not an array [version, type, corr, ...]");
  const msgpack::object* e = root.via.array.ptr;
  if (e[0].type != msgpack::type::POSITIVE_INTEGER ||
      e[1].type != msgpack::type::POSITIVE_INTEGER || e[2].type != msgpack::type::POSITIVE_INTEGER)
    return Status::Protocol("message header must be three unsigned integers");
  if (e[0].via.u64 > UINT32_MAX || e[1].via.u64 > UINT32_MAX)
    return Status::Protocol("bad message header");
  out->version = static_cast<std::uint32_t>(e[0].via.u64);
  out->type = static_cast<std::uint32_t>(e[1].via.u64);
  out->corr = e[2].via.u64;
  out->fields = Reader(root, 3);
  return Status::OK();
}

}  // namespace zgrid
