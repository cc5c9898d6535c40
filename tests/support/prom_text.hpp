// Reading the Prometheus text format in tests: one sample's value, and every
// counter-like sample (names ending _total, _count, _sum, _bucket) to check
// that none decreases from one scrape to the next.
#pragma once

#include <map>
#include <sstream>
#include <string>

namespace zgrid::testing {

// The value of the sample written exactly as `key` (name and labels), or -1.
inline double Sample(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.size() > key.size() && line.compare(0, key.size(), key) == 0 &&
        line[key.size()] == ' ')
      return std::stod(line.substr(key.size() + 1));
  return -1;
}

inline std::map<std::string, double> CounterSamples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto sp = line.rfind(' ');
    std::string key = line.substr(0, sp), name = key.substr(0, key.find('{'));
    for (const char* suffix : {"_total", "_count", "_sum", "_bucket"})
      if (name.ends_with(suffix)) out[key] = std::stod(line.substr(sp + 1));
  }
  return out;
}

}  // namespace zgrid::testing
