// Status and Result<T> (the public <zgrid/status.hpp>) and, for zgrid's own
// code, the macros that return an error to the caller.
//
// Thread safety: plain values; safe to copy and move between threads.
#pragma once

#include <zgrid/status.hpp>

#define ZG_CONCAT_INNER(a, b) a##b
#define ZG_CONCAT(a, b) ZG_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function if `expr` is not OK.
#define ZG_RETURN_IF_ERROR(expr)     \
  do {                               \
    ::zgrid::Status zg_st_ = (expr); \
    if (!zg_st_.ok()) return zg_st_; \
  } while (0)

// auto x = ...; from a Result<T>, returning its Status on error.
#define ZG_ASSIGN_OR_RETURN(lhs, expr) ZG_ASSIGN_OR_RETURN_I(ZG_CONCAT(zg_r_, __LINE__), lhs, expr)
#define ZG_ASSIGN_OR_RETURN_I(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
