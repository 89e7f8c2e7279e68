/*
 * Machine Room agent SDK for C (ABI v1, see ../ABI.md). Single header, freestanding:
 * no libc, target wasm32-unknown-unknown.
 *
 *   clang --target=wasm32-unknown-unknown -O2 -nostdlib -ffreestanding -fno-builtin \
 *     -I plugins-sdk/c -Wl,--no-entry -Wl,--export-dynamic -Wl,--allow-undefined \
 *     -o agent.wasm agent.c
 *
 * Export agent entry points with MR_EXPORT("mr_reconcile") int32_t mr_reconcile(void).
 * Host functions take and return JSON (mr_call_* helpers copy through Extism memory);
 * refusals come back as {"error":{"code","message"}} (mr_has_error).
 */
#ifndef MACHINE_ROOM_H
#define MACHINE_ROOM_H

#include <stdint.h>
#include <stddef.h>

#define MR_IMPORT(mod, name) __attribute__((import_module(mod), import_name(name)))
#define MR_EXPORT(name) __attribute__((export_name(name)))

/* ---- Extism kernel (extism:host/env) ---- */
MR_IMPORT("extism:host/env", "input_length") uint64_t extism_input_length(void);
MR_IMPORT("extism:host/env", "input_load_u8") uint32_t extism_input_load_u8(uint64_t);
MR_IMPORT("extism:host/env", "alloc") uint64_t extism_alloc(uint64_t);
MR_IMPORT("extism:host/env", "free") void extism_free(uint64_t);
MR_IMPORT("extism:host/env", "length") uint64_t extism_length(uint64_t);
MR_IMPORT("extism:host/env", "store_u8") void extism_store_u8(uint64_t, uint32_t);
MR_IMPORT("extism:host/env", "load_u8") uint32_t extism_load_u8(uint64_t);
MR_IMPORT("extism:host/env", "output_set") void extism_output_set(uint64_t, uint64_t);
MR_IMPORT("extism:host/env", "error_set") void extism_error_set(uint64_t);

/* ---- host functions (extism:host/user): JSON block in, JSON block out ---- */
MR_IMPORT("extism:host/user", "mr_log") uint64_t mr_log_raw(uint64_t);
MR_IMPORT("extism:host/user", "mr_facts") uint64_t mr_facts_raw(uint64_t);
MR_IMPORT("extism:host/user", "mr_event") uint64_t mr_event_raw(uint64_t);
MR_IMPORT("extism:host/user", "mr_submit") uint64_t mr_submit_raw(uint64_t);
MR_IMPORT("extism:host/user", "mr_metric") uint64_t mr_metric_raw(uint64_t);
MR_IMPORT("extism:host/user", "mr_state_get") uint64_t mr_state_get_raw(uint64_t);
MR_IMPORT("extism:host/user", "mr_state_put") uint64_t mr_state_put_raw(uint64_t);
MR_IMPORT("extism:host/user", "mr_kv_get") uint64_t mr_kv_get_raw(uint64_t);
MR_IMPORT("extism:host/user", "mr_exec") uint64_t mr_exec_raw(uint64_t);
MR_IMPORT("extism:host/user", "mr_http") uint64_t mr_http_raw(uint64_t);
MR_IMPORT("extism:host/user", "mr_file_read") uint64_t mr_file_read_raw(uint64_t);
MR_IMPORT("extism:host/user", "mr_file_write") uint64_t mr_file_write_raw(uint64_t);
MR_IMPORT("extism:host/user", "mr_governor") uint64_t mr_governor_raw(uint64_t);
MR_IMPORT("extism:host/user", "mr_is_leader") uint64_t mr_is_leader_raw(uint64_t);
MR_IMPORT("extism:host/user", "mr_transition") uint64_t mr_transition_raw(uint64_t);

/* clang may emit calls to these even with -fno-builtin */
void *memcpy(void *d, const void *s, size_t n) {
  unsigned char *o = d;
  const unsigned char *i = s;
  while (n--) *o++ = *i++;
  return d;
}
void *memset(void *d, int c, size_t n) {
  unsigned char *o = d;
  while (n--) *o++ = (unsigned char)c;
  return d;
}

