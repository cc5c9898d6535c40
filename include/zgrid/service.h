/* zgrid service plug-in ABI, version 2 (docs/services.md).
 *
 * A plug-in is a shared library that exports one C function:
 *
 *   const zgrid_service_v2* zgrid_service_entry(uint32_t host_abi_version);
 *
 * The node calls it once after dlopen with the ABI version it speaks (2). The
 * plug-in returns a pointer to a static descriptor whose abi_version says
 * which version it implements (or NULL when it cannot serve that host). A
 * version 2 node accepts version 2 descriptors (zgrid_service_v2) and, from
 * plug-ins built before stateful sessions, version 1 ones
 * (zgrid_service_v1: no session support); it refuses any other version.
 *
 * Lifetime and threads: init() is called once per instance (the node makes
 * one instance per concurrency slot, at start); an instance handles at most
 * one request at a time, though successive requests may come from different
 * threads; different instances run at the same time. shutdown() is called
 * once per instance when the node stops, before the library is unloaded.
 *
 * Stateful sessions (version 2, both callbacks non-NULL): for each stateful
 * session the node makes one more instance (init, with the registration's
 * config), calls session_open() once, runs the session's requests on it
 * with handle() one at a time in request order, then calls session_close()
 * and shutdown() when the session ends (neither if the node dies). When a
 * node is lost, the session's requests are replayed from the first on a
 * fresh instance elsewhere and their answers discarded: the same requests
 * in the same order must give the same state and answers. A fault answers
 * its request only; the next request runs on the same state.
 *
 * Memory never crosses the boundary: the plug-in writes its answer through
 * the host callbacks, which copy the bytes before returning. Pointers passed
 * to handle() and session_open() are valid only during that call.
 *
 * Plain C (C99); usable from C, C++, Rust, Zig, Fortran... Stable: fields are
 * only ever appended, under a new ABI version.
 */
#ifndef ZGRID_SERVICE_H_
#define ZGRID_SERVICE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZGRID_SERVICE_ABI_VERSION 2u

/* Return codes of handle(). */
#define ZGRID_OK 0    /* the result was set with set_result (possibly empty) */
#define ZGRID_FAULT 1 /* a fault was set with set_fault */

/* Where handle() writes its answer (opaque; owned by the host). */
typedef struct zgrid_output zgrid_output;

/* Callbacks of the host, valid for the duration of one handle() call. */
typedef struct zgrid_host_api {
  uint32_t abi_version; /* the host's ZGRID_SERVICE_ABI_VERSION */
  /* Copies `len` bytes as the result (at most 1 MiB: larger is a fault). */
  void (*set_result)(zgrid_output* out, const void* data, size_t len);
  /* Sets a fault. `code`: 1..64 of [a-z0-9_] ("invalid_argument",
   * "service_error", or "retryable" to have the head run it again);
   * `message`: any text (truncated to 64 KiB). */
  void (*set_fault)(zgrid_output* out, const char* code, const char* message);
} zgrid_host_api;

/* The version 1 descriptor: what plug-ins built before version 2 return
 * (abi_version 1, struct_size sizeof(zgrid_service_v1)). New plug-ins use
 * zgrid_service_v2, which begins with the same fields. */
typedef struct zgrid_service_v1 {
  uint32_t abi_version;   /* 1 */
  uint32_t struct_size;   /* sizeof(zgrid_service_v1) */
  const char* name;       /* default service name: 1..64 of [A-Za-z0-9_.+-] */
  const char* version;    /* default version, same characters ("1", "2.3") */
  const char* operations; /* comma-separated ("pi,integrate,echo"); the first is the default */

  /* Makes one instance. `config` is the registration's config string ("" if
   * none). Returns NULL on failure after writing a message into err. */
  void* (*init)(const char* config, char* err, size_t errlen);
  /* Handles one request of `operation` (never NULL; the default one when the
   * session named none). Returns ZGRID_OK or ZGRID_FAULT. */
  int (*handle)(void* instance, const char* operation, const uint8_t* request, size_t len,
                zgrid_output* out, const zgrid_host_api* host);
  /* Frees an instance made by init. */
  void (*shutdown)(void* instance);
} zgrid_service_v1;

/* The version 2 descriptor: the version 1 fields, then the session callbacks. */
typedef struct zgrid_service_v2 {
  uint32_t abi_version;   /* ZGRID_SERVICE_ABI_VERSION (2) the plug-in was built against */
  uint32_t struct_size;   /* sizeof(zgrid_service_v2) */
  const char* name;       /* default service name: 1..64 of [A-Za-z0-9_.+-] */
  const char* version;    /* default version, same characters ("1", "2.3") */
  const char* operations; /* comma-separated ("pi,integrate,echo"); the first is the default */

  /* As in zgrid_service_v1. */
  void* (*init)(const char* config, char* err, size_t errlen);
  int (*handle)(void* instance, const char* operation, const uint8_t* request, size_t len,
                zgrid_output* out, const zgrid_host_api* host);
  void (*shutdown)(void* instance);

  /* Stateful sessions; both NULL (the service serves per-call sessions
   * only) or both set. session_open starts a session on a fresh instance
   * (`session_key`: "<session id>.<instance number>", for logs). Returns 0
   * on success; anything else refuses it after writing a message into err
   * (each request of the session then faults service_error). session_close
   * ends it, once, before shutdown. */
  int (*session_open)(void* instance, const char* session_key, char* err, size_t errlen);
  void (*session_close)(void* instance);
} zgrid_service_v2;

/* The one symbol a plug-in exports. (A version 1 plug-in's returns a
 * zgrid_service_v1*; the host reads abi_version first.) */
typedef const zgrid_service_v2* (*zgrid_service_entry_fn)(uint32_t host_abi_version);
#define ZGRID_SERVICE_ENTRY_SYMBOL "zgrid_service_entry"

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* ZGRID_SERVICE_H_ */
