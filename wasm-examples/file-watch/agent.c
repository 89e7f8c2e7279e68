/*
 * file-watch: a WASI agent in C with wasi-libc (Debian `wasi-libc`, `clang --target=wasm32-wasi`).
 *
 * mr_reconcile reads the file named by the WATCH_FILE environment variable (from the agent's
 * `config.env`; the file needs a `files.read` grant), counts its bytes and lines, writes a
 * report to $REPORT_DIR/file-watch.json (needs `files.write`), logs a line on stdout and
 * returns {"status":"ok"|"degraded"|"failed","message":...}: degraded when the file is
 * larger than MAX_BYTES. Stdio, files, environment and clocks are plain libc; only the
 * output goes through the Extism kernel.
 *
 *   clang --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -O2 -o file-watch.wasm agent.c
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IMPORT(name) __attribute__((import_module("extism:host/env"), import_name(name)))
IMPORT("alloc") uint64_t extism_alloc(uint64_t);
IMPORT("store_u8") void extism_store_u8(uint64_t, uint8_t);
IMPORT("output_set") void extism_output_set(uint64_t, uint64_t);

static void output(const char *s) {
  uint64_t n = strlen(s);
  uint64_t b = extism_alloc(n);
  for (uint64_t i = 0; i < n; i++) extism_store_u8(b + i, (uint8_t)s[i]);
  extism_output_set(b, n);
}

/* JSON-escapes `s` into `out` (at most `cap` bytes). */
static void escape(const char *s, char *out, size_t cap) {
  size_t o = 0;
  for (; *s && o + 7 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') { out[o++] = '\\'; out[o++] = (char)c; }
    else if (c < 0x20) o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
    else out[o++] = (char)c;
  }
  out[o] = 0;
}

static int32_t result(const char *status, const char *message) {
  char esc[512], json[700];
  if (strcmp(status, "failed") == 0) fprintf(stderr, "file-watch: %s\n", message);
  escape(message, esc, sizeof esc);
  snprintf(json, sizeof json, "{\"status\":\"%s\",\"message\":\"%s\"}", status, esc);
  output(json);
  return 0;
}

__attribute__((export_name("mr_reconcile"))) int32_t mr_reconcile(void) {
  const char *path = getenv("WATCH_FILE");
  const char *dir = getenv("REPORT_DIR");
  const char *max_s = getenv("MAX_BYTES");
  char msg[400];
  if (!path || !dir) return result("failed", "config.env needs WATCH_FILE and REPORT_DIR");
  long max = max_s ? atol(max_s) : 1L << 20;

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(msg, sizeof msg, "cannot open %s: %s (errno %d)", path, strerror(errno), errno);
    return result("failed", msg);
  }
  char buf[4096];
  long bytes = 0, lines = 0;
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
    bytes += (long)n;
    for (size_t i = 0; i < n; i++) lines += buf[i] == '\n';
  }
  fclose(f);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long us = (long)((t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000L);
  time_t now = time(NULL);

  char report[600];
  snprintf(report, sizeof report, "%s/file-watch.json", dir);
  FILE *r = fopen(report, "w");
  if (!r) {
    snprintf(msg, sizeof msg, "cannot write %s: %s (errno %d)", report, strerror(errno), errno);
    return result("failed", msg);
  }
  fprintf(r, "{\"file\":\"%s\",\"bytes\":%ld,\"lines\":%ld,\"at\":%lld}\n", path, bytes, lines,
          (long long)now);
  fclose(r);

  printf("file-watch: %s has %ld bytes, %ld lines (read in %ld us)\n", path, bytes, lines, us);
  fflush(stdout);
  snprintf(msg, sizeof msg, "%s: %ld bytes, %ld lines", path, bytes, lines);
  return result(bytes > max ? "degraded" : "ok", msg);
}
