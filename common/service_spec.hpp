// Service names with versions and operations: how a session names the
// service it wants, and how a node advertises what it hosts. One parser and
// one matcher, used by the head (routing) and the node (picking an instance).
//
//   session side:  name[@version][/operation]   "montecarlo", "montecarlo@2/pi"
//   node side:     name@version                 "montecarlo@2" (one per hosted service)
//
// A bare name matches every version (the node picks its highest); name@version
// matches exactly. Versions compare as dotted numbers when both are ("1.10" >
// "1.9"), else as strings. The operation is not part of routing: every
// operation of a name@version is hosted wherever it is.
//
// Thread safety: stateless functions. Views point into the argument.
#pragma once

#include <string>
#include <string_view>

#include "common/status.hpp"

namespace zgrid::spec {

struct ServiceSpec {
  std::string_view name;
  std::string_view version;    // empty: any
  std::string_view operation;  // empty: the service's default (its first operation)
};

// Parses a session's service string. Errors: kInvalidArgument for an empty
// name, version or operation after its separator, or characters outside
// [A-Za-z0-9_.+-] in any part.
Result<ServiceSpec> parse(std::string_view text);

// Splits an advertised "name@version" (no '@': version empty).
ServiceSpec parse_advertised(std::string_view advertised);

// "name@version".
std::string advertised(std::string_view name, std::string_view version);

// True when a node advertising `advertised` can run a session asking for `wanted`.
bool matches(const ServiceSpec& wanted, std::string_view advertised);

// <0, 0, >0 like strcmp, comparing dotted numbers numerically.
int compare_versions(std::string_view a, std::string_view b);

// True for a valid name, version or operation part (1..64 of [A-Za-z0-9_.+-]).
bool valid_part(std::string_view part);

}  // namespace zgrid::spec
