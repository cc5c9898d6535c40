// Prime factorization kernel. Pipeline for one n:
//   1. strip powers of two (ctz), then trial-divide by odd primes with the multiply-by-inverse
//      divisibility test (n * p^-1 mod 2^w <= (2^w - 1) / p, the product being the quotient).
//      Below 2^32 with AVX2 this runs 16 primes per step over every prime below 2^16, which
//      factors such inputs completely; otherwise it stops at a size-dependent bound, and as soon
//      as p^2 exceeds the rest (which then is prime);
//   2. primality of what is left: a 64 KiB bitmap below 2^20, deterministic Miller-Rabin in
//      Montgomery form otherwise (bases {2, 7, 61} below 2^32; base 2 and then the 7-base set
//      {2, 325, 9375, 28178, 450775, 9780504, 1795265022} above);
//   3. composites are split by Pollard-Brent rho below 2^32 (Montgomery arithmetic, batched gcd
//      with backtracking) and by micro-ECM above (two Montgomery curves at a time, Suyama
//      parameters, ladder stage 1, baby-step giant-step stage 2), with rho as the last resort.
// Everything lives on the stack or in constexpr tables, except the bitmap (static storage, built
// on first use). Hot loops have AVX2/BMI2 variants chosen at run time; the rest is baseline x86-64
// (or portable C++ elsewhere).
#include "services/factorize_kernel.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace zgrid::factor {
namespace {

using u16 = std::uint16_t;
using u32 = std::uint32_t;
using u64 = std::uint64_t;
using u128 = unsigned __int128;

// The curve and rho steps are chains of short inline functions; forcing them inline lets the
// compiler interleave independent Montgomery products (the ladder's add and double overlap).
#define ZG_INLINE inline __attribute__((always_inline))

// The library is built for the baseline x86-64 ISA; a few hot loops also get AVX2 / BMI2 variants
// that are picked at run time.
#if defined(__x86_64__) && defined(__GNUC__)
#define ZG_HAVE_X86_DISPATCH 1
struct CpuFeatures {
  bool avx2;
  bool bmi2;
};
// __builtin_cpu_init must run before __builtin_cpu_supports during static initialization.
// Not const only so that tests can force the baseline paths (detail::use_baseline_isa_for_test).
CpuFeatures g_cpu = [] {
  __builtin_cpu_init();
  return CpuFeatures{__builtin_cpu_supports("avx2") != 0, __builtin_cpu_supports("bmi2") != 0};
}();
#endif

// ---------------------------------------------------------------------------------------------
// Small helpers.

constexpr u64 inverse_mod_2_64(u64 a) {
  // Newton iteration: each step doubles the number of correct low bits (a*a == 1 mod 8 for odd a).
  u64 x = a;
  for (int i = 0; i < 5; ++i) x *= 2 - a * x;
  return x;
}

constexpr u32 inverse_mod_2_32(u32 a) {
  u32 x = a;
  for (int i = 0; i < 4; ++i) x *= 2 - a * x;
  return x;
}

// Binary gcd; callers pass odd b (the modulus), which lets us skip the common-power-of-two step.
// Written so the compiler emits cmov rather than data-dependent branches, which would mispredict
// about half the time.
inline u64 gcd_odd(u64 a, u64 b) {
  if (a == 0) return b;
  a >>= __builtin_ctzll(a);
  while (a != b) {
    const u64 d = a - b;
    const int s = __builtin_ctzll(d);  // same as ctz(b - a)
    const u64 diff = a > b ? d : b - a;
    b = a < b ? a : b;
    a = diff >> s;
  }
  return a;
}

inline u64 isqrt(u64 n) {
  // The double estimate is within one or two of the answer; fix it up with exact integer checks.
  u64 r = static_cast<u64>(__builtin_sqrt(static_cast<double>(n)));
  if (r > 0xFFFFFFFFull) r = 0xFFFFFFFFull;
  while (r * r > n) --r;
  while (r < 0xFFFFFFFFull && (r + 1) * (r + 1) <= n) ++r;
  return r;
}

// ---------------------------------------------------------------------------------------------
// Trial-division table, built at compile time: odd primes below kTdLimit with p^-1 mod 2^64 and
// floor((2^64-1)/p). n is divisible by p exactly when n * p^-1 (mod 2^64) <= that limit, and then
// the product is the quotient.

// All odd primes below 2^16: enough to factor any 32-bit value completely by trial division.
constexpr u32 kTdLimit = 1 << 16;

// Odd-only sieve (index k stands for 2k + 1), evaluated at compile time.
constexpr std::array<bool, kTdLimit / 2> make_odd_sieve() {
  std::array<bool, kTdLimit / 2> prime{};
  for (u32 k = 1; k < kTdLimit / 2; ++k) prime[k] = true;
  for (u32 p = 3; p * p < kTdLimit; p += 2) {
    if (!prime[p / 2]) continue;
    for (u32 q = p * p; q < kTdLimit; q += 2 * p) prime[q / 2] = false;
  }
  return prime;
}

constexpr auto kOddSieve = make_odd_sieve();

constexpr int count_odd_primes() {
  int count = 0;
  for (bool b : kOddSieve) count += b ? 1 : 0;
  return count;
}

constexpr int kNumTdPrimes = count_odd_primes();

struct TdTable {
  std::array<u64, kNumTdPrimes> inv{};
  std::array<u64, kNumTdPrimes> lim{};
  std::array<u32, kNumTdPrimes> p{};
};

constexpr TdTable make_td_table() {
  TdTable t;
  int i = 0;
  for (u32 k = 1; k < kTdLimit / 2; ++k) {
    if (!kOddSieve[k]) continue;
    const u32 n = 2 * k + 1;
    t.p[i] = n;
    t.inv[i] = inverse_mod_2_64(n);
    t.lim[i] = ~u64{0} / n;
    ++i;
  }
  return t;
}

constexpr TdTable kTd = make_td_table();

// The same primes with 32-bit inverses and limits for inputs below 2^32, padded to whole vector
// steps; padding entries (inv 1, lim 0) never report a divisor.
constexpr int kNumTdPrimesPadded = (kNumTdPrimes + 15) / 16 * 16;
struct alignas(32) TdTable32 {
  std::array<u32, kNumTdPrimesPadded> inv{};
  std::array<u32, kNumTdPrimesPadded> lim{};
};

constexpr TdTable32 make_td_table32() {
  TdTable32 t;
  for (int i = 0; i < kNumTdPrimesPadded; ++i) {
    if (i < kNumTdPrimes) {
      t.inv[i] = inverse_mod_2_32(kTd.p[i]);
      t.lim[i] = ~u32{0} / kTd.p[i];
    } else {
      t.inv[i] = 1;
      t.lim[i] = 0;
    }
  }
  return t;
}

constexpr TdTable32 kTd32Table = make_td_table32();

// How many of those primes to try, by input size and instruction set (measured optima). The
// vector loop is cheap enough to go all the way for 32-bit inputs (the padding entries never
// match), which beats handing the cofactor to Miller-Rabin and rho.
constexpr int kTd32 = 160;                     // n < 2^32, scalar: primes up to 947
constexpr int kTd32Avx2 = kNumTdPrimesPadded;  // n < 2^32, AVX2: every prime below 2^16
constexpr int kTd64 = 564;                     // n >= 2^32: primes below 4096
static_assert(kTd32 % 4 == 0 && kTd32Avx2 % 16 == 0 && kTd64 % 4 == 0);
static_assert(kTd32 <= kNumTdPrimes && kTd64 <= kNumTdPrimes);

// Bit k set when k < 64 is prime.
constexpr u64 make_small_prime_mask() {
  u64 mask = 0;
  for (u32 k = 2; k < 64; ++k) {
    bool prime = true;
    for (u32 d = 2; d * d <= k; ++d) prime = prime && (k % d != 0);
    if (prime) mask |= u64{1} << k;
  }
  return mask;
}
constexpr u64 kSmallPrimeMask = make_small_prime_mask();

// ---------------------------------------------------------------------------------------------
// Montgomery arithmetic. Both classes keep residues fully reduced in [0, n) and use the
// "subtract the high halves" form of REDC, which is valid for every odd n below 2^bits (no
// carry-out to worry about, unlike the textbook t + m*n form).

// (hi * 2^32 + lo) mod n for hi < n. On x86-64 this is one 64-by-32 divide, several times
// cheaper than the 64-bit divide the compiler would emit for the same expression.
ZG_INLINE u32 mod_two_words(u32 hi, u32 lo, u32 n) {
#if defined(__x86_64__)
  u32 q, r;
  __asm__("divl %4" : "=a"(q), "=d"(r) : "a"(lo), "d"(hi), "rm"(n) : "cc");
  (void)q;
  return r;
#else
  return static_cast<u32>(((static_cast<u64>(hi) << 32) | lo) % n);
#endif
}

// (hi * 2^64 + lo) mod n for hi < n: one 128-by-64 divide instead of a __umodti3 call.
ZG_INLINE u64 mod_two_words(u64 hi, u64 lo, u64 n) {
#if defined(__x86_64__)
  u64 q, r;
  __asm__("divq %4" : "=a"(q), "=d"(r) : "a"(lo), "d"(hi), "rm"(n) : "cc");
  (void)q;
  return r;
#else
  return static_cast<u64>(((static_cast<u128>(hi) << 64) | lo) % n);
#endif
}

struct Mont32 {
  using T = u32;
  u32 n;
  u32 ninv;  // n^-1 mod 2^32
  u32 r1;    // 2^32 mod n: Montgomery one

