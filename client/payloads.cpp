// The client library's payload helpers (<zgrid/client.hpp>,
// <zgrid/client_msgpack.hpp>): results as JSON, JSON to msgpack, text
// detection. Pure functions; thread-safe.
#include <zgrid/client.hpp>
#include <zgrid/client_msgpack.hpp>

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/protocol.hpp"
#include "common/util.hpp"

namespace zgrid::client {

// ---- payloads and results -------------------------------------------------------

namespace {

constexpr std::size_t kMaxJsonDepth = 32;

std::string base64(std::string_view in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    std::uint32_t v =
        (std::uint8_t(in[i]) << 16) | (std::uint8_t(in[i + 1]) << 8) | std::uint8_t(in[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out += t[(v >> k) & 63];
  }
  if (i < in.size()) {
    std::uint32_t v = std::uint8_t(in[i]) << 16;
    if (i + 1 < in.size()) v |= std::uint8_t(in[i + 1]) << 8;
    out += t[(v >> 18) & 63];
    out += t[(v >> 12) & 63];
    out += i + 1 < in.size() ? t[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// Strict UTF-8 (no overlong forms, no surrogates): what a JSON printer accepts.
bool valid_utf8(std::string_view s) {
  std::size_t i = 0, n = s.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t len;
    std::uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (std::size_t k = 1; k < len; ++k) {
      auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += len;
  }
  return true;
}

nlohmann::json to_json(const msgpack::object& o) {
  using nlohmann::json;
  switch (o.type) {
    case msgpack::type::NIL:
      return nullptr;
    case msgpack::type::BOOLEAN:
      return o.via.boolean;
    case msgpack::type::POSITIVE_INTEGER:
      return o.via.u64;
    case msgpack::type::NEGATIVE_INTEGER:
      return o.via.i64;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return o.via.f64;
    case msgpack::type::STR: {
      std::string_view v(o.via.str.ptr, o.via.str.size);
      if (valid_utf8(v)) return std::string(v);
      return json{{"base64", base64(v)}};
    }
    case msgpack::type::BIN:
      return json{{"base64", base64(std::string_view(o.via.bin.ptr, o.via.bin.size))}};
    case msgpack::type::EXT:
      return json{{"ext", o.via.ext.type()},
                  {"base64", base64(std::string_view(o.via.ext.data(), o.via.ext.size))}};
    case msgpack::type::ARRAY: {
      json a = json::array();
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) a.push_back(to_json(o.via.array.ptr[i]));
      return a;
    }
    case msgpack::type::MAP: {
      json m = json::object();
      for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& kv = o.via.map.ptr[i];
        std::string key = kv.key.type == msgpack::type::STR
                              ? std::string(kv.key.via.str.ptr, kv.key.via.str.size)
                              : to_json(kv.key).dump();
        m[key] = to_json(kv.val);
      }
      return m;
    }
  }
  return nullptr;
}

}  // namespace

Result<msgpack::object_handle> unpack_msgpack(std::string_view bytes) {
  if (bytes.empty()) return Status::InvalidArgument("empty: not msgpack");
  try {
    std::size_t off = 0;
    msgpack::unpack_limit limit(1 << 20, 1 << 16, proto::kMaxPayload, proto::kMaxPayload,
                                proto::kMaxPayload, kMaxJsonDepth);
    msgpack::object_handle oh =
        msgpack::unpack(bytes.data(), bytes.size(), off, nullptr, nullptr, limit);
    if (off != bytes.size()) return Status::InvalidArgument("trailing bytes after a msgpack value");
    return oh;
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("not msgpack: ") + e.what());
  }
}

bool is_text(std::string_view bytes) {
  for (char c : bytes) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t' && c != '\n' && c != '\r') || u == 0x7f) return false;
  }
  return valid_utf8(bytes);
}

std::string result_to_json(std::string_view bytes) {
  if (is_text(bytes)) return nlohmann::json(std::string(bytes)).dump();
  if (auto oh = unpack_msgpack(bytes); oh.ok()) {
    try {
      return to_json(oh->get()).dump();
    } catch (const std::exception&) {
      // fall through: shown as bytes
    }
  }
  return nlohmann::json{{"base64", base64(bytes)}}.dump();
}

Result<std::string> json_to_msgpack(std::string_view text) {
  try {
    auto j = nlohmann::json::parse(text.begin(), text.end());
    std::vector<std::uint8_t> v = nlohmann::json::to_msgpack(j);
    return std::string(v.begin(), v.end());
  } catch (const nlohmann::json::exception& e) {
    return Status::InvalidArgument(std::string("not JSON: ") + e.what());
  }
}

void json_escape(std::string& out, std::string_view s) {
  append_json_string(out, s);
}

}  // namespace zgrid::client
