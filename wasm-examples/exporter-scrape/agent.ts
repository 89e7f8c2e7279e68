// exporter-scrape (AssemblyScript): reads a Prometheus text endpoint through mr_http and
// forwards the samples whose name starts with one of `include` as metrics (labels kept,
// plus exporter=<url>).
//
// config: {"url": "http://127.0.0.1:9100/metrics", "include": ["node_load", "node_memory_"]}
// grants: {"http": ["127.0.0.1:9100"], "metrics": true}
import * as mr from "../../plugins-sdk/assemblyscript/index";

let config = "{}";

export function mr_describe(): i32 {
  mr.output('{"name":"exporter-scrape","version":"1.0.0","abi":1}');
  return 0;
}

export function mr_init(): i32 {
  config = mr.input();
  if (mr.jsonString(config, "url").length == 0) {
    mr.output('{"ok":false,"message":"config.url is required"}');
    return 1;
  }
  mr.output('{"ok":true}');
  return 0;
}

function included(name: string, include: string[]): bool {
  if (include.length == 0) return true;
  for (let i = 0; i < include.length; i++) if (name.startsWith(include[i])) return true;
  return false;
}

/** `{a="b",c="d"}` → `{"a":"b","c":"d",` (the caller closes it). */
function labelsJson(text: string): string {
  let out = "{";
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf("=", i);
    if (eq < 0) break;
    const name = text.substring(i, eq).trim();
    if (eq + 1 >= text.length || text.charCodeAt(eq + 1) != 34) break;
    let j = eq + 2;
    let value = "";
    while (j < text.length && text.charCodeAt(j) != 34) {
      if (text.charCodeAt(j) == 92 && j + 1 < text.length) {
        const e = text.charCodeAt(j + 1);
        value += e == 110 ? "\n" : String.fromCharCode(e);
        j += 2;
      } else {
        value += text.charAt(j);
        j++;
      }
    }
    out += mr.str(name) + ":" + mr.str(value) + ",";
    i = j + 1;
    while (i < text.length && (text.charCodeAt(i) == 44 || text.charCodeAt(i) == 32)) i++;
  }
  return out;
}

export function mr_reconcile(): i32 {
  const url = mr.jsonString(config, "url");
  const include = mr.jsonStringArray(config, "include");
  const res = mr.http(url, "GET", <i32> mr.jsonNumber(config, "timeout_ms", 5000));
  if (mr.hasError(res)) {
    mr.output(`{"status":"failed","message":${mr.str("scrape failed: " + mr.errorCode(res))}}`);
    return 0;
  }
  const status = <i32> mr.jsonNumber(res, "status", 0);
  if (status != 200) {
    mr.output(`{"status":"failed","message":"exporter answered HTTP ${status.toString()}"}`);
    return 0;
  }
  const lines = mr.jsonString(res, "body").split("\n");
  let sent = 0;
  let bad = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line.length == 0 || line.charCodeAt(0) == 35) continue;
    let nameEnd = 0;
    while (nameEnd < line.length) {
      const c = line.charCodeAt(nameEnd);
      if (c == 123 || c == 32) break;
      nameEnd++;
    }
    const name = line.substring(0, nameEnd);
    if (!included(name, include)) continue;
    let labels = "{";
    let rest = line.substring(nameEnd);
    if (rest.startsWith("{")) {
      const close = rest.lastIndexOf("}");
      if (close < 0) {
        bad++;
        continue;
      }
      labels = labelsJson(rest.substring(1, close));
      rest = rest.substring(close + 1);
    } else if (labels == "{") {
      labels = "{";
    }
    const parts = rest.trim().split(" ");
    const value = parseFloat(parts[0]);
    if (parts[0].length == 0 || !isFinite(value)) {
      bad++;
      continue;
    }
    const kind = name.endsWith("_total") ? "counter" : "gauge";
    mr.metric(name, value, labels + `"exporter":${mr.str(url)}}`, kind);
    sent++;
  }
  mr.output(`{"status":"ok","message":"${sent} samples forwarded, ${bad} malformed"}`);
  return 0;
}
