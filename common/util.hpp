// Small helpers: random ids, durations with units, hostnames.
// Thread safety: all functions are safe to call from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.hpp"
#include "common/status.hpp"

namespace zgrid {

// 128 random bits from the OS as 32 lower-case hex characters (session ids).
std::string random_id128();
// 64 random bits from the OS as 16 hex characters (client and node ids).
std::string random_id64();
std::uint64_t random_u64();

// True when `id` is 1..64 printable ASCII characters without spaces (client, node ids).
bool valid_name(std::string_view id);

// Parses "300s", "5m", "1500ms", "1h", "2.5s" or a bare number of seconds.
Result<Millis> parse_duration(std::string_view text);
// Renders a duration the way people read it: "1500ms", "5s", "2m30s".
std::string format_duration(Millis ms);
// Parses a size: "64M", "1.5G", "4096", with B, K, M, G (powers of 1024).
Result<std::uint64_t> parse_size(std::string_view text);

std::string hostname();

// A list of head endpoints (failover): "tcp://a:5555,tcp://b:5555" -> its
// items, spaces around each trimmed, empty items dropped. A single endpoint
// is a list of one.
std::vector<std::string> split_endpoints(std::string_view list);

// Appends `s` as a JSON string literal (quotes, escapes, control characters
// as \u00XX). Other bytes go as they are, or, with `valid_utf8`, each byte
// that is not part of a well-formed UTF-8 sequence becomes U+FFFD.
void append_json_string(std::string& out, std::string_view s, bool valid_utf8 = false);

}  // namespace zgrid