static size_t mr_strlen(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

/* ---- a bounded string builder ---- */
typedef struct {
  char *buf;
  size_t cap;
  size_t len;
} mr_buf;

static void mr_buf_init(mr_buf *b, char *storage, size_t cap) {
  b->buf = storage;
  b->cap = cap;
  b->len = 0;
  if (cap) storage[0] = 0;
}
static void mr_put(mr_buf *b, const char *s) {
  while (*s && b->len + 1 < b->cap) b->buf[b->len++] = *s++;
  b->buf[b->len] = 0;
}
static void mr_putc(mr_buf *b, char c) {
  if (b->len + 1 < b->cap) b->buf[b->len++] = c;
  b->buf[b->len] = 0;
}
/* a JSON string literal */
static void mr_put_str(mr_buf *b, const char *s) {
  mr_putc(b, '"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') {
      mr_putc(b, '\\');
      mr_putc(b, *s);
    } else if (*s == '\n') mr_put(b, "\\n");
    else if ((unsigned char)*s < 32) mr_putc(b, ' ');
    else mr_putc(b, *s);
  }
  mr_putc(b, '"');
}
static void mr_put_int(mr_buf *b, int64_t v) {
  char tmp[24];
  int n = 0;
  uint64_t u = v < 0 ? (uint64_t)(-v) : (uint64_t)v;
  if (v < 0) mr_putc(b, '-');
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  while (n) mr_putc(b, tmp[--n]);
}
/* a number with two decimals */
static void mr_put_num(mr_buf *b, double v) {
  if (v != v || v > 1e18 || v < -1e18) {
    mr_putc(b, '0');
    return;
  }
  int64_t scaled = (int64_t)(v * 100.0 + (v < 0 ? -0.5 : 0.5));
  if (scaled < 0) {
    mr_putc(b, '-');
    scaled = -scaled;
  }
  mr_put_int(b, scaled / 100);
  mr_putc(b, '.');
  mr_putc(b, (char)('0' + (scaled / 10) % 10));
  mr_putc(b, (char)('0' + scaled % 10));
}

/* ---- input / output ---- */
/* Copies the call input into buf (NUL-terminated, truncated to cap-1); returns its length. */
static size_t mr_input(char *buf, size_t cap) {
  uint64_t n = extism_input_length();
  size_t i = 0;
  for (; i < n && i + 1 < cap; i++) buf[i] = (char)extism_input_load_u8(i);
  buf[i] = 0;
  return i;
}
static uint64_t mr_block(const char *s, size_t n) {
  uint64_t off = extism_alloc(n);
  for (size_t i = 0; i < n; i++) extism_store_u8(off + i, (unsigned char)s[i]);
  return off;
}
/* Sets the call output (JSON). */
static void mr_output(const char *json) {
  size_t n = mr_strlen(json);
  extism_output_set(mr_block(json, n), n);
}
/* Calls a host function with JSON; copies the reply into out (NUL-terminated). */
static size_t mr_call(uint64_t (*fn)(uint64_t), const char *json, char *out, size_t cap) {
  uint64_t in = mr_block(json, mr_strlen(json));
  uint64_t r = fn(in);
  extism_free(in);
  size_t i = 0;
  if (r) {
    uint64_t n = extism_length(r);
    for (; i < n && i + 1 < cap; i++) out[i] = (char)extism_load_u8(r + i);
    extism_free(r);
  }
  if (cap) out[i] = 0;
  return i;
}