  explicit Mont32(u32 modulus)
      : n(modulus), ninv(inverse_mod_2_32(modulus)), r1(mod_two_words(1, 0, modulus)) {}
  ZG_INLINE u32 mul(u32 a, u32 b) const {
    u64 t = static_cast<u64>(a) * b;
    u32 m = static_cast<u32>(t) * ninv;
    u32 mh = static_cast<u32>((static_cast<u64>(m) * n) >> 32);
    u32 th = static_cast<u32>(t >> 32);
    u32 r = th - mh;
    return th < mh ? r + n : r;
  }
  // a + b - n computed as a - (n - b): same borrow test as sub, so it stays a cmov (the
  // carry-or-compare form compiles to a branch that mispredicts half the time).
  ZG_INLINE u32 add(u32 a, u32 b) const { return sub(a, n - b); }
  ZG_INLINE u32 sub(u32 a, u32 b) const { return a >= b ? a - b : a - b + n; }
  u32 one() const { return r1; }
  u32 to(u64 a) const { return mod_two_words(static_cast<u32>(a < n ? a : a % n), u32{0}, n); }
};

struct Mont64 {
  using T = u64;
  u64 n;
  u64 ninv;  // n^-1 mod 2^64
  u64 r1;    // 2^64 mod n
  u64 r2;    // 2^128 mod n

