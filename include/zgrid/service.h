/* zgrid service plug-in ABI, version 1 (docs/services.md).
 *
 * A plug-in is a shared library that exports one C function:
 *
 *   const zgrid_service_v1* zgrid_service_entry(uint32_t host_abi_version);
 *
 * The node calls it once after dlopen with the ABI version it speaks. The
 * plug-in returns a pointer to a static descriptor whose abi_version says
 * which version it implements (or NULL when it cannot serve that host). A node
 * refuses a plug-in whose abi_version differs from its own.
 *
 * Lifetime and threads: init() is called once per instance (the node makes
 * one instance per concurrency slot, at start); an instance handles at most
 * one request at a time, though successive requests may come from different
 * threads; different instances run at the same time. shutdown() is called
 * once per instance when the node stops, before the library is unloaded.
 *
 * Memory never crosses the boundary: the plug-in writes its answer through
 * the host callbacks, which copy the bytes before returning. Pointers passed
 * to handle() are valid only during that call.
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

#define ZGRID_SERVICE_ABI_VERSION 1u

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

typedef struct zgrid_service_v1 {
  uint32_t abi_version;   /* ZGRID_SERVICE_ABI_VERSION the plug-in was built against */
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

/* The one symbol a plug-in exports. */
typedef const zgrid_service_v1* (*zgrid_service_entry_fn)(uint32_t host_abi_version);
#define ZGRID_SERVICE_ENTRY_SYMBOL "zgrid_service_entry"

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* ZGRID_SERVICE_H_ */
