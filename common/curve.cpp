#include "common/curve.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace zgrid::curve {

namespace {

std::string trim(std::string s) {
  auto sp = [](unsigned char c) { return std::isspace(c) != 0; };
  while (!s.empty() && sp(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && sp(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

// Reads "name = value" lines (and a bare key line, stored under "").
// Files are tiny; anything larger than 4 KiB is not a key file.
Status read_fields(const std::string& path, std::map<std::string, std::string>* out) {
  std::ifstream f(path);
  if (!f) return Status::InvalidArgument("cannot read key file " + path);
  std::string line;
  std::size_t total = 0;
  while (std::getline(f, line)) {
    total += line.size() + 1;
    if (total > 4096) return Status::InvalidArgument(path + " is not a zgrid key file (too large)");
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    auto eq = line.find('=');
    if (eq == std::string::npos)
      (*out)[""] = line;
    else
      (*out)[trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
  }
  return Status::OK();
}

Status write_file(const std::string& path, const std::string& text, mode_t mode, bool overwrite) {
  int flags = O_WRONLY | O_CREAT | (overwrite ? O_TRUNC : O_EXCL);
  int fd = ::open(path.c_str(), flags, mode);
  if (fd < 0)
    return Status::InvalidArgument("cannot create " + path + ": " + std::strerror(errno) +
                                   (errno == EEXIST ? " (use --force to replace it)" : ""));
  // O_CREAT's mode is filtered by the umask and ignored for an existing file.
  bool ok = ::fchmod(fd, mode) == 0 &&
            ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok) return Status::Unavailable("cannot write " + path + ": " + std::strerror(err));
  return Status::OK();
}

}  // namespace

bool valid_key(const std::string& z85) {
  if (z85.size() != kKeyZ85Length) return false;
  std::uint8_t bin[32];
  return zmq_z85_decode(bin, z85.c_str()) != nullptr;
}

Result<KeyPair> generate() {
  char pub[41], sec[41];
  if (zmq_curve_keypair(pub, sec) != 0)
    return Status::Internal(std::string("cannot generate a CURVE key pair: ") +
                            zmq_strerror(zmq_errno()) + " (is libzmq built with libsodium?)");
  return KeyPair{pub, sec};
}

Result<std::pair<std::string, std::string>> write_pair(const std::string& dir,
                                                       const std::string& name, const KeyPair& kp,
                                                       bool overwrite) {
  std::string base = (dir.empty() ? std::string(".") : dir) + "/" + name;
  std::string pub_path = base + ".pub", key_path = base + ".key";
  // Neither file is touched unless both can be written: never a new secret
  // beside an old public key.
  if (!overwrite)
    for (const auto& p : {key_path, pub_path})
      if (::access(p.c_str(), F_OK) == 0)
        return Status::InvalidArgument("cannot create " + p +
                                       ": File exists (use --force to replace it)");
  ZG_RETURN_IF_ERROR(write_file(key_path,
                                "# zgrid CURVE secret key: keep it private (mode 0600)\n"
                                "public-key = " +
                                    kp.public_z85 + "\nsecret-key = " + kp.secret_z85 + "\n",
                                0600, overwrite));
  ZG_RETURN_IF_ERROR(write_file(pub_path,
                                "# zgrid CURVE public key: give it to the head's operator\n"
                                "public-key = " +
                                    kp.public_z85 + "\n",
                                0644, overwrite));
  return std::make_pair(pub_path, key_path);
}

Result<std::string> read_public(const std::string& path) {
  std::map<std::string, std::string> f;
  ZG_RETURN_IF_ERROR(read_fields(path, &f));
  std::string key = f.count("public-key") ? f["public-key"] : f[""];
  if (!valid_key(key))
    return Status::InvalidArgument(
        path + " holds no valid public key (expected 'public-key = " + "<40 Z85 characters>')");
  return key;
}

Result<KeyPair> read_secret(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return Status::InvalidArgument("cannot read key file " + path + ": " + std::strerror(errno));
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 0777));
    return Status::PermissionDenied("secret key file " + path + " may be read by others (mode " +
                                    mode + "): run chmod 600 " + path);
  }
  std::map<std::string, std::string> f;
  ZG_RETURN_IF_ERROR(read_fields(path, &f));
  KeyPair kp;
  kp.secret_z85 = f["secret-key"];
  if (!valid_key(kp.secret_z85))
    return Status::InvalidArgument(path + " holds no valid secret key (is it the .pub file?)");
  char pub[41];
  if (zmq_curve_public(pub, kp.secret_z85.c_str()) != 0)
    return Status::InvalidArgument(path + " holds no valid secret key");
  kp.public_z85 = pub;
  if (f.count("public-key") && f["public-key"] != kp.public_z85)
    return Status::InvalidArgument(path + ": its public-key does not match its secret-key");
  return kp;
}

Result<std::map<std::string, std::string>> read_dir(const std::string& dir,
                                                    std::vector<std::string>* problems) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr)
    return Status::InvalidArgument("cannot read key directory " + dir + ": " +
                                   std::strerror(errno));
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 4 && n.compare(n.size() - 4, 4, ".pub") == 0) names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  std::map<std::string, std::string> keys;
  for (const auto& n : names) {
    auto k = read_public(dir + "/" + n);
    if (!k.ok()) {
      if (problems) problems->push_back(k.status().message());
      continue;
    }
    keys.emplace(*k, n.substr(0, n.size() - 4));
  }
  return keys;
}

}  // namespace zgrid::curve