  explicit Mont64(u64 modulus) : n(modulus), ninv(inverse_mod_2_64(modulus)) {
    r1 = mod_two_words(u64{1}, u64{0}, n);
    r2 = mod_two_words(r1, u64{0}, n);
  }
  ZG_INLINE u64 mul(u64 a, u64 b) const {
    u128 t = static_cast<u128>(a) * b;
    u64 m = static_cast<u64>(t) * ninv;
    u64 mh = static_cast<u64>((static_cast<u128>(m) * n) >> 64);
    u64 th = static_cast<u64>(t >> 64);
    u64 r = th - mh;
    return th < mh ? r + n : r;
  }
  // a + b - n computed as a - (n - b): same borrow test as sub, so it stays a cmov (the
  // carry-or-compare form compiles to a branch that mispredicts half the time).
  ZG_INLINE u64 add(u64 a, u64 b) const { return sub(a, n - b); }
  ZG_INLINE u64 sub(u64 a, u64 b) const { return a >= b ? a - b : a - b + n; }
  u64 one() const { return r1; }
  u64 to(u64 a) const { return mul(a < n ? a : a % n, r2); }
};

// ---------------------------------------------------------------------------------------------
// Miller-Rabin. All bases of a set run in lockstep so their independent multiply chains overlap
// in the pipeline; a prime has to pass every base anyway, and primes dominate the cost. The
// exponentiations never branch on exponent bits (such branches mispredict half the time): fixed
// windows with a table whose entry 0 is one, and for base 2 a masked doubling.

ZG_INLINE u64 select(u64 bit, u64 if_one, u64 if_zero) {
  const u64 mask = 0 - bit;
  return (if_one & mask) | (if_zero & ~mask);
}

// The strong-test tail: y = a^d; passes if y == 1 or y^(2^r) == -1 for some r < s.
template <class M>
ZG_INLINE bool strong_tail(const M& m, typename M::T y, int s) {
  const typename M::T one = m.one(), minus_one = m.n - m.one();
  if (y == one || y == minus_one) return true;
  for (int r = 1; r < s; ++r) {
    y = m.mul(y, y);
    if (y == minus_one) return true;
    if (y == one) return false;
  }
  return false;
}

// Strong probable prime to base 2 for odd n >= 2^32.
ZG_INLINE bool sprp2_u64(const Mont64& m) {
  u64 d = m.n - 1;
  const int s = __builtin_ctzll(d);
  d >>= s;
  u64 x = m.add(m.one(), m.one());  // 2, for the top bit of d
  for (int b = 62 - __builtin_clzll(d); b >= 0; --b) {
    x = m.mul(x, x);
    x = select((d >> b) & 1, m.add(x, x), x);
  }
  return strong_tail(m, x, s);
}

// Strong test for odd n >= 2^32 to each of the K bases (all below 2^32), 4-bit fixed window.
template <std::size_t K>
ZG_INLINE bool miller_rabin_u64(const Mont64& m, const std::array<u64, K>& bases) {
  u64 d = m.n - 1;
  const int s = __builtin_ctzll(d);
  d >>= s;
  u64 table[16][K];
  for (std::size_t i = 0; i < K; ++i) {
    table[0][i] = m.one();
    table[1][i] = m.to(bases[i]);
  }
  for (int w = 2; w < 16; ++w) {
    for (std::size_t i = 0; i < K; ++i) table[w][i] = m.mul(table[w - 1][i], table[1][i]);
  }
  int pos = (64 - __builtin_clzll(d) + 3) / 4 * 4 - 4;
  u64 x[K];
  for (std::size_t i = 0; i < K; ++i) x[i] = table[(d >> pos) & 15][i];
  while (pos > 0) {
    pos -= 4;
    for (int k = 0; k < 4; ++k) {
      for (std::size_t i = 0; i < K; ++i) x[i] = m.mul(x[i], x[i]);
    }
    const unsigned digit = (d >> pos) & 15;
    for (std::size_t i = 0; i < K; ++i) x[i] = m.mul(x[i], table[digit][i]);
  }
  for (std::size_t i = 0; i < K; ++i) {
    if (!strong_tail(m, x[i], s)) return false;
  }
  return true;
}

// Deterministic Miller-Rabin for odd 63 <= n < 2^32 with bases {2, 7, 61} (exact below
// 4,759,123,141). The three bases run in lockstep; their Montgomery forms come from the
// Montgomery one by additions, and the multiply by 2 is an addition, too.
bool is_prime_u32(u32 n) {
  const Mont32 m(n);
  const u32 one = m.r1;
  const u32 b2 = m.add(one, one), b4 = m.add(b2, b2), b8 = m.add(b4, b4);
  const u32 b7 = m.sub(b8, one);
  const u32 b16 = m.add(b8, b8), b32 = m.add(b16, b16), b64 = m.add(b32, b32);
  const u32 b61 = m.sub(b64, m.add(b2, one));
  const u32 t7[4] = {one, b7, m.mul(b7, b7), m.mul(m.mul(b7, b7), b7)};
  const u32 t61[4] = {one, b61, m.mul(b61, b61), m.mul(m.mul(b61, b61), b61)};
  u32 d = n - 1;
  const int s = __builtin_ctz(d);
  d >>= s;
  // Two exponent bits per step: bases 7 and 61 use a 2-bit window, base 2 masked doublings.
  int pos = (32 - __builtin_clz(d) + 1) / 2 * 2 - 2;
  const u32 t2[4] = {one, b2, b4, b8};
  u32 x2 = t2[(d >> pos) & 3], x7 = t7[(d >> pos) & 3], x61 = t61[(d >> pos) & 3];
  while (pos > 0) {
    pos -= 2;
    for (int k = 1; k >= 0; --k) {
      x2 = m.mul(x2, x2);
      x2 = static_cast<u32>(select((d >> (pos + k)) & 1, m.add(x2, x2), x2));
    }
    x7 = m.mul(x7, x7);
    x61 = m.mul(x61, x61);
    x7 = m.mul(x7, x7);
    x61 = m.mul(x61, x61);
    x7 = m.mul(x7, t7[(d >> pos) & 3]);
    x61 = m.mul(x61, t61[(d >> pos) & 3]);
  }
  return strong_tail(m, x2, s) && strong_tail(m, x7, s) && strong_tail(m, x61, s);
}

constexpr std::array<u64, 6> kBases64Rest = {325, 9375, 28178, 450775, 9780504, 1795265022};

// Odd-only prime bitmap below 2^kBitmapBits. Most cofactors of 32-bit inputs are small enough to
// be classified by one (L2-resident) load instead of a Miller-Rabin run. Built on first use;
// function-local static initialization is thread-safe, and it lives in static storage (no heap).
constexpr int kBitmapBits = 20;  // 64 KiB; larger tables measured no faster
constexpr u64 kBitmapLimit = u64{1} << kBitmapBits;

class SmallPrimeBitmap {
 public:
  SmallPrimeBitmap() {
    for (u64& w : bits_) w = ~u64{0};
    bits_[0] &= ~u64{1};  // 1 is not prime
    for (u32 p = 3; static_cast<u64>(p) * p < kBitmapLimit; p += 2) {
      if (!test(p)) continue;
      for (u64 j = static_cast<u64>(p) * p; j < kBitmapLimit; j += 2 * p) {
        bits_[j >> 7] &= ~(u64{1} << ((j >> 1) & 63));
      }
    }
  }
  // n odd, below kBitmapLimit.
  bool test(u64 n) const { return (bits_[n >> 7] >> ((n >> 1) & 63)) & 1; }

