// http-probe (AssemblyScript): checks URLs from its config through mr_http, reports
// latency and up/down metrics, and emits probe.down / probe.up events when a URL changes
// state (state kept with mr_state_*).
//
// config: {"urls": ["http://127.0.0.1:8080/health", …], "timeout_ms": 2000}
// grants: {"http": ["127.0.0.1:8080"], "metrics": true, "events": true}
import * as mr from "../../plugins-sdk/assemblyscript/index";

let config = "{}";

export function mr_describe(): i32 {
  mr.output('{"name":"http-probe","version":"1.0.0","abi":1}');
  return 0;
}

export function mr_init(): i32 {
  config = mr.input();
  if (mr.jsonStringArray(config, "urls").length == 0) {
    mr.output('{"ok":false,"message":"config.urls must list at least one URL"}');
    return 1;
  }
  mr.output('{"ok":true}');
  return 0;
}

export function mr_reconcile(): i32 {
  const urls = mr.jsonStringArray(config, "urls");
  const timeout = <i32> mr.jsonNumber(config, "timeout_ms", 2000);
  let down = 0;
  for (let i = 0; i < urls.length; i++) {
    const url = urls[i];
    const res = mr.http(url, "GET", timeout);
    const status = mr.hasError(res) ? 0 : <i32> mr.jsonNumber(res, "status", 0);
    const up = status >= 200 && status < 400;
    const labels = `{"url":${mr.str(url)}}`;
    mr.metric("probe_up", up ? 1 : 0, labels);
    if (!mr.hasError(res)) mr.metric("probe_latency_ms", mr.jsonNumber(res, "ms", 0), labels);
    const key = "up:" + url;
    const was = mr.stateGet(key);
    const wasDown = was.includes('"value":false');
    if (!up) down++;
    if (!up && !wasDown) {
      const why = mr.hasError(res) ? mr.errorCode(res) : "http " + status.toString();
      mr.event("probe.down", `{"url":${mr.str(url)},"reason":${mr.str(why)}}`);
      mr.statePut(key, "false");
    } else if (up && wasDown) {
      mr.event("probe.up", `{"url":${mr.str(url)},"status":${status.toString()}}`);
      mr.statePut(key, "true");
    } else if (up && !was.includes('"value":true')) {
      mr.statePut(key, "true");
    }
  }
  mr.output(
    down == 0
      ? `{"status":"ok","message":"${urls.length} up"}`
      : `{"status":"degraded","message":"${down} of ${urls.length} down"}`,
  );
  return 0;
}
