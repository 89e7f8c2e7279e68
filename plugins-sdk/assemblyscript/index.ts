// Machine Room agent SDK for AssemblyScript (ABI v1, see ../ABI.md), on @extism/as-pdk.
//
// Build an agent (from the repository root, so the abort handler path resolves):
//   asc agent.ts --outFile agent.wasm --runtime stub --optimize \
//     --use abort=plugins-sdk/assemblyscript/index/mrAbort
//
// Every host function takes one JSON string and returns one JSON string; refusals come
// back as {"error":{"code","message"}} (see hasError / errorCode).
import { Host, Memory } from "@extism/as-pdk";

// ---- host functions (import module extism:host/user) -------------------------------
@external("extism:host/user", "mr_log") declare function _mr_log(p: u64): u64;
@external("extism:host/user", "mr_facts") declare function _mr_facts(p: u64): u64;
@external("extism:host/user", "mr_event") declare function _mr_event(p: u64): u64;
@external("extism:host/user", "mr_submit") declare function _mr_submit(p: u64): u64;
@external("extism:host/user", "mr_metric") declare function _mr_metric(p: u64): u64;
@external("extism:host/user", "mr_state_get") declare function _mr_state_get(p: u64): u64;
@external("extism:host/user", "mr_state_put") declare function _mr_state_put(p: u64): u64;
@external("extism:host/user", "mr_kv_get") declare function _mr_kv_get(p: u64): u64;
@external("extism:host/user", "mr_exec") declare function _mr_exec(p: u64): u64;
@external("extism:host/user", "mr_http") declare function _mr_http(p: u64): u64;
@external("extism:host/user", "mr_file_read") declare function _mr_file_read(p: u64): u64;
@external("extism:host/user", "mr_file_write") declare function _mr_file_write(p: u64): u64;
@external("extism:host/user", "mr_governor") declare function _mr_governor(p: u64): u64;
@external("extism:host/user", "mr_is_leader") declare function _mr_is_leader(p: u64): u64;
@external("extism:host/user", "mr_transition") declare function _mr_transition(p: u64): u64;
@external("extism:host/env", "length") declare function _length(p: u64): u64;

/** The abort handler every agent is built with (`--use abort=…/mrAbort`). */
export function mrAbort(message: string | null, file: string | null, line: u32, col: u32): void {
  unreachable();
}

function call(fn: (p: u64) => u64, json: string): string {
  const input = Memory.allocateString(json);
  const out = fn(input.offset);
  input.free();
  if (out == 0) return "{}";
  const mem = new Memory(out, _length(out));
  const s = mem.toString();
  mem.free();
  return s;
}

export function log(level: string, msg: string): void { call(_mr_log, `{"level":${str(level)},"msg":${str(msg)}}`); }
/** All facts (`{"facts":{…}}`) or one dotted path (`{"value":…}`). */
export function facts(path: string = ""): string { return call(_mr_facts, path.length ? `{"path":${str(path)}}` : "{}"); }
export function event(type: string, dataJson: string = "null"): string { return call(_mr_event, `{"type":${str(type)},"data":${dataJson}}`); }
export function submit(subject: string, payloadJson: string): string { return call(_mr_submit, `{"subject":${str(subject)},"payload":${payloadJson}}`); }
export function metric(name: string, value: f64, labelsJson: string = "{}", kind: string = "gauge"): string {
  return call(_mr_metric, `{"name":${str(name)},"value":${num(value)},"labels":${labelsJson},"kind":${str(kind)}}`);
}
export function stateGet(key: string): string { return call(_mr_state_get, `{"key":${str(key)}}`); }
export function statePut(key: string, valueJson: string): string { return call(_mr_state_put, `{"key":${str(key)},"value":${valueJson}}`); }
export function kvGet(key: string): string { return call(_mr_kv_get, `{"key":${str(key)}}`); }
/** `argvJson` is a JSON array of strings, exactly as granted. */
export function exec(argvJson: string): string { return call(_mr_exec, `{"argv":${argvJson}}`); }
export function http(url: string, method: string = "GET", timeoutMs: i32 = 5000): string {
  return call(_mr_http, `{"url":${str(url)},"method":${str(method)},"timeout_ms":${timeoutMs.toString()}}`);
}
export function fileRead(path: string): string { return call(_mr_file_read, `{"path":${str(path)}}`); }
export function fileWrite(path: string, content: string): string { return call(_mr_file_write, `{"path":${str(path)},"content":${str(content)}}`); }
export function governor(name: string, action: string, timeoutMs: i32 = 0): string {
  return call(_mr_governor, `{"name":${str(name)},"action":${str(action)},"timeout_ms":${timeoutMs.toString()}}`);
}
export function isLeader(): bool { return call(_mr_is_leader, "{}").includes('"leader":true'); }
export function transition(from: string, to: string, reason: string = ""): string {
  return call(_mr_transition, `{"from":${str(from)},"to":${str(to)},"reason":${str(reason)}}`);
}