 private:
  u64 bits_[kBitmapLimit / 128];
};

const SmallPrimeBitmap& small_primes() {
  static const SmallPrimeBitmap table;
  return table;
}

// n >= 2^32 exceeds every base, so no base is a multiple of n. Base 2 alone rejects almost every
// composite, so run it first and the other six bases only for (probable) primes.
ZG_INLINE bool is_prime_u64_body(u64 n) {
  const Mont64 m(n);
  return sprp2_u64(m) && miller_rabin_u64(m, kBases64Rest);
}

#ifdef ZG_HAVE_X86_DISPATCH
// MULX (BMI2) needs far fewer register moves for the 64x64->128 products.
__attribute__((target("bmi2"))) __attribute__((noinline)) bool is_prime_u64_bmi2(u64 n) {
  return is_prime_u64_body(n);
}
#endif
__attribute__((noinline)) bool is_prime_u64_generic(u64 n) {
  return is_prime_u64_body(n);
}

// Odd n >= 2^32.
bool is_prime_u64(u64 n) {
#ifdef ZG_HAVE_X86_DISPATCH
  if (g_cpu.bmi2) return is_prime_u64_bmi2(n);
#endif
  return is_prime_u64_generic(n);
}

// Primality of an odd n > 61 (callers guarantee this).
bool is_prime_odd(u64 n) {
  if (n < kBitmapLimit) return small_primes().test(n);
  if (n < (u64{1} << 32)) return is_prime_u32(static_cast<u32>(n));
  return is_prime_u64(n);
}

// ---------------------------------------------------------------------------------------------
// Pollard-Brent rho, f(y) = y^2 + c in Montgomery form. Differences are multiplied together in
// batches so that one gcd covers many steps; on overshoot (gcd == n) we replay the last batch
// one step at a time. Returns a divisor in (1, n) or 0 if this c failed.

template <class M>
u64 brent_rho(const M& m, typename M::T c, int batch, u64 r_start, u64 max_r = u64{1} << 40) {
  using T = typename M::T;
  const u64 n = m.n;
  T y = m.add(m.one(), m.one());  // any start point works; fixed for reproducibility
  T x = y, ys = y, q = m.one();
  u64 g = 1;
  // Starting with r > 1 skips the first tiny rounds, each of which would cost a full gcd.
  for (u64 r = r_start; g == 1; r <<= 1) {
    x = y;
    for (u64 i = 0; i < r; ++i) y = m.add(m.mul(y, y), c);
    for (u64 k = 0; k < r && g == 1; k += batch) {
      ys = y;
      const u64 lim = (r - k < static_cast<u64>(batch)) ? r - k : static_cast<u64>(batch);
      for (u64 i = 0; i < lim; ++i) {
        y = m.add(m.mul(y, y), c);
        q = m.mul(q, x > y ? x - y : y - x);
      }
      g = gcd_odd(q, n);
    }
    if (r >= max_r) return 0;  // gives up (the default bound is never reached for 64-bit n)
  }
  if (g == n) {
    do {
      ys = m.add(m.mul(ys, ys), c);
      g = gcd_odd(x > ys ? x - ys : ys - x, n);
    } while (g == 1);
  }
  return (g != n) ? g : 0;
}

// ---------------------------------------------------------------------------------------------
// Micro-ECM for 64-bit composites (semiprimes of two 32-bit primes are the worst case for rho:
// ~2^16 iterations). Montgomery curves B y^2 = x^3 + A x^2 + x
// in X:Z coordinates with Suyama's parameterization (group order divisible by 12), stage 1 as a
// Montgomery ladder over K = lcm(1..B1), stage 2 as a baby-step giant-step continuation up to
// B2 with one batched inversion, so each (giant, baby) pair costs one multiplication.

// Compile-time prime bitmap for the stage 2 ranges.
constexpr u32 kEcmSieveLimit = 1 << 15;

struct PrimeBits {
  std::array<u64, kEcmSieveLimit / 64> bits{};
  constexpr bool test(u32 v) const { return (bits[v >> 6] >> (v & 63)) & 1; }
};

constexpr PrimeBits make_prime_bits() {
  PrimeBits pb;
  std::array<bool, kEcmSieveLimit> composite{};
  for (u32 i = 2; i < kEcmSieveLimit; ++i) {
    if (composite[i]) continue;
    pb.bits[i >> 6] |= u64{1} << (i & 63);
    for (u32 j = i * i; j < kEcmSieveLimit; j += i) composite[j] = true;
  }
  return pb;
}

constexpr PrimeBits kPrimeBits = make_prime_bits();

// K = product of the largest powers of the odd primes <= B1 (powers of two are applied as plain
// doublings), as little-endian 64-bit limbs.
constexpr int kMaxKLimbs = 8;
struct StageOneMultiplier {
  std::array<u64, kMaxKLimbs> limb{};
  int bits = 0;  // bit length of the odd part
  int twos = 0;  // exponent of two
};

constexpr StageOneMultiplier make_stage_one(u32 b1) {
  StageOneMultiplier k;
  k.limb[0] = 1;
  for (u32 p = 3; p <= b1; p += 2) {
    if (!kPrimeBits.test(p)) continue;
    u64 pk = p;
    while (pk * p <= b1) pk *= p;
    u64 carry = 0;  // multiply the big number by pk
    for (int i = 0; i < kMaxKLimbs; ++i) {
      const u128 t = static_cast<u128>(k.limb[i]) * pk + carry;
      k.limb[i] = static_cast<u64>(t);
      carry = static_cast<u64>(t >> 64);
    }
  }
  for (u64 t = 2; t <= b1; t *= 2) ++k.twos;
  int top = kMaxKLimbs - 1;
  while (k.limb[top] == 0) --top;
  k.bits = top * 64 + (64 - __builtin_clzll(k.limb[top]));
  return k;
}

constexpr u32 kD = 210;  // giant step; 24 residues in (0, 105) are coprime to it
constexpr int kBaby = 24;
constexpr int kMaxPairs = 2048;

// Stage 2 work list, fixed per parameter set: giant steps m = m_first.., and for each prime
// q = m*D +- j in (B1, B2] the (giant, baby) index pair, packed as giant * 32 + baby. A prime
// pair m*D - j, m*D + j shares one entry. Precomputing it keeps the runtime loop branch-free.
struct Stage2Plan {
  u32 m_first = 0;
  int giants = 0;
  int pairs = 0;
  std::array<u16, kMaxPairs> pair{};
};

constexpr Stage2Plan make_plan(u32 b1, u32 b2) {
  Stage2Plan plan;
  plan.m_first = b1 < 2 * kD ? 1 : b1 / kD;
  const u32 m_last = (b2 + kD - 1) / kD;
  plan.giants = static_cast<int>(m_last - plan.m_first + 1);
  for (u32 mi = plan.m_first; mi <= m_last; ++mi) {
    const u32 c = mi * kD;
    int b = 0;
    for (u32 j = 1; j < kD / 2; j += 2) {
      if (j % 3 == 0 || j % 5 == 0 || j % 7 == 0) continue;
      const u32 hi = c + j, lo = c - j;
      const bool want = (hi > b1 && hi <= b2 && kPrimeBits.test(hi)) ||
                        (lo > b1 && lo <= b2 && kPrimeBits.test(lo));
      if (want) plan.pair[plan.pairs++] = static_cast<u16>((mi - plan.m_first) * 32 + b);
      ++b;
    }
  }
  return plan;
}

struct EcmParams {
  u32 b1;
  u32 b2;
  StageOneMultiplier k;
  Stage2Plan plan;
};

constexpr EcmParams make_params(u32 b1, u32 b2) {
  return EcmParams{b1, b2, make_stage_one(b1), make_plan(b1, b2)};
}

// Curve levels (B1, B2) and, per input size, how many curves of each to try. The smallest factor
// of a composite cofactor is usually small (random 64-bit inputs), so one pair of cheap curves
// comes first; then levels sized for the largest factor the input can hide. Chosen with a cost
// model fed by measured per-curve times and success rates on cofactors of random 64-bit inputs
// and on semiprimes of two 32-bit primes. Past the last level, rho takes over (never seen).
constexpr EcmParams kEcmLevels[] = {make_params(47, 2350), make_params(60, 6000),
                                    make_params(95, 9500), make_params(150, 15000)};

struct EcmStep {
  const EcmParams* params;
  int curves;
};
constexpr int kScheduleSteps = 3;
using EcmSchedule = std::array<EcmStep, kScheduleSteps>;
constexpr EcmSchedule kScheduleBelow52 = {
    {{&kEcmLevels[0], 2}, {&kEcmLevels[1], 400}, {&kEcmLevels[1], 0}}};
constexpr EcmSchedule kScheduleBelow60 = {
    {{&kEcmLevels[0], 2}, {&kEcmLevels[2], 400}, {&kEcmLevels[2], 0}}};
constexpr EcmSchedule kScheduleFrom60 = {
    {{&kEcmLevels[0], 2}, {&kEcmLevels[2], 4}, {&kEcmLevels[3], 400}}};

constexpr bool levels_fit() {
  for (const EcmParams& p : kEcmLevels) {
    if (p.b2 + kD >= kEcmSieveLimit || p.k.bits >= kMaxKLimbs * 64 - 64) return false;
  }
  return true;
}
static_assert(levels_fit());
constexpr int kMaxGiant = kEcmSieveLimit / kD + 2;

// Montgomery-form inverse for odd n: given A = a*R mod n (R = 2^64), returns 1 and sets
// *out = a^-1 * R mod n, or returns gcd(A, n) > 1 (n when A == 0). Binary extended gcd in
// Kaliski's form: it keeps A*s == +-v*2^k and A*r == -+u*2^k (mod n) with n = u*s + v*r, so all
// values stay below n, each step strips a whole run of zero bits, and the swap that keeps u > v
// is done with cmov (a branch here mispredicts half the time). At the end A^-1 = +-s * 2^-k, so
// a^-1 * R = A^-1 * R^2 = +-s * 2^(128-k), at most 64 modular doublings.
u64 mont_inverse(u64 a_mont, u64 n, u64* out) {
  if (a_mont == 0) return n;
  u64 u = n, v = a_mont, r = 0, s = 1, negate = 0;
  int k = __builtin_ctzll(v);
  v >>= k;
  while (u != v) {
    const u64 swap = u < v;
    const u64 mask = 0 - swap;
    const u64 tuv = (u ^ v) & mask, trs = (r ^ s) & mask;
    u ^= tuv;
    v ^= tuv;
    r ^= trs;
    s ^= trs;
    negate ^= swap;
    u -= v;
    r += s;
    const int tz = __builtin_ctzll(u);
    u >>= tz;
    s <<= tz;
    k += tz;
  }
  if (u != 1) return u;
  if (s >= n) s -= n;
  for (; k < 128; ++k) {
    const u64 t = n - s;  // s + s mod n without overflow
    s = s >= t ? s - t : s + s;
  }
  *out = (negate && s != 0) ? n - s : s;
  return 1;
}

// Two curves run side by side: they share each modular inversion (curve setup, stage 2
// normalization) and give the out-of-order core independent product chains, at the price of at
// most one wasted curve per factorization.
constexpr int kLanes = 2;
#define ZG_FOR_LANES(l) _Pragma("GCC unroll 2") for (int l = 0; l < kLanes; ++l)

struct Pts {  // one projective X:Z point per lane
  u64 x[kLanes];
  u64 z[kLanes];
};

ZG_INLINE void cswap(Pts& a, Pts& b, u64 bit) {
  const u64 mask = 0 - bit;
  ZG_FOR_LANES(l) {
    const u64 tx = (a.x[l] ^ b.x[l]) & mask, tz = (a.z[l] ^ b.z[l]) & mask;
    a.x[l] ^= tx;
    b.x[l] ^= tx;
    a.z[l] ^= tz;
    b.z[l] ^= tz;
  }
}

// Index of j in the list of baby steps (odd j < 105 coprime to 210), or -1.
constexpr std::array<int, kD / 2 + 4> make_baby_index() {
  std::array<int, kD / 2 + 4> idx{};
  int b = 0;
  for (u32 j = 0; j < idx.size(); ++j) {
    const bool use = j < kD / 2 && j % 2 == 1 && j % 3 != 0 && j % 5 != 0 && j % 7 != 0;
    idx[j] = use ? b++ : -1;
  }
  return idx;
}
constexpr auto kBabyIndex = make_baby_index();

class Ecm {
 public:
  explicit Ecm(const Mont64& m) : m_(m), five_(m.to(5)) {}

