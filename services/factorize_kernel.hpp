// Prime factorization of 64-bit integers: the compute kernel behind the factorize service.
// Thread safety: every function is pure (no shared mutable state, no allocation), so all of
// them may be called concurrently from any number of threads. Nothing here throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace zgrid::factor {

// Largest number of prime factors (with multiplicity) of a 64-bit value.
inline constexpr int kMaxFactors = 64;

// Writes the prime factors of n in ascending order, with multiplicity, to out;
// returns how many. n == 0 and n == 1 have none (returns 0). Thread-safe, no allocation.
int factorize(std::uint64_t n, std::uint64_t* out) noexcept;

// Deterministic primality for every 64-bit value.
bool is_prime(std::uint64_t n) noexcept;

// Strict decimal parse for service input: digits only (optional surrounding ASCII spaces/tabs/CR
// ok), value in 1..2^64-1; returns nullopt for empty, signs, non-digits, 0, overflow past 2^64-1.
std::optional<std::uint64_t> parse_u64(std::string_view text) noexcept;

// Formats "p1 * p2 * ..." (ascending, with multiplicity) into buf (size >= 21*64 bytes is always
// enough); for n == 1 writes "1". Returns the number of bytes written (no NUL terminator).
std::size_t format_factors(std::uint64_t n, const std::uint64_t* f, int count, char* buf) noexcept;

}  // namespace zgrid::factor
