// A zgrid service plug-in doing real numeric work: Monte Carlo estimates.
//
// Operations:
//   pi         request: a msgpack map {"samples": N, "seed": S} (or the text
//              "N S"); result: a msgpack map {"pi": estimate, "stderr":
//              standard error, "samples": N, "seed": S}. N in 1..10^9.
//   integrate  request: {"f": "exp"|"sin"|"x2", "a": lo, "b": hi,
//              "samples": N, "seed": S}; result {"integral", "stderr", "samples"}.
//   echo       the request, unchanged (for overhead benchmarks).
//
// Build (outside zgrid's tree, headers from `make install` or a checkout):
//   g++ -std=c++17 -O2 -shared -fPIC -fvisibility=hidden -I/usr/local/include
//       montecarlo.cpp -o libmontecarlo.so
// Register it with examples/services.d/montecarlo.toml (docs/services.md).
#define MSGPACK_NO_BOOST
#include <msgpack.hpp>
#include <zgrid/service.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace {

// splitmix64: small, fast, and reproducible from a seed on every platform.
struct Rng {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
};

struct Params {
  std::uint64_t samples = 0, seed = 0;
  std::string f = "x2";
  double a = 0, b = 1;
};

double num(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::POSITIVE_INTEGER:
      return static_cast<double>(o.via.u64);
    case msgpack::type::NEGATIVE_INTEGER:
      return static_cast<double>(o.via.i64);
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return o.via.f64;
    default:
      throw std::invalid_argument("expected a number");
  }
}

// Reads {"samples", "seed", ...} or the text "N S". Throws invalid_argument.
Params parse(std::string_view req) {
  Params p;
  if (!req.empty() && (static_cast<unsigned char>(req[0]) & 0xf0) == 0x80) {  // a fixmap
    std::size_t off = 0;
    msgpack::unpack_limit limit(16, 16, 256, 256, 0, 2);
    msgpack::object_handle oh =
        msgpack::unpack(req.data(), req.size(), off, nullptr, nullptr, limit);
    const msgpack::object& m = oh.get();
    for (std::uint32_t i = 0; i < m.via.map.size; ++i) {
      const auto& kv = m.via.map.ptr[i];
      if (kv.key.type != msgpack::type::STR) continue;
      std::string k(kv.key.via.str.ptr, kv.key.via.str.size);
      if (k == "samples")
        p.samples = static_cast<std::uint64_t>(num(kv.val));
      else if (k == "seed")
        p.seed = static_cast<std::uint64_t>(num(kv.val));
      else if (k == "a")
        p.a = num(kv.val);
      else if (k == "b")
        p.b = num(kv.val);
      else if (k == "f" && kv.val.type == msgpack::type::STR)
        p.f.assign(kv.val.via.str.ptr, kv.val.via.str.size);
    }
  } else {
    std::string text(req);
    char* end = nullptr;
    p.samples = std::strtoull(text.c_str(), &end, 10);
    p.seed = std::strtoull(end, nullptr, 10);
  }
  if (p.samples < 1 || p.samples > 1'000'000'000)
    throw std::invalid_argument("samples must be in 1..1000000000");
  return p;
}

class MonteCarlo {
 public:
  explicit MonteCarlo(std::string_view config) {
    if (!config.empty() && config != "default")
      throw std::runtime_error("montecarlo takes no config (got '" + std::string(config) + "')");
  }

  void handle(std::string_view op, std::string_view req, zgrid::Reply& reply) {
    if (op == "echo") return reply.result(req);
    Params p;
    try {
      p = parse(req);
    } catch (const std::exception& e) {
      return reply.fault("invalid_argument", e.what());
    }
    Rng rng{p.seed};
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    if (op == "pi") {
      std::uint64_t inside = 0;
      for (std::uint64_t i = 0; i < p.samples; ++i) {
        double x = rng.uniform(), y = rng.uniform();
        inside += x * x + y * y < 1.0;
      }
      double q = static_cast<double>(inside) / static_cast<double>(p.samples);
      pk.pack_map(4);
      pk.pack("pi").pack(4 * q);
      pk.pack("stderr").pack(4 * std::sqrt(q * (1 - q) / static_cast<double>(p.samples)));
      pk.pack("samples").pack(p.samples);
      pk.pack("seed").pack(p.seed);
    } else if (op == "integrate") {
      double (*f)(double) = nullptr;
      if (p.f == "exp")
        f = [](double x) { return std::exp(x); };
      else if (p.f == "sin")
        f = [](double x) { return std::sin(x); };
      else if (p.f == "x2")
        f = [](double x) { return x * x; };
      else
        return reply.fault("invalid_argument", "f must be exp, sin or x2");
      double sum = 0, sum2 = 0;
      for (std::uint64_t i = 0; i < p.samples; ++i) {
        double v = f(p.a + (p.b - p.a) * rng.uniform());
        sum += v;
        sum2 += v * v;
      }
      double n = static_cast<double>(p.samples);
      double mean = sum / n, var = std::max(0.0, sum2 / n - mean * mean);
      pk.pack_map(3);
      pk.pack("integral").pack((p.b - p.a) * mean);
      pk.pack("stderr").pack((p.b - p.a) * std::sqrt(var / n));
      pk.pack("samples").pack(p.samples);
    } else {
      return reply.fault("invalid_argument", "unknown operation");
    }
    reply.result(std::string_view(buf.data(), buf.size()));
  }
};

}  // namespace

ZGRID_EXPORT_SERVICE(MonteCarlo, "montecarlo", "1", "pi,integrate,echo")