  // Runs the curves with Suyama parameters sigma, sigma + 1, ...; returns a divisor in (1, n)
  // or 0.
  ZG_INLINE u64 run(const EcmParams& prm, u64 sigma) {
    const Mont64& m = m_;
    const u64 n = m.n;
    // Suyama: u = s^2 - 5, v = 4s, x0 = u^3 / v^3, a24 = (v - u)^3 (3u + v) / (16 u^3 v).
    // Both lanes share one inversion (Montgomery's trick).
    u64 num[kLanes], den[kLanes], u3[kLanes], v3[kLanes], w[kLanes];
    ZG_FOR_LANES(l) {
      const u64 s = m.to(sigma + l);
      const u64 u = m.sub(m.mul(s, s), five_);
      const u64 s2 = m.add(s, s);
      const u64 v = m.add(s2, s2);
      u3[l] = m.mul(m.mul(u, u), u);
      v3[l] = m.mul(m.mul(v, v), v);
      const u64 vmu = m.sub(v, u);
      num[l] = m.mul(m.mul(m.mul(vmu, vmu), vmu), m.add(m.add(m.add(u, u), u), v));
      u64 t = m.mul(u3[l], v);
      t = m.add(t, t);
      t = m.add(t, t);
      t = m.add(t, t);
      den[l] = m.add(t, t);
      w[l] = m.mul(den[l], v3[l]);
    }
    u64 inv = 0;
    const u64 g = inverse(m.mul(w[0], w[1]), &inv);
    if (g != 1) return g != n ? g : 0;
    u64 x0[kLanes];
    ZG_FOR_LANES(l) {
      const u64 inv_w = m.mul(inv, w[1 - l]);
      a24_[l] = m.mul(num[l], m.mul(inv_w, v3[l]));
      x0[l] = m.mul(u3[l], m.mul(inv_w, den[l]));
    }
    // Stage 1: ladder over the odd part of K, then the doublings for 2^twos. Branch-free: the
    // bits of K are unpredictable, so swap by mask whenever the bit changes.
    Pts r0, r1;
    ZG_FOR_LANES(l) {
      r0.x[l] = x0[l];
      r0.z[l] = m.one();
    }
    r1 = dbl(r0);
    const auto& k = prm.k;
    u64 prev = 0;
    for (int b = k.bits - 2; b >= 0; --b) {
      const u64 bit = (k.limb[b >> 6] >> (b & 63)) & 1;
      cswap(r0, r1, bit ^ prev);
      prev = bit;
      r1 = add_unit(r1, r0, x0);
      r0 = dbl(r0);
    }
    cswap(r0, r1, prev);
    for (int i = 0; i < k.twos; ++i) r0 = dbl(r0);
    const u64 g1 = lanes_gcd(r0.z);
    if (g1 != 0) return g1;
    return stage_two(prm, r0);
  }

