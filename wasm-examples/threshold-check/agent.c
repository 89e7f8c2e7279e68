/*
 * threshold-check (C): compares facts against limits from its config and raises / clears
 * alarm events; alarm state survives restarts and upgrades (mr_state_*). Optional
 * remediation hook: when an alarm is raised it emits "remediate" with the check's name,
 * which another agent (or the vendor's backend) can act on.
 *
 * config: {"memory_percent": 90, "load1": 4, "disk_percent": 90}
 *         (disk: the first filesystem in the facts, usually "/")
 * grants: {"facts": true, "events": true}
 */
#include "machine_room.h"

static char config[1024];

MR_EXPORT("mr_describe") int32_t mr_describe(void) {
  mr_output("{\"name\":\"threshold-check\",\"version\":\"1.0.0\",\"abi\":1}");
  return 0;
}

MR_EXPORT("mr_init") int32_t mr_init(void) {
  mr_input(config, sizeof config);
  mr_output("{\"ok\":true}");
  return 0;
}

struct check {
  const char *name;
  const char *fact;
  const char *limit_key;
};

static const struct check CHECKS[] = {
  {"memory", "memory.used_percent", "memory_percent"},
  {"load", "cpu.load.1m", "load1"},
  {"disk", "disks.0.use_percent", "disk_percent"},
};

MR_EXPORT("mr_reconcile") int32_t mr_reconcile(void) {
  int raised = 0, active = 0;
  for (unsigned i = 0; i < sizeof CHECKS / sizeof CHECKS[0]; i++) {
    const struct check *c = &CHECKS[i];
    double limit = mr_json_number(config, c->limit_key, -1);
    if (limit < 0) continue; /* not configured */
    double value = mr_fact_number(c->fact, -1);
    if (value < 0) continue; /* fact unavailable */
    char key[64];
    mr_buf k;
    mr_buf_init(&k, key, sizeof key);
    mr_put(&k, "alarm.");
    mr_put(&k, c->name);
    int was = mr_state_get_number(key, 0) > 0.5;
    int now = value > limit;
    char data[256];
    mr_buf d;
    mr_buf_init(&d, data, sizeof data);
    mr_put(&d, "{\"check\":");
    mr_put_str(&d, c->name);
    mr_put(&d, ",\"value\":");
    mr_put_num(&d, value);
    mr_put(&d, ",\"limit\":");
    mr_put_num(&d, limit);
    mr_putc(&d, '}');
    if (now && !was) {
      mr_event("alarm.raised", data);
      mr_event("remediate", data);
      mr_state_put_number(key, 1);
      raised++;
    } else if (!now && was) {
      mr_event("alarm.cleared", data);
      mr_state_put_number(key, 0);
    }
    if (now) active++;
  }
  char out[128];
  mr_buf o;
  mr_buf_init(&o, out, sizeof out);
  mr_put(&o, active ? "{\"status\":\"degraded\",\"message\":\"" : "{\"status\":\"ok\",\"message\":\"");
  mr_put_int(&o, active);
  mr_put(&o, " alarm(s) active\"}");
  mr_output(out);
  (void)raised;
  return 0;
}
