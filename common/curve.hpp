// CURVE key files (docs/security.md).
//
// A key pair is two files written by `zgrid keygen`:
//   NAME.pub  "public-key = <40 Z85 characters>"     (share it)
//   NAME.key  "public-key = ...\nsecret-key = ..."   (mode 0600, never shared)
// An authorized-keys directory holds one NAME.pub per admitted peer; NAME is
// how logs and `zgrid sessions` name the key.
//
// Secrets never appear in a Status message or a log line: errors name the
// file, not its content.
//
// Thread safety: stateless functions.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/status.hpp"

namespace zgrid::curve {

inline constexpr std::size_t kKeyZ85Length = 40;

struct KeyPair {
  std::string public_z85;
  std::string secret_z85;
};

// True when `z85` is 40 Z85 characters that decode to a 32-byte key.
bool valid_key(const std::string& z85);

// A fresh CURVE key pair (libsodium through libzmq).
Result<KeyPair> generate();

// Writes DIR/NAME.pub and DIR/NAME.key (0600, created exclusively unless
// `overwrite`). Returns the two paths.
Result<std::pair<std::string, std::string>> write_pair(const std::string& dir,
                                                       const std::string& name, const KeyPair& kp,
                                                       bool overwrite);

// Reads a public key file ("public-key = X", or a bare Z85 line).
Result<std::string> read_public(const std::string& path);

// Reads a secret key file; refuses one that group or others may read.
Result<KeyPair> read_secret(const std::string& path);

// The keys of an authorized-keys directory: Z85 public key -> name (the file
// name without .pub). Unreadable or malformed files are skipped and named in
// *problems; a missing or unreadable directory is an error.
Result<std::map<std::string, std::string>> read_dir(const std::string& dir,
                                                    std::vector<std::string>* problems);

}  // namespace zgrid::curve