 private:
  // Montgomery-form inverse of a Montgomery-form value; returns 1 or the gcd found.
  ZG_INLINE u64 inverse(u64 a_mont, u64* out) const { return mont_inverse(a_mont, m_.n, out); }

  // A divisor in (1, n) shared with the lanes' values, or 0.
  ZG_INLINE u64 lanes_gcd(const u64* v) const {
    const u64 n = m_.n;
    const u64 g = gcd_odd(m_.mul(v[0], v[1]), n);
    if (g == 1) return 0;
    if (g != n) return g;
    ZG_FOR_LANES(l) {
      const u64 gl = gcd_odd(v[l], n);
      if (gl != 1 && gl != n) return gl;
    }
    return 0;
  }

  ZG_INLINE Pts dbl(const Pts& p) const {
    const Mont64& m = m_;
    u64 s[kLanes], d[kLanes], ss[kLanes], dd[kLanes], t[kLanes], w[kLanes];
    Pts r;
    ZG_FOR_LANES(l) {
      s[l] = m.add(p.x[l], p.z[l]);
      d[l] = m.sub(p.x[l], p.z[l]);
    }
    ZG_FOR_LANES(l) {
      ss[l] = m.mul(s[l], s[l]);
      dd[l] = m.mul(d[l], d[l]);
    }
    ZG_FOR_LANES(l) {
      t[l] = m.sub(ss[l], dd[l]);  // 4xz
      r.x[l] = m.mul(ss[l], dd[l]);
      w[l] = m.mul(a24_[l], t[l]);
    }
    ZG_FOR_LANES(l) r.z[l] = m.mul(t[l], m.add(dd[l], w[l]));
    return r;
  }

  // p + q given p - q = diff (x-only, so the sign of diff does not matter).
  ZG_INLINE void add_core(const Pts& p, const Pts& q, u64* s2, u64* d2) const {
    const Mont64& m = m_;
    u64 a[kLanes], b[kLanes];
    ZG_FOR_LANES(l) {
      a[l] = m.mul(m.sub(p.x[l], p.z[l]), m.add(q.x[l], q.z[l]));
      b[l] = m.mul(m.add(p.x[l], p.z[l]), m.sub(q.x[l], q.z[l]));
    }
    ZG_FOR_LANES(l) {
      const u64 s = m.add(a[l], b[l]), d = m.sub(a[l], b[l]);
      s2[l] = m.mul(s, s);
      d2[l] = m.mul(d, d);
    }
  }
  ZG_INLINE Pts add(const Pts& p, const Pts& q, const Pts& diff) const {
    u64 s2[kLanes], d2[kLanes];
    add_core(p, q, s2, d2);
    Pts r;
    ZG_FOR_LANES(l) {
      r.x[l] = m_.mul(diff.z[l], s2[l]);
      r.z[l] = m_.mul(diff.x[l], d2[l]);
    }
    return r;
  }
  // p + q given p - q = (diff_x : 1).
  ZG_INLINE Pts add_unit(const Pts& p, const Pts& q, const u64* diff_x) const {
    u64 s2[kLanes], d2[kLanes];
    add_core(p, q, s2, d2);
    Pts r;
    ZG_FOR_LANES(l) {
      r.x[l] = s2[l];
      r.z[l] = m_.mul(diff_x[l], d2[l]);
    }
    return r;
  }

  // k * p for small k >= 1 by a ladder.
  ZG_INLINE Pts mul_small(const Pts& p, u32 k) const {
    if (k == 1) return p;
    Pts r0 = p, r1 = dbl(p);
    for (int b = 30 - __builtin_clz(k); b >= 0; --b) {
      if ((k >> b) & 1) {
        r0 = add(r1, r0, p);
        r1 = dbl(r1);
      } else {
        r1 = add(r1, r0, p);
        r0 = dbl(r0);
      }
    }
    return r0;
  }

