// msgpack payloads and results with the zgrid client library.
//
// For msgpack-speaking services: send_packed() packs a value and sends it;
// unpack_msgpack() reads a result with decode limits (untrusted bytes never
// ask for gigabytes). Needs msgpack-cxx (<msgpack.hpp>, built with
// MSGPACK_NO_BOOST, which zgrid::client passes on); <zgrid/client.hpp>
// alone does not.
//
// Thread safety: as for the BrokerClient used; unpack_msgpack is stateless.
#ifndef ZGRID_CLIENT_MSGPACK_HPP_
#define ZGRID_CLIENT_MSGPACK_HPP_

#include <zgrid/client.hpp>

#include <msgpack.hpp>
#include <string_view>

namespace zgrid::client {

// Packs `value` (anything msgpack-cxx can pack) and sends it.
template <class T>
Status send_packed(BrokerClient& client, const T& value, std::string_view user_data) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, value);
  return client.send(std::string_view(buf.data(), buf.size()), user_data);
}

// Exactly one msgpack value (kInvalidArgument otherwise). The handle owns a copy.
Result<msgpack::object_handle> unpack_msgpack(std::string_view bytes);

}  // namespace zgrid::client

#endif  // ZGRID_CLIENT_MSGPACK_HPP_
