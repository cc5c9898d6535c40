// Checks the factorization kernel against coreutils `factor` (the reference implementation on
// every machine we run on) on random inputs of each size class plus known hard cases, and checks
// the parser and formatter used by the factorize service.
#include "services/factorize_kernel.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace zgrid::factor {

// Test seams implemented in factorize_kernel.cpp (deliberately not in the public header).
namespace detail {
std::uint64_t rho_divisor_for_test(std::uint64_t n) noexcept;
void use_baseline_isa_for_test(bool baseline) noexcept;
}  // namespace detail

namespace {

using u64 = std::uint64_t;
using Factors = std::vector<u64>;

// Runs `factor < file` once for all inputs and returns the factor lists in input order.
std::vector<Factors> coreutils_factor(const std::vector<u64>& inputs) {
  char path[] = "/tmp/zgrid_factor_test_XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  if (fd < 0) return {};
  std::string text;
  text.reserve(inputs.size() * 21);
  for (u64 v : inputs) {
    text += std::to_string(v);
    text += '\n';
  }
  std::size_t off = 0;
  while (off < text.size()) {
    const ssize_t w = write(fd, text.data() + off, text.size() - off);
    if (w <= 0) break;
    off += static_cast<std::size_t>(w);
  }
  close(fd);
  EXPECT_EQ(off, text.size());

  std::vector<Factors> result;
  result.reserve(inputs.size());
  const std::string cmd = std::string("/usr/bin/factor < ") + path;
  FILE* pipe = popen(cmd.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  if (pipe != nullptr) {
    std::string line;
    char chunk[4096];
    while (std::fgets(chunk, sizeof chunk, pipe) != nullptr) {
      line += chunk;
      if (line.empty() || line.back() != '\n') continue;  // long line: keep reading
      // "n: p1 p2 ...\n"
      const char* s = line.c_str();
      char* end = nullptr;
      std::strtoull(s, &end, 10);
      EXPECT_EQ(*end, ':') << line;
      Factors f;
      s = end + 1;
      while (true) {
        while (*s == ' ') ++s;
        if (*s < '0' || *s > '9') break;
        f.push_back(std::strtoull(s, &end, 10));
        s = end;
      }
      result.push_back(std::move(f));
      line.clear();
    }
    EXPECT_EQ(pclose(pipe), 0);
  }
  unlink(path);
  EXPECT_EQ(result.size(), inputs.size());
  return result;
}

// Compares factorize() with the reference for every input, and checks that the factors multiply
// back to n and are prime. Stops reporting after a handful of failures to keep the log readable.
void check_against_coreutils(const std::vector<u64>& inputs) {
  const std::vector<Factors> expected = coreutils_factor(inputs);
  ASSERT_EQ(expected.size(), inputs.size());
  int failures = 0;
  u64 out[kMaxFactors];
  for (std::size_t i = 0; i < inputs.size() && failures < 10; ++i) {
    const u64 n = inputs[i];
    const int count = factorize(n, out);
    const Factors got(out, out + count);
    if (got != expected[i]) {
      ++failures;
      std::string g, e;
      for (u64 v : got) g.append(" ").append(std::to_string(v));
      for (u64 v : expected[i]) e.append(" ").append(std::to_string(v));
      ADD_FAILURE() << "n=" << n << " got:" << g << " expected:" << e;
      continue;
    }
    unsigned __int128 product = 1;
    for (u64 p : got) {
      product *= p;
      if (!is_prime(p)) {
        ++failures;
        ADD_FAILURE() << "n=" << n << ": factor " << p << " not reported prime";
      }
    }
    if (n > 1 && product != n) {
      ++failures;
      ADD_FAILURE() << "n=" << n << ": product of factors differs";
    }
    // is_prime must agree with the reference, too.
    const bool prime = expected[i].size() == 1 && expected[i][0] == n;
    if (is_prime(n) != prime) {
      ++failures;
      ADD_FAILURE() << "is_prime(" << n << ") wrong";
    }
  }
  EXPECT_EQ(failures, 0);
}

// Simple independent primality for 32-bit values (trial division) so the semiprime generator does
// not depend on the code under test.
bool slow_is_prime32(u64 n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (u64 d = 3; d * d <= n; d += 2) {
    if (n % d == 0) return false;
  }
  return true;
}

u64 random_prime_between(std::mt19937_64& rng, u64 lo, u64 hi) {
  std::uniform_int_distribution<u64> dist(lo, hi);
  while (true) {
    const u64 v = dist(rng) | 1;
    if (v <= hi && slow_is_prime32(v)) return v;
  }
}

constexpr u64 kSeed = 20261122;

TEST(FactorizeKernel, Random32) {
  std::printf("seed %llu\n", static_cast<unsigned long long>(kSeed));
  std::mt19937_64 rng(kSeed);
  std::vector<u64> inputs(1000000);
  for (u64& v : inputs) v = rng() >> 32;
  check_against_coreutils(inputs);
}

TEST(FactorizeKernel, Random64) {
  std::printf("seed %llu\n", static_cast<unsigned long long>(kSeed + 1));
  std::mt19937_64 rng(kSeed + 1);
  std::vector<u64> inputs(20000);
  for (u64& v : inputs) v = rng();
  check_against_coreutils(inputs);
}

TEST(FactorizeKernel, Semiprimes32x32) {
  std::printf("seed %llu\n", static_cast<unsigned long long>(kSeed + 2));
  std::mt19937_64 rng(kSeed + 2);
  std::vector<u64> inputs(1000);
  for (u64& v : inputs) {
    v = random_prime_between(rng, u64{1} << 31, (u64{1} << 32) - 1) *
        random_prime_between(rng, u64{1} << 31, (u64{1} << 32) - 1);
  }
  check_against_coreutils(inputs);
}

// The same checks with the run-time CPU dispatch forced to the baseline ISA (scalar trial
// division, ECM without BMI2), so both variants stay covered on machines that have AVX2.
TEST(FactorizeKernel, BaselineIsaPaths) {
  struct Restore {
    ~Restore() { detail::use_baseline_isa_for_test(false); }
  } restore;
  detail::use_baseline_isa_for_test(true);
  std::mt19937_64 rng(kSeed + 4);
  std::vector<u64> inputs;
  for (int i = 0; i < 200000; ++i) inputs.push_back(rng() >> 32);
  for (int i = 0; i < 5000; ++i) inputs.push_back(rng());
  for (int i = 0; i < 200; ++i) {
    inputs.push_back(random_prime_between(rng, u64{1} << 31, (u64{1} << 32) - 1) *
                     random_prime_between(rng, u64{1} << 31, (u64{1} << 32) - 1));
  }
  check_against_coreutils(inputs);
}

// Rho is only the last resort behind ECM, so exercise it directly.
TEST(FactorizeKernel, RhoFallback) {
  std::mt19937_64 rng(kSeed + 5);
  for (int i = 0; i < 60; ++i) {
    const int bits = 14 + i % 19;  // 14..32-bit factors
    const u64 p = random_prime_between(rng, u64{1} << (bits - 1), (u64{1} << bits) - 1);
    const u64 q = random_prime_between(rng, u64{1} << 31, (u64{1} << 32) - 1);
    unsigned __int128 wide = static_cast<unsigned __int128>(p) * q;
    if (i % 3 == 0 && wide * 3 < (static_cast<unsigned __int128>(1) << 64)) wide *= 3;
    if (i % 4 == 0 && bits <= 16) wide *= p;  // a repeated factor
    if (wide >> 64) continue;
    const u64 n = static_cast<u64>(wide);
    const u64 d = detail::rho_divisor_for_test(n);
    EXPECT_TRUE(d > 1 && d < n && n % d == 0) << "n=" << n << " d=" << d;
  }
}

// Products of 2..4 primes of mixed sizes: exercises every splitting path (rho, ECM, recursion on
// composite cofactors) rather than only the common shapes above.
TEST(FactorizeKernel, MixedProducts) {
  std::printf("seed %llu\n", static_cast<unsigned long long>(kSeed + 3));
  std::mt19937_64 rng(kSeed + 3);
  std::vector<u64> inputs;
  while (inputs.size() < 6000) {
    const int k = 2 + static_cast<int>(rng() % 3);
    unsigned __int128 prod = 1;
    for (int i = 0; i < k; ++i) {
      const int bits = 12 + static_cast<int>(rng() % 21);  // 12..32-bit primes
      const u64 p = random_prime_between(rng, u64{1} << (bits - 1), (u64{1} << bits) - 1);
      prod *= p;
      if (rng() % 4 == 0) prod *= p;  // repeated factors too
    }
    if (prod >> 64) continue;
    inputs.push_back(static_cast<u64>(prod));
  }
  check_against_coreutils(inputs);
}

TEST(FactorizeKernel, EdgeCases) {
  std::vector<u64> inputs = {
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8,
      9,
      25,
      49,
      61,
      63,
      64,
      65,
      97,
      121,
      4093,
      4095,
      4096,
      4097,
      4099,
      4093ull * 4093,
      4093ull * 4099,
      4099ull * 4099,
      4099ull * 4111,
      4099ull * 4099 * 4099,
      65521ull * 65521,
      65537ull * 65537,
      2147483647,
      2147483648,
      4294967291,
      4294967295,
      4294967296,
      4294967297,
      4294967311,
      18446744073709551557ull,  // largest prime below 2^64
      18446744073709551615ull,  // 2^64 - 1
      18446744073709551614ull,
      18446744073709551613ull,
      18446744073709551556ull,
      4294967291ull * 4294967291ull,   // square of the largest 32-bit prime
      4294967291ull * 4294967279ull,   // two largest 32-bit primes
      2642239ull * 2642239 * 2642239,  // largest prime cube below 2^64
      2642231ull * 2642231 * 2642231,
      1048573ull * 1048573 * 1048573,
      65521ull * 65521 * 65521 * 65521,  // fourth power
      3ull * 4294967291ull * 1431655751ull,
      // Carmichael numbers
      561,
      1105,
      1729,
      2465,
      2821,
      6601,
      8911,
      41041,
      825265,
      321197185,
      5394826801ull,
      232250619601ull,
      9746347772161ull,
      // strong pseudoprimes to small base sets
      2047,
      1373653,
      25326001,
      3215031751ull,
      4759123141ull,
      1122004669633ull,
      2152302898747ull,
      3474749660383ull,
      341550071728321ull,
      3825123056546413051ull,
      // 2^63 neighbourhood
      9223372036854775807ull,
      9223372036854775808ull,
      9223372036854775809ull,
  };
  for (int k = 0; k < 64; ++k) inputs.push_back(u64{1} << k);
  for (int k = 1; k < 64; ++k) inputs.push_back((u64{1} << k) - 1);
  for (int k = 1; k < 64; ++k) inputs.push_back((u64{1} << k) + 1);
  check_against_coreutils(inputs);

  u64 out[kMaxFactors];
  EXPECT_EQ(factorize(0, out), 0);
  EXPECT_EQ(factorize(1, out), 0);
  EXPECT_FALSE(is_prime(0));
  EXPECT_FALSE(is_prime(1));
  EXPECT_TRUE(is_prime(2));
  EXPECT_TRUE(is_prime(18446744073709551557ull));
  EXPECT_FALSE(is_prime(3825123056546413051ull));
  EXPECT_FALSE(is_prime(3215031751ull));
  EXPECT_EQ(factorize(u64{1} << 63, out), 63);
}

TEST(FactorizeKernel, ParseU64) {
  EXPECT_EQ(parse_u64("abc"), std::nullopt);
  EXPECT_EQ(parse_u64("-5"), std::nullopt);
  EXPECT_EQ(parse_u64("+5"), std::nullopt);
  EXPECT_EQ(parse_u64("0"), std::nullopt);
  EXPECT_EQ(parse_u64("000"), std::nullopt);
  EXPECT_EQ(parse_u64(""), std::nullopt);
  EXPECT_EQ(parse_u64("   "), std::nullopt);
  EXPECT_EQ(parse_u64("18446744073709551616"), std::nullopt);  // 2^64
  EXPECT_EQ(parse_u64("99999999999999999999"), std::nullopt);
  EXPECT_EQ(parse_u64("184467440737095516150"), std::nullopt);
  EXPECT_EQ(parse_u64("18446744073709551615"), 18446744073709551615ull);
  EXPECT_EQ(parse_u64(" 42\r"), 42u);
  EXPECT_EQ(parse_u64("\t7 \t"), 7u);
  EXPECT_EQ(parse_u64("1"), 1u);
  EXPECT_EQ(parse_u64("007"), 7u);
  EXPECT_EQ(parse_u64("4 2"), std::nullopt);
  EXPECT_EQ(parse_u64("42x"), std::nullopt);
  EXPECT_EQ(parse_u64("0x10"), std::nullopt);
  EXPECT_EQ(parse_u64("1e5"), std::nullopt);
  EXPECT_EQ(parse_u64("42\n"), std::nullopt);
  EXPECT_EQ(parse_u64(std::string_view("4\0"
                                       "2",
                                       3)),
            std::nullopt);
}

TEST(FactorizeKernel, FormatFactors) {
  char buf[21 * 64];
  u64 out[kMaxFactors];
  auto fmt = [&](u64 n) {
    const int count = factorize(n, out);
    return std::string(buf, format_factors(n, out, count, buf));
  };
  EXPECT_EQ(fmt(1), "1");
  EXPECT_EQ(fmt(2), "2");
  EXPECT_EQ(fmt(12), "2 * 2 * 3");
  EXPECT_EQ(fmt(18446744073709551615ull), "3 * 5 * 17 * 257 * 641 * 65537 * 6700417");
  EXPECT_EQ(fmt(18446744073709551557ull), "18446744073709551557");
  std::string pow2 = "2";
  for (int i = 1; i < 62; ++i) pow2 += " * 2";
  EXPECT_EQ(fmt(u64{1} << 62), pow2);
}

}  // namespace
}  // namespace zgrid::factor