  // Baby-step giant-step continuation: for each prime q = m*D +- j in (B1, B2], q*Q is the
  // identity mod p exactly when x(m*D*Q) == x(j*Q) mod p (after normalizing z to 1).
  ZG_INLINE u64 stage_two(const EcmParams& prm, const Pts& q) {
    const Mont64& m = m_;
    Pts baby[kBaby];
    // j*Q for j = 1, 5 (mod 6) in two interleaved chains with step 6Q.
    const Pts q2 = dbl(q);
    const Pts q3 = add(q2, q, q);
    const Pts q4 = dbl(q2);
    const Pts q5 = add(q3, q2, q);
    const Pts q6 = dbl(q3);
    Pts prev_a = q, cur_a = add(q6, q, q5);   // 1, 7
    Pts prev_b = q5, cur_b = add(q6, q5, q);  // 5, 11
    baby[kBabyIndex[1]] = q;                  // 5 and 7 divide D, so they are no baby steps
    Pts q103{}, q107{};
    for (u32 j = 7; j <= 103; j += 6) {
      if (kBabyIndex[j] >= 0) baby[kBabyIndex[j]] = cur_a;
      if (kBabyIndex[j + 4] >= 0) baby[kBabyIndex[j + 4]] = cur_b;
      if (j == 103) {
        q103 = cur_a;
        q107 = cur_b;
        break;
      }
      const Pts next_a = add(cur_a, q6, prev_a);
      const Pts next_b = add(cur_b, q6, prev_b);
      prev_a = cur_a;
      cur_a = next_a;
      prev_b = cur_b;
      cur_b = next_b;
    }
    const Pts gd = add(q107, q103, q4);  // D*Q = 107Q + 103Q
    // Giant steps G_i = (m_first + i) * D * Q.
    const u32 m_first = prm.plan.m_first;
    const int ng = prm.plan.giants;
    Pts giant[kMaxGiant];
    giant[0] = mul_small(gd, m_first);
    if (ng > 1) giant[1] = m_first == 1 ? dbl(gd) : add(giant[0], gd, mul_small(gd, m_first - 1));
    for (int i = 2; i < ng; ++i) giant[i] = add(giant[i - 1], gd, giant[i - 2]);

    // One batched inversion normalizes every point of both lanes. A z that vanishes mod p makes
    // the product share p with n, which is a success, not a failure.
    const int total = kBaby + ng;
    auto pt = [&](int i) -> Pts& { return i < kBaby ? baby[i] : giant[i - kBaby]; };
    u64 prefix[kBaby + kMaxGiant][kLanes];
    u64 acc[kLanes];
    ZG_FOR_LANES(l) acc[l] = m.one();
    for (int i = 0; i < total; ++i) {
      const Pts& p = pt(i);
      ZG_FOR_LANES(l) {
        prefix[i][l] = acc[l];
        acc[l] = m.mul(acc[l], p.z[l]);
      }
    }
    u64 inv = 0;
    const u64 g = inverse(m.mul(acc[0], acc[1]), &inv);
    if (g != 1) return g != m.n ? g : lanes_gcd(acc);
    u64 inv_l[kLanes];
    ZG_FOR_LANES(l) inv_l[l] = m.mul(inv, acc[1 - l]);
    for (int i = total - 1; i >= 0; --i) {
      Pts& p = pt(i);
      ZG_FOR_LANES(l) {
        const u64 zi = p.z[l];
        p.x[l] = m.mul(p.x[l], m.mul(inv_l[l], prefix[i][l]));
        inv_l[l] = m.mul(inv_l[l], zi);
      }
    }
    // Two accumulators per lane keep four independent product chains in flight.
    u64 acc2[2][kLanes];
    ZG_FOR_LANES(l) acc2[0][l] = acc2[1][l] = m.one();
    const Stage2Plan& plan = prm.plan;
    int p = 0;
    for (; p + 2 <= plan.pairs; p += 2) {
      for (int h = 0; h < 2; ++h) {
        const u32 e = plan.pair[p + h];
        const Pts& gp = giant[e >> 5];
        const Pts& bp = baby[e & 31];
        ZG_FOR_LANES(l) acc2[h][l] = m.mul(acc2[h][l], m.sub(gp.x[l], bp.x[l]));
      }
    }
    if (p < plan.pairs) {
      const u32 e = plan.pair[p];
      ZG_FOR_LANES(l) {
        acc2[0][l] = m.mul(acc2[0][l], m.sub(giant[e >> 5].x[l], baby[e & 31].x[l]));
      }
    }
    ZG_FOR_LANES(l) acc[l] = m.mul(acc2[0][l], acc2[1][l]);
    return lanes_gcd(acc);
  }

  const Mont64& m_;
  u64 five_;
  u64 a24_[kLanes] = {};
};

ZG_INLINE u64 ecm_find_divisor_body(const Mont64& m) {
  const int bits = 64 - __builtin_clzll(m.n);
  const EcmSchedule& schedule = bits < 52   ? kScheduleBelow52
                                : bits < 60 ? kScheduleBelow60
                                            : kScheduleFrom60;
  Ecm ecm(m);
  u64 sigma = 11;
  for (const EcmStep& step : schedule) {
    for (int c = 0; c < step.curves; c += kLanes, sigma += kLanes) {
      const u64 d = ecm.run(*step.params, sigma);
      if (d != 0) return d;
    }
  }
  return 0;
}

// The curve arithmetic is bound by instruction issue, and with BMI2 the 64x64->128 products
// become MULX (no fixed rax/rdx registers, so far fewer moves). The library is built for the
// baseline ISA, so compile the ECM twice and pick the variant at run time.
#ifdef ZG_HAVE_X86_DISPATCH
__attribute__((target("bmi2"))) __attribute__((noinline)) u64 ecm_find_divisor_bmi2(
    const Mont64& m) {
  return ecm_find_divisor_body(m);
}
#endif

__attribute__((noinline)) u64 ecm_find_divisor_generic(const Mont64& m) {
  return ecm_find_divisor_body(m);
}

u64 ecm_find_divisor(const Mont64& m) {
#ifdef ZG_HAVE_X86_DISPATCH
  if (g_cpu.bmi2) return ecm_find_divisor_bmi2(m);
#endif
  return ecm_find_divisor_generic(m);
}

// Pollard-Brent rho on a 64-bit modulus, retrying with new constants until it splits n. Only the
// last resort after the curves (and a test seam).
u64 rho64_divisor(u64 n) {
  const Mont64 m(n);
  for (u64 c = 1;; ++c) {
    const u64 d = brent_rho(m, m.to(c), 128, 1);
    if (d != 0) return d;
  }
}

// Finds a nontrivial divisor of an odd composite n.
u64 find_divisor(u64 n) {
  const u64 r = isqrt(n);
  if (r * r == n) return r;
  if (n < (u64{1} << 32)) {
    const Mont32 m(static_cast<u32>(n));
    for (u32 c = 1;; ++c) {
      const u64 d = brent_rho(m, m.to(c), 32, 8);
      if (d != 0) return d;
    }
  }
  // Above 2^32 the curves beat rho even for the smallest factors left after trial division
  // (measured on cofactors of random 64-bit inputs).
  const u64 d = ecm_find_divisor(Mont64(n));
  return d != 0 ? d : rho64_divisor(n);
}

// Splits an odd composite cofactor (all prime factors above the trial-division limit) into
// primes, appending them to out in arbitrary order.
void split_composite(u64 n, u64* out, int& count) {
  u64 stack[kMaxFactors];
  int top = 0;
  stack[top++] = n;
  while (top > 0) {
    u64 v = stack[--top];
    if (is_prime_odd(v)) {
      out[count++] = v;
      continue;
    }
    u64 d = find_divisor(v);
    stack[top++] = d;
    stack[top++] = v / d;
  }
}

void sort_small(u64* a, int count) {
  for (int i = 1; i < count; ++i) {
    u64 v = a[i];
    int j = i - 1;
    while (j >= 0 && a[j] > v) {
      a[j + 1] = a[j];
      --j;
    }
    a[j + 1] = v;
  }
}

// Trial division by the first td_end odd primes, four per step: the divisibility tests are
// independent and a hit is rare, so test all four before branching. Stops as soon as p^2 exceeds
// what is left (which then is 1 or prime). Returns the index of the first prime not tried.
ZG_INLINE int trial_divide(u64& n, u64* out, int& count, int td_end) {
  int i = 0;
  for (; i < td_end; i += 4) {
    const u64 p0 = kTd.p[i];
    if (p0 * p0 > n) break;
    const bool hit = (n * kTd.inv[i] <= kTd.lim[i]) | (n * kTd.inv[i + 1] <= kTd.lim[i + 1]) |
                     (n * kTd.inv[i + 2] <= kTd.lim[i + 2]) |
                     (n * kTd.inv[i + 3] <= kTd.lim[i + 3]);
    if (!hit) continue;
    for (int j = i; j < i + 4; ++j) {
      const u64 inv = kTd.inv[j];
      const u64 lim = kTd.lim[j];
      while (n * inv <= lim) {
        n *= inv;
        out[count++] = kTd.p[j];
      }
    }
  }
  return i;
}

#ifdef ZG_HAVE_X86_DISPATCH
// Same contract as trial_divide(n, out, count, kTd32Avx2) for n < 2^32, with AVX2
// (32-bit products n * p^-1, unsigned compare via max + equality), sixteen per step.
__attribute__((target("avx2"))) int trial_divide_u32_avx2(u64& n64, u64* out, int& count) {
  u32 n = static_cast<u32>(n64);
  __m256i nv = _mm256_set1_epi32(static_cast<int>(n));
  int i = 0;
  for (; i < kTd32Avx2; i += 16) {
    const u64 p0 = kTd.p[i];
    if (p0 * p0 > n) break;
    const auto* inv = reinterpret_cast<const __m256i*>(&kTd32Table.inv[i]);
    const auto* lim = reinterpret_cast<const __m256i*>(&kTd32Table.lim[i]);
    const __m256i lim0 = _mm256_load_si256(lim), lim1 = _mm256_load_si256(lim + 1);
    const __m256i prod0 = _mm256_mullo_epi32(nv, _mm256_load_si256(inv));
    const __m256i prod1 = _mm256_mullo_epi32(nv, _mm256_load_si256(inv + 1));
    const __m256i le0 = _mm256_cmpeq_epi32(_mm256_max_epu32(prod0, lim0), lim0);
    const __m256i le1 = _mm256_cmpeq_epi32(_mm256_max_epu32(prod1, lim1), lim1);
    if (_mm256_testz_si256(_mm256_or_si256(le0, le1), _mm256_or_si256(le0, le1))) continue;
    unsigned mask = static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(le0))) |
                    (static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(le1))) << 8);
    do {
      const int j = i + __builtin_ctz(mask);
      mask &= mask - 1;
      const u32 inv_j = kTd32Table.inv[j], lim_j = kTd32Table.lim[j];
      while (n * inv_j <= lim_j) {
        n *= inv_j;
        out[count++] = kTd.p[j];
      }
    } while (mask != 0);
    nv = _mm256_set1_epi32(static_cast<int>(n));
  }
  n64 = n;
  return i;
}
#endif

}  // namespace

