// Prime factorization kernel. Pipeline for one n:
//   1. strip powers of two (ctz), trial-divide by small odd primes using the
//      multiply-by-inverse divisibility test (n * p^-1 mod 2^64 <= (2^64-1)/p);
//   2. a leftover cofactor below the square of the next prime is prime;
//   3. otherwise deterministic Miller-Rabin in Montgomery form (32-bit path with bases
//      {2, 7, 61}, 64-bit path with the 7-base set), and composites are split by
//      Pollard-Brent rho (Montgomery arithmetic, batched gcd with backtracking).
// All state lives on the stack; the only tables are constexpr.
#include "services/factorize_kernel.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace zgrid::factor {
namespace {

using u32 = std::uint32_t;
using u64 = std::uint64_t;
using u128 = unsigned __int128;

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
inline u64 gcd_odd(u64 a, u64 b) {
  if (a == 0) return b;
  a >>= __builtin_ctzll(a);
  while (a != b) {
    if (a > b) {
      u64 t = a - b;
      a = t >> __builtin_ctzll(t);
    } else {
      u64 t = b - a;
      b = t >> __builtin_ctzll(t);
    }
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
// Trial-division table, built at compile time: odd primes 3..kTdLimit with p^-1 mod 2^64 and
// floor((2^64-1)/p). n is divisible by p exactly when n * p^-1 (mod 2^64) <= that limit, and then
// the product is the quotient.

constexpr u32 kTdLimit = 1 << 12;

constexpr int count_odd_primes(u32 limit) {
  int count = 0;
  for (u32 n = 3; n < limit; n += 2) {
    bool prime = true;
    for (u32 d = 3; d * d <= n; d += 2) {
      if (n % d == 0) {
        prime = false;
        break;
      }
    }
    if (prime) ++count;
  }
  return count;
}

constexpr int kNumTdPrimes = count_odd_primes(kTdLimit);

struct TdTable {
  std::array<u64, kNumTdPrimes> inv{};
  std::array<u64, kNumTdPrimes> lim{};
  std::array<u32, kNumTdPrimes> p{};
};

constexpr TdTable make_td_table() {
  TdTable t;
  int i = 0;
  for (u32 n = 3; n < kTdLimit; n += 2) {
    bool prime = true;
    for (u32 d = 3; d * d <= n; d += 2) {
      if (n % d == 0) {
        prime = false;
        break;
      }
    }
    if (!prime) continue;
    t.p[i] = n;
    t.inv[i] = inverse_mod_2_64(n);
    t.lim[i] = ~u64{0} / n;
    ++i;
  }
  return t;
}

constexpr TdTable kTd = make_td_table();
#ifndef TD32
#define TD32 128
#define TD64 564
#endif
constexpr int kTd32 = TD32 < kNumTdPrimes ? TD32 : kNumTdPrimes;
constexpr int kTd64 = TD64 < kNumTdPrimes ? TD64 : kNumTdPrimes;

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

struct Mont32 {
  using T = u32;
  u32 n;
  u32 ninv;  // n^-1 mod 2^32
  u32 r1;    // 2^32 mod n: Montgomery one
  u32 r2;    // 2^64 mod n: converts into Montgomery form

  explicit Mont32(u32 modulus) : n(modulus), ninv(inverse_mod_2_32(modulus)) {
    r1 = static_cast<u32>((u64{1} << 32) % n);
    r2 = static_cast<u32>(static_cast<u64>(r1) * r1 % n);
  }
  u32 mul(u32 a, u32 b) const {
    u64 t = static_cast<u64>(a) * b;
    u32 m = static_cast<u32>(t) * ninv;
    u32 mh = static_cast<u32>((static_cast<u64>(m) * n) >> 32);
    u32 th = static_cast<u32>(t >> 32);
    u32 r = th - mh;
    return th < mh ? r + n : r;
  }
  // a + b - n computed as a - (n - b): same borrow test as sub, so it stays a cmov (the
  // carry-or-compare form compiles to a branch that mispredicts half the time).
  u32 add(u32 a, u32 b) const { return sub(a, n - b); }
  u32 sub(u32 a, u32 b) const { return a >= b ? a - b : a - b + n; }
  u32 one() const { return r1; }
  u32 to(u64 a) const { return mul(static_cast<u32>(a % n), r2); }
};

struct Mont64 {
  using T = u64;
  u64 n;
  u64 ninv;  // n^-1 mod 2^64
  u64 r1;    // 2^64 mod n
  u64 r2;    // 2^128 mod n

  explicit Mont64(u64 modulus) : n(modulus), ninv(inverse_mod_2_64(modulus)) {
    r1 = (0 - n) % n;
    r2 = static_cast<u64>(static_cast<u128>(r1) * r1 % n);
  }
  u64 mul(u64 a, u64 b) const {
    u128 t = static_cast<u128>(a) * b;
    u64 m = static_cast<u64>(t) * ninv;
    u64 mh = static_cast<u64>((static_cast<u128>(m) * n) >> 64);
    u64 th = static_cast<u64>(t >> 64);
    u64 r = th - mh;
    return th < mh ? r + n : r;
  }
  // a + b - n computed as a - (n - b): same borrow test as sub, so it stays a cmov (the
  // carry-or-compare form compiles to a branch that mispredicts half the time).
  u64 add(u64 a, u64 b) const { return sub(a, n - b); }
  u64 sub(u64 a, u64 b) const { return a >= b ? a - b : a - b + n; }
  u64 one() const { return r1; }
  u64 to(u64 a) const { return mul(a % n, r2); }
};

// ---------------------------------------------------------------------------------------------
// Miller-Rabin. All bases of a set run in lockstep so their independent multiply chains overlap
// in the pipeline; a prime has to pass every base anyway, and primes dominate the cost.

template <class M, std::size_t K>
bool miller_rabin(const M& m, const std::array<u64, K>& bases) {
  using T = typename M::T;
  const T n = m.n;
  T d = n - 1;
  const int s = __builtin_ctzll(d);
  d >>= s;
  const T one = m.one();
  const T minus_one = n - one;
  std::array<T, K> x{};
  std::array<bool, K> skip{};
  for (std::size_t i = 0; i < K; ++i) {
    T a = static_cast<T>(bases[i] % n);
    skip[i] = (a == 0);  // a multiple of n says nothing; every set used here covers that case
    x[i] = m.to(a);
  }
  // Left-to-right exponentiation by d, shared bit scan.
  std::array<T, K> base = x;
  const int top = 63 - __builtin_clzll(d);
  for (int b = top - 1; b >= 0; --b) {
    for (std::size_t i = 0; i < K; ++i) x[i] = m.mul(x[i], x[i]);
    if ((d >> b) & 1) {
      for (std::size_t i = 0; i < K; ++i) x[i] = m.mul(x[i], base[i]);
    }
  }
  for (std::size_t i = 0; i < K; ++i) {
    if (skip[i]) continue;
    T y = x[i];
    if (y == one || y == minus_one) continue;
    bool ok = false;
    for (int r = 1; r < s; ++r) {
      y = m.mul(y, y);
      if (y == minus_one) {
        ok = true;
        break;
      }
      if (y == one) break;
    }
    if (!ok) return false;
  }
  return true;
}

constexpr std::array<u64, 3> kBases32 = {2, 7, 61};  // deterministic below 4,759,123,141
constexpr std::array<u64, 1> kBase2 = {2};
constexpr std::array<u64, 6> kBases64Rest = {325, 9375, 28178, 450775, 9780504, 1795265022};

// Primality of an odd n > 61 that has no prime factor below 5 (callers guarantee this).
bool is_prime_odd(u64 n) {
  if (n < (u64{1} << 32)) {
    Mont32 m(static_cast<u32>(n));
    return miller_rabin(m, kBases32);
  }
  // n >= 2^32 exceeds every base, so no base is a multiple of n. Base 2 alone rejects almost
  // every composite, so run it first and the other six only for (probable) primes.
  Mont64 m(n);
  return miller_rabin(m, kBase2) && miller_rabin(m, kBases64Rest);
}

// ---------------------------------------------------------------------------------------------
// Pollard-Brent rho, f(y) = y^2 + c in Montgomery form. Differences are multiplied together in
// batches so that one gcd covers many steps; on overshoot (gcd == n) we replay the last batch
// one step at a time. Returns a divisor in (1, n) or 0 if this c failed.

template <class M>
u64 brent_rho(const M& m, typename M::T c, int batch) {
  using T = typename M::T;
  const u64 n = m.n;
  T y = m.add(m.one(), m.one());  // any start point works; fixed for reproducibility
  T x = y, ys = y, q = m.one();
  u64 g = 1;
  for (u64 r = 1; g == 1; r <<= 1) {
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
    if (r > (u64{1} << 40)) return 0;  // cannot happen for 64-bit n; guards an endless loop
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
// Micro-ECM for 64-bit composites whose smallest factor may be large (semiprimes of two 32-bit
// primes are the worst case for rho: ~2^16 iterations). Montgomery curves B y^2 = x^3 + A x^2 + x
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
  int bits = 0;      // bit length of the odd part
  int twos = 0;      // exponent of two
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

struct EcmParams {
  u32 b1;
  u32 b2;
  int max_curves;
  StageOneMultiplier k;
};

constexpr EcmParams make_params(u32 b1, u32 b2, int curves) {
  return EcmParams{b1, b2, curves, make_stage_one(b1)};
}

#ifndef ECM_B1_0
#define ECM_B1_0 50
#define ECM_B1_1 85
#define ECM_B1_2 125
#define ECM_B1_3 165
#define ECM_B2X 50
#endif
#ifndef ECM_MIN_BITS
#define ECM_MIN_BITS 40
#endif
// Chosen by measurement on 64-bit semiprimes; smaller inputs have smaller smallest factors.
constexpr EcmParams kEcmParams[] = {
    make_params(ECM_B1_0, ECM_B1_0 * ECM_B2X, 40),   // n < 2^44
    make_params(ECM_B1_1, ECM_B1_1 * ECM_B2X, 60),   // n < 2^52
    make_params(ECM_B1_2, ECM_B1_2 * ECM_B2X, 80),   // n < 2^58
    make_params(ECM_B1_3, ECM_B1_3 * ECM_B2X, 100),  // n < 2^64
};

constexpr u32 kD = 210;  // giant step; 24 residues in (0, 105) are coprime to it
static_assert(kEcmParams[3].b2 + kD < kEcmSieveLimit);
static_assert(kEcmParams[3].k.bits < kMaxKLimbs * 64 - 64);
constexpr int kMaxGiant = kEcmSieveLimit / kD + 2;

struct Pt {
  u64 x, z;
};

// Binary extended gcd: returns a^-1 mod n (odd n) in *inv when gcd(a, n) == 1, else the gcd.
u64 inverse_or_gcd(u64 a, u64 n, u64* inv) {
  if (a == 0) return n;
  u64 u = a, v = n, x1 = 1, x2 = 0;  // invariants: x1 * a == u, x2 * a == v (mod n)
  const u64 half = (n >> 1) + 1;     // (n + 1) / 2 = 2^-1 mod n
  while ((u & 1) == 0) {
    u >>= 1;
    x1 = (x1 & 1) ? (x1 >> 1) + half : x1 >> 1;
  }
  while (u != v) {
    if (u > v) {
      u -= v;
      x1 = x1 >= x2 ? x1 - x2 : x1 - x2 + n;
      do {
        u >>= 1;
        x1 = (x1 & 1) ? (x1 >> 1) + half : x1 >> 1;
      } while ((u & 1) == 0);
    } else {
      v -= u;
      x2 = x2 >= x1 ? x2 - x1 : x2 - x1 + n;
      do {
        v >>= 1;
        x2 = (x2 & 1) ? (x2 >> 1) + half : x2 >> 1;
      } while ((v & 1) == 0);
    }
  }
  if (u != 1) return u;
  *inv = x1;
  return 1;
}

class Ecm {
 public:
  explicit Ecm(const Mont64& m) : m_(m) { r3_ = m.mul(m.r2, m.r2); }

  // Montgomery-form inverse of a Montgomery-form value; returns 1 or the gcd found.
  u64 inverse(u64 a_mont, u64* out) const {
    u64 inv;
    const u64 g = inverse_or_gcd(a_mont, m_.n, &inv);
    if (g != 1) return g;
    *out = m_.mul(inv, r3_);  // (aR)^-1 * R^3 / R = a^-1 R
    return 1;
  }

  // Tries one curve; returns a divisor in (1, n) or 0.
  u64 run_curve(const EcmParams& prm, u64 sigma) {
    const Mont64& m = m_;
    const u64 n = m.n;
    // Suyama: u = s^2 - 5, v = 4s, x0 = u^3 / v^3, a24 = (v - u)^3 (3u + v) / (16 u^3 v).
    const u64 s = m.to(sigma);
    const u64 five = m.to(5);
    const u64 u = m.sub(m.mul(s, s), five);
    const u64 v = m.add(m.add(s, s), m.add(s, s));
    const u64 u3 = m.mul(m.mul(u, u), u);
    const u64 v3 = m.mul(m.mul(v, v), v);
    const u64 vmu = m.sub(v, u);
    const u64 num = m.mul(m.mul(m.mul(vmu, vmu), vmu), m.add(m.add(m.add(u, u), u), v));
    u64 den = m.mul(u3, v);
    den = m.add(den, den);
    den = m.add(den, den);
    den = m.add(den, den);
    den = m.add(den, den);
    u64 inv;
    const u64 g = inverse(m.mul(den, v3), &inv);
    if (g != 1) return g != n ? g : 0;
    a24_ = m.mul(num, m.mul(inv, v3));
    const u64 x0 = m.mul(u3, m.mul(inv, den));

    // Stage 1: ladder over the odd part of K, then the doublings for 2^twos.
    Pt r0{x0, m.one()};
    Pt r1 = dbl({x0, m.one()});
    const auto& k = prm.k;
    for (int b = k.bits - 2; b >= 0; --b) {
      const bool bit = (k.limb[b >> 6] >> (b & 63)) & 1;
      if (bit) {
        r0 = add_unit(r1, r0, x0);
        r1 = dbl(r1);
      } else {
        r1 = add_unit(r1, r0, x0);
        r0 = dbl(r0);
      }
    }
    for (int i = 0; i < k.twos; ++i) r0 = dbl(r0);
    u64 gz = gcd_odd(r0.z, n);
    if (gz != 1) return gz != n ? gz : 0;
    return stage_two(prm, r0);
  }

 private:
  Pt dbl(Pt p) const {
    const Mont64& m = m_;
    const u64 s = m.add(p.x, p.z), d = m.sub(p.x, p.z);
    const u64 ss = m.mul(s, s), dd = m.mul(d, d);
    const u64 t = m.sub(ss, dd);  // 4xz
    return {m.mul(ss, dd), m.mul(t, m.add(dd, m.mul(a24_, t)))};
  }
  // p + q given p - q = diff.
  Pt add(Pt p, Pt q, Pt diff) const {
    const Mont64& m = m_;
    const u64 a = m.mul(m.sub(p.x, p.z), m.add(q.x, q.z));
    const u64 b = m.mul(m.add(p.x, p.z), m.sub(q.x, q.z));
    const u64 s = m.add(a, b), d = m.sub(a, b);
    return {m.mul(diff.z, m.mul(s, s)), m.mul(diff.x, m.mul(d, d))};
  }
  // p + q given p - q = (diff_x : 1).
  Pt add_unit(Pt p, Pt q, u64 diff_x) const {
    const Mont64& m = m_;
    const u64 a = m.mul(m.sub(p.x, p.z), m.add(q.x, q.z));
    const u64 b = m.mul(m.add(p.x, p.z), m.sub(q.x, q.z));
    const u64 s = m.add(a, b), d = m.sub(a, b);
    return {m.mul(s, s), m.mul(diff_x, m.mul(d, d))};
  }

  u64 stage_two(const EcmParams& prm, Pt q) {
    const Mont64& m = m_;
    const u64 n = m.n;
    constexpr int kBaby = 24;
    // Odd multiples j*Q, j = 1..105; keep those coprime to 210.
    Pt baby[kBaby];
    int baby_j[kBaby];
    int nb = 0;
    const Pt q2 = dbl(q);
    Pt prev = q, cur = add(q2, q, q);  // 3Q
    baby[nb] = q;
    baby_j[nb++] = 1;
    Pt q105{};
    for (int j = 3; j <= 105; j += 2) {
      if (j == 105) q105 = cur;
      if (j % 3 != 0 && j % 5 != 0 && j % 7 != 0) {
        baby[nb] = cur;
        baby_j[nb++] = j;
      }
      const Pt next = add(cur, q2, prev);
      prev = cur;
      cur = next;
    }
    // Giant steps G_i = (m0 + i) * D * Q.
    const u32 m_first = prm.b1 < 2 * kD ? 1 : prm.b1 / kD;
    const u32 m_last = (prm.b2 + kD - 1) / kD;
    const int ng = static_cast<int>(m_last - m_first + 1);
    Pt giant[kMaxGiant];
    const Pt gd = dbl(q105);  // D*Q
    giant[0] = mul_small(gd, m_first);
    if (ng > 1) giant[1] = m_first == 1 ? dbl(gd) : add(giant[0], gd, mul_small(gd, m_first - 1));
    for (int i = 2; i < ng; ++i) giant[i] = add(giant[i - 1], gd, giant[i - 2]);
    // One batched inversion normalizes every point (z = 1). A zero z mod p makes the product
    // share p with n, which is exactly a success.
    u64 prefix[kBaby + kMaxGiant];
    const int total = nb + ng;
    auto zref = [&](int i) -> u64& { return i < nb ? baby[i].z : giant[i - nb].z; };
    auto xref = [&](int i) -> u64& { return i < nb ? baby[i].x : giant[i - nb].x; };
    u64 acc = m.one();
    for (int i = 0; i < total; ++i) {
      prefix[i] = acc;
      acc = m.mul(acc, zref(i));
    }
    u64 inv;
    const u64 g = inverse(acc, &inv);
    if (g != 1) return g != n ? g : 0;
    for (int i = total - 1; i >= 0; --i) {
      const u64 zi = zref(i);
      xref(i) = m.mul(xref(i), m.mul(inv, prefix[i]));
      inv = m.mul(inv, zi);
    }
    // Pairs: x(G) == x(jQ) mod p exactly when (mD +- j) Q is the identity mod p.
    acc = m.one();
    for (int i = 0; i < ng; ++i) {
      const u32 c = (m_first + i) * kD;
      const u64 gx = giant[i].x;
      for (int b = 0; b < nb; ++b) {
        const u32 j = baby_j[b];
        const u32 hi = c + j, lo = c - j;
        const bool want = (hi > prm.b1 && hi <= prm.b2 && kPrimeBits.test(hi)) ||
                          (c > j && lo > prm.b1 && lo <= prm.b2 && kPrimeBits.test(lo));
        if (want) acc = m.mul(acc, m.sub(gx, baby[b].x));
      }
    }
    const u64 g2 = gcd_odd(acc, n);
    return (g2 != 1 && g2 != n) ? g2 : 0;
  }

  // k * p for small k >= 1 by a ladder (used once per curve for the first giant steps).
  Pt mul_small(Pt p, u32 k) const {
    if (k == 1) return p;
    Pt r0 = p, r1 = dbl(p);
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

  const Mont64& m_;
  u64 r3_;
  u64 a24_ = 0;
};

u64 ecm_find_divisor(const Mont64& m) {
  const int bits = 64 - __builtin_clzll(m.n);
  const EcmParams& prm = bits <= 44 ? kEcmParams[0]
                         : bits <= 52 ? kEcmParams[1]
                         : bits <= 58 ? kEcmParams[2]
                                      : kEcmParams[3];
  Ecm ecm(m);
  for (int c = 0; c < prm.max_curves; ++c) {
    const u64 d = ecm.run_curve(prm, 11 + c);
    if (d != 0) return d;
  }
  return 0;
}

// Finds a nontrivial divisor of an odd composite n that has no prime factor below 5.
u64 find_divisor(u64 n) {
  const u64 r = isqrt(n);
  if (r * r == n) return r;
  if (n < (u64{1} << 32)) {
    Mont32 m(static_cast<u32>(n));
    for (u32 c = 1;; ++c) {
      u64 d = brent_rho(m, m.to(c), 32);
      if (d != 0) return d;
    }
  }
  Mont64 m(n);
  if (n >= (u64{1} << ECM_MIN_BITS)) {
    const u64 d = ecm_find_divisor(m);
    if (d != 0) return d;
  }
  for (u64 c = 1;; ++c) {
    u64 d = brent_rho(m, m.to(c), 128);
    if (d != 0) return d;
  }
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

}  // namespace

int factorize(std::uint64_t n, std::uint64_t* out) noexcept {
  if (n < 2) return 0;
  int count = 0;
  const int tz = __builtin_ctzll(n);
  for (int i = 0; i < tz; ++i) out[count++] = 2;
  n >>= tz;
  // Trial division; stop as soon as p^2 exceeds what is left, which then has to be prime.
  int i = 0;
  const int td_end = n < (u64{1} << 32) ? kTd32 : kTd64;
  for (; i < td_end; ++i) {
    const u64 p = kTd.p[i];
    if (p * p > n) break;
    const u64 inv = kTd.inv[i];
    const u64 lim = kTd.lim[i];
    while (n * inv <= lim) {
      n *= inv;
      out[count++] = p;
    }
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

std::size_t format_factors(std::uint64_t n, const std::uint64_t* f, int count,
                           char* buf) noexcept {
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
