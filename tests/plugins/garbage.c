/* Test plug-in in plain C (proves zgrid/service.h is C): answers wrongly on
 * purpose. It is an old, ABI version 1 plug-in (zgrid_service_v1, as built
 * before stateful sessions), which a version 2 node still loads. Built also
 * with GARBAGE_WRONG_ABI (claims version 3: refused) and GARBAGE_SHORT_V2
 * (claims version 2 with a version 1 descriptor: refused).
 * The request selects the misbehaviour:
 *   "badrc"   returns 7;             "none"    returns ZGRID_OK, sets nothing;
 *   "huge"    a 2 MiB result;        "badcode" fault code "Bad Code!";
 *   "both"    a result and a fault;  "lie"     sets a result, returns ZGRID_FAULT;
 *   anything else: echoed. */
#include <stdlib.h>
#include <string.h>
#include <zgrid/service.h>

static int instance_token;

static void* init(const char* config, char* err, size_t errlen) {
  (void)config;
  (void)err;
  (void)errlen;
  return &instance_token;
}

static int is(const uint8_t* req, size_t len, const char* s) {
  return len == strlen(s) && memcmp(req, s, len) == 0;
}

static int handle(void* inst, const char* op, const uint8_t* req, size_t len, zgrid_output* out,
                  const zgrid_host_api* host) {
  (void)inst;
  (void)op;
  if (is(req, len, "badrc")) return 7;
  if (is(req, len, "none")) return ZGRID_OK;
  if (is(req, len, "huge")) {
    size_t n = 2u << 20;
    char* big = calloc(n, 1);
    host->set_result(out, big, n);
    free(big);
    return ZGRID_OK;
  }
  if (is(req, len, "badcode")) {
    host->set_fault(out, "Bad Code!", "nope");
    return ZGRID_FAULT;
  }
  if (is(req, len, "both")) {
    host->set_result(out, "x", 1);
    host->set_fault(out, "service_error", "both");
    return ZGRID_OK;
  }
  if (is(req, len, "lie")) {
    host->set_result(out, "x", 1);
    return ZGRID_FAULT;
  }
  host->set_result(out, req, len);
  return ZGRID_OK;
}

static void shutdown_instance(void* inst) {
  (void)inst;
}

static const zgrid_service_v1 entry = {
#if defined(GARBAGE_WRONG_ABI)
    3u,
#elif defined(GARBAGE_SHORT_V2)
    2u,
#else
    1u,
#endif
    sizeof(zgrid_service_v1),
    "garbage",
    "1",
    "run",
    &init,
    &handle,
    &shutdown_instance};

__attribute__((visibility("default"))) const zgrid_service_v1* zgrid_service_entry(uint32_t v) {
  (void)v;
  return &entry;
}