namespace detail {

// Test seams, declared by the test itself (not part of the public interface). Not thread-safe.
std::uint64_t rho_divisor_for_test(std::uint64_t n) noexcept {
  return rho64_divisor(n);
}

void use_baseline_isa_for_test(bool baseline) noexcept {
#ifdef ZG_HAVE_X86_DISPATCH
  __builtin_cpu_init();
  g_cpu.avx2 = !baseline && __builtin_cpu_supports("avx2");
  g_cpu.bmi2 = !baseline && __builtin_cpu_supports("bmi2");
#else
  (void)baseline;
#endif
}

}  // namespace detail

int factorize(std::uint64_t n, std::uint64_t* out) noexcept {
  if (n < 2) return 0;
  int count = 0;
  const int tz = __builtin_ctzll(n);
  for (int i = 0; i < tz; ++i) out[count++] = 2;
  n >>= tz;
  int i;
  int td_end;
  if (n < (u64{1} << 32)) {
#ifdef ZG_HAVE_X86_DISPATCH
    if (g_cpu.avx2) {
      td_end = kTd32Avx2;
      i = trial_divide_u32_avx2(n, out, count);
    } else {
      td_end = kTd32;
      i = trial_divide(n, out, count, kTd32);
    }
#else
    td_end = kTd32;
    i = trial_divide(n, out, count, kTd32);
#endif
  } else {
    td_end = kTd64;
    i = trial_divide(n, out, count, kTd64);
  }
  if (n == 1) return count;
  if (i < td_end) {
    out[count++] = n;  // no divisor up to sqrt(n)
    return count;
  }
  const int first_count = count;
  split_composite(n, out, count);
  sort_small(out + first_count, count - first_count);
  return count;
}

bool is_prime(std::uint64_t n) noexcept {
  if (n < 64) return (kSmallPrimeMask >> n) & 1;
  if ((n & 1) == 0 || n % 3 == 0 || n % 5 == 0) return false;
  return is_prime_odd(n);
}

std::optional<std::uint64_t> parse_u64(std::string_view text) noexcept {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  std::size_t b = 0, e = text.size();
  while (b < e && is_space(text[b])) ++b;
  while (e > b && is_space(text[e - 1])) --e;
  if (b == e) return std::nullopt;
  u64 v = 0;
  for (std::size_t i = b; i < e; ++i) {
    const char c = text[i];
    if (c < '0' || c > '9') return std::nullopt;
    const u64 digit = static_cast<u64>(c - '0');
    if (__builtin_mul_overflow(v, u64{10}, &v) || __builtin_add_overflow(v, digit, &v)) {
      return std::nullopt;
    }
  }
  if (v == 0) return std::nullopt;
  return v;
}

std::size_t format_factors(std::uint64_t n, const std::uint64_t* f, int count, char* buf) noexcept {
  auto put = [](char* dst, u64 v) -> std::size_t {
    char tmp[20];
    int len = 0;
    do {
      tmp[len++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    for (int i = 0; i < len; ++i) dst[i] = tmp[len - 1 - i];
    return static_cast<std::size_t>(len);
  };
  // n == 1 (and the degenerate n == 0) have no factors; print the value itself.
  if (count <= 0) return put(buf, n);
  std::size_t pos = 0;
  for (int i = 0; i < count; ++i) {
    if (i > 0) {
      buf[pos++] = ' ';
      buf[pos++] = '*';
      buf[pos++] = ' ';
    }
    pos += put(buf + pos, f[i]);
  }
  return pos;
}

}  // namespace zgrid::factor