// ---- input / output ----------------------------------------------------------------
export function input(): string { return Host.inputString(); }
/** Sets the call's output (UTF-8 bytes, not UTF-16 units). */
export function output(json: string): void { Host.output(Uint8Array.wrap(String.UTF8.encode(json))); }

// ---- tiny JSON helpers (flat lookups; enough for configs and host replies) ----------
export function hasError(json: string): bool { return json.includes('"error":{'); }
export function errorCode(json: string): string { return jsonString(json, "code"); }

/** A JSON string literal. */
export function str(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 34) out += '\\"';
    else if (c == 92) out += "\\\\";
    else if (c == 10) out += "\\n";
    else if (c == 13) out += "\\r";
    else if (c == 9) out += "\\t";
    else if (c < 32) out += "\\u00" + (c < 16 ? "0" : "") + c.toString(16);
    else out += String.fromCharCode(c);
  }
  return out + '"';
}

/** A JSON number (finite; NaN/Infinity become 0). */
export function num(v: f64): string {
  if (!isFinite(v)) return "0";
  if (v == Math.floor(v) && Math.abs(v) < 1e15) return (<i64>v).toString();
  return v.toString();
}

function valueStart(json: string, key: string): i32 {
  const k = '"' + key + '"';
  let i = json.indexOf(k);
  while (i >= 0) {
    let j = i + k.length;
    while (j < json.length && (json.charCodeAt(j) == 32 || json.charCodeAt(j) == 10)) j++;
    if (j < json.length && json.charCodeAt(j) == 58) {
      j++;
      while (j < json.length && (json.charCodeAt(j) == 32 || json.charCodeAt(j) == 10)) j++;
      return j;
    }
    i = json.indexOf(k, i + 1);
  }
  return -1;
}

/** The first string value of `key` (unescaped), or "". */
export function jsonString(json: string, key: string): string {
  const i = valueStart(json, key);
  if (i < 0 || json.charCodeAt(i) != 34) return "";
  return unescapeAt(json, i).value;
}

/** The first number value of `key`, or `dflt`. */
export function jsonNumber(json: string, key: string, dflt: f64 = NaN): f64 {
  const i = valueStart(json, key);
  if (i < 0) return dflt;
  let j = i;
  while (j < json.length) {
    const c = json.charCodeAt(j);
    if ((c >= 48 && c <= 57) || c == 45 || c == 43 || c == 46 || c == 101 || c == 69) j++;
    else break;
  }
  if (j == i) return dflt;
  return parseFloat(json.substring(i, j));
}

/** The first boolean value of `key`, or `dflt`. */
export function jsonBool(json: string, key: string, dflt: bool = false): bool {
  const i = valueStart(json, key);
  if (i < 0) return dflt;
  if (json.startsWith("true", i)) return true;
  if (json.startsWith("false", i)) return false;
  return dflt;
}

/** The strings of a flat array value of `key` (`["a","b"]`). */
export function jsonStringArray(json: string, key: string): string[] {
  const out = new Array<string>();
  let i = valueStart(json, key);
  if (i < 0 || json.charCodeAt(i) != 91) return out;
  i++;
  while (i < json.length) {
    const c = json.charCodeAt(i);
    if (c == 93) break;
    if (c == 34) {
      const r = unescapeAt(json, i);
      out.push(r.value);
      i = r.end;
    } else i++;
  }
  return out;
}

class Unescaped {
  constructor(public value: string, public end: i32) {}
}

/** Decodes the JSON string literal starting at `json[start] == '"'`. */
export function unescapeAt(json: string, start: i32): Unescaped {
  let out = "";
  let i = start + 1;
  while (i < json.length) {
    const c = json.charCodeAt(i);
    if (c == 34) return new Unescaped(out, i + 1);
    if (c == 92 && i + 1 < json.length) {
      const e = json.charCodeAt(i + 1);
      if (e == 110) out += "\n";
      else if (e == 116) out += "\t";
      else if (e == 114) out += "\r";
      else if (e == 98) out += "\b";
      else if (e == 102) out += "\f";
      else if (e == 117 && i + 5 < json.length) {
        out += String.fromCharCode(<i32>parseInt(json.substring(i + 2, i + 6), 16));
        i += 4;
      } else out += String.fromCharCode(e);
      i += 2;
      continue;
    }
    out += String.fromCharCode(c);
    i++;
  }
  return new Unescaped(out, i);
}