/* ---- tiny JSON lookups (first occurrence of "key":) ---- */
static const char *mr_json_find(const char *json, const char *key) {
  size_t kl = mr_strlen(key);
  for (const char *p = json; *p; p++) {
    if (*p != '"') continue;
    size_t i = 0;
    while (i < kl && p[1 + i] == key[i]) i++;
    if (i == kl && p[1 + kl] == '"') {
      const char *q = p + kl + 2;
      while (*q == ' ') q++;
      if (*q == ':') {
        q++;
        while (*q == ' ') q++;
        return q;
      }
    }
  }
  return 0;
}
/* The number at "key", or dflt. */
static double mr_json_number(const char *json, const char *key, double dflt) {
  const char *p = mr_json_find(json, key);
  if (!p) return dflt;
  int neg = 0;
  if (*p == '-') {
    neg = 1;
    p++;
  }
  if (*p < '0' || *p > '9') return dflt;
  double v = 0;
  while (*p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
  if (*p == '.') {
    double f = 0.1;
    for (p++; *p >= '0' && *p <= '9'; p++, f /= 10) v += (*p - '0') * f;
  }
  if (*p == 'e' || *p == 'E') {
    int en = 0, es = 1;
    p++;
    if (*p == '-') {
      es = -1;
      p++;
    } else if (*p == '+') p++;
    while (*p >= '0' && *p <= '9') en = en * 10 + (*p++ - '0');
    while (en--) v = es > 0 ? v * 10 : v / 10;
  }
  return neg ? -v : v;
}
/* Copies the string at "key" (escapes kept as-is) into out; returns 1 when found. */
static int mr_json_string(const char *json, const char *key, char *out, size_t cap) {
  const char *p = mr_json_find(json, key);
  if (!p || *p != '"' || !cap) return 0;
  size_t i = 0;
  for (p++; *p && *p != '"' && i + 1 < cap; p++) {
    if (*p == '\\' && p[1]) p++;
    out[i++] = *p;
  }
  out[i] = 0;
  return 1;
}
static int mr_has_error(const char *json) {
  return mr_json_find(json, "error") != 0 && mr_json_find(json, "code") != 0;
}

/* ---- typed helpers ---- */
static char mr_reply[4096];

/* Emits an agent event: type, data as raw JSON ("null" for none). */
static const char *mr_event(const char *type, const char *data_json) {
  static char req[2048];
  mr_buf b;
  mr_buf_init(&b, req, sizeof req);
  mr_put(&b, "{\"type\":");
  mr_put_str(&b, type);
  mr_put(&b, ",\"data\":");
  mr_put(&b, data_json);
  mr_putc(&b, '}');
  mr_call(mr_event_raw, req, mr_reply, sizeof mr_reply);
  return mr_reply;
}
/* Reads one fact by dotted path; returns dflt when absent or refused. */
static double mr_fact_number(const char *path, double dflt) {
  static char req[256];
  mr_buf b;
  mr_buf_init(&b, req, sizeof req);
  mr_put(&b, "{\"path\":");
  mr_put_str(&b, path);
  mr_putc(&b, '}');
  mr_call(mr_facts_raw, req, mr_reply, sizeof mr_reply);
  if (mr_has_error(mr_reply)) return dflt;
  return mr_json_number(mr_reply, "value", dflt);
}
static void mr_metric(const char *name, double value) {
  static char req[512];
  mr_buf b;
  mr_buf_init(&b, req, sizeof req);
  mr_put(&b, "{\"name\":");
  mr_put_str(&b, name);
  mr_put(&b, ",\"value\":");
  mr_put_num(&b, value);
  mr_putc(&b, '}');
  mr_call(mr_metric_raw, req, mr_reply, sizeof mr_reply);
}
/* State: a number under key (dflt when unset). */
static double mr_state_get_number(const char *key, double dflt) {
  static char req[256];
  mr_buf b;
  mr_buf_init(&b, req, sizeof req);
  mr_put(&b, "{\"key\":");
  mr_put_str(&b, key);
  mr_putc(&b, '}');
  mr_call(mr_state_get_raw, req, mr_reply, sizeof mr_reply);
  return mr_json_number(mr_reply, "value", dflt);
}
static void mr_state_put_number(const char *key, double v) {
  static char req[256];
  mr_buf b;
  mr_buf_init(&b, req, sizeof req);
  mr_put(&b, "{\"key\":");
  mr_put_str(&b, key);
  mr_put(&b, ",\"value\":");
  mr_put_num(&b, v);
  mr_putc(&b, '}');
  mr_call(mr_state_put_raw, req, mr_reply, sizeof mr_reply);
}
static void mr_log(const char *level, const char *msg) {
  static char req[1024];
  mr_buf b;
  mr_buf_init(&b, req, sizeof req);
  mr_put(&b, "{\"level\":");
  mr_put_str(&b, level);
  mr_put(&b, ",\"msg\":");
  mr_put_str(&b, msg);
  mr_putc(&b, '}');
  mr_call(mr_log_raw, req, mr_reply, sizeof mr_reply);
}

#endif
