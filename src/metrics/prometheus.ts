/**
 * A parser for the Prometheus text exposition format (version 0.0.4): `# HELP`/`# TYPE`
 * comments, samples with optional labels (escapes `\\`, `\"`, `\n`), values including
 * `NaN`, `+Inf`, `-Inf`, and optional timestamps. Malformed lines are skipped and counted,
 * never fatal.
 *
 * @module
 */

/** One parsed sample. */
export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
  /** Milliseconds since the epoch, when the line carried one. */
  timestamp?: number;
  /** From `# TYPE` of the sample's family (histogram/summary suffixes resolved). */
  type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
}

/** The parse result. */
export interface PromParseResult {
  samples: PromSample[];
  /** Lines that could not be parsed (1-based numbers with the reason). */
  errors: { line: number; reason: string }[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

function parseValue(text: string): number | null {
  switch (text) {
    case "NaN":
      return NaN;
    case "+Inf":
    case "Inf":
      return Infinity;
    case "-Inf":
      return -Infinity;
  }
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) return null;
  return Number(text);
}

function familyOf(name: string, types: Map<string, PromSample["type"]>): PromSample["type"] {
  const direct = types.get(name);
  if (direct) return direct;
  for (const suffix of ["_bucket", "_sum", "_count", "_created", "_total"]) {
    if (name.endsWith(suffix)) {
      const t = types.get(name.slice(0, -suffix.length));
      if (t) return t;
    }
  }
  return "untyped";
}

/** Parses exposition text. */
export function parsePrometheusText(text: string): PromParseResult {
  const samples: PromSample[] = [];
  const errors: { line: number; reason: string }[] = [];
  const types = new Map<string, PromSample["type"]>();
  const lines = text.split("\n");
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!.trim();
    if (line === "") continue;
    if (line.startsWith("#")) {
      const m = /^#\s*TYPE\s+(\S+)\s+(\S+)/.exec(line);
      if (m && TYPES.has(m[2]!)) types.set(m[1]!, m[2] as PromSample["type"]);
      continue;
    }
    const nm = NAME.exec(line);
    if (!nm) {
      errors.push({ line: n + 1, reason: "no metric name" });
      continue;
    }
    const name = nm[0];
    let rest = line.slice(name.length);
    const labels: Record<string, string> = {};
    if (rest.startsWith("{")) {
      rest = rest.slice(1);
      let ok = true;
      for (;;) {
        rest = rest.trimStart();
        if (rest.startsWith("}")) {
          rest = rest.slice(1);
          break;
        }
        const ln = LABEL_NAME.exec(rest);
        if (!ln) {
          ok = false;
          break;
        }
        rest = rest.slice(ln[0].length).trimStart();
        if (!rest.startsWith('="')) {
          ok = false;
          break;
        }
        rest = rest.slice(2);
        let value = "";
        let closed = false;
        let i = 0;
        for (; i < rest.length; i++) {
          const c = rest[i]!;
          if (c === "\\") {
            const nx = rest[++i];
            value += nx === "n" ? "\n" : nx ?? "";
          } else if (c === '"') {
            closed = true;
            break;
          } else value += c;
        }
        if (!closed) {
          ok = false;
          break;
        }
        labels[ln[0]] = value;
        rest = rest.slice(i + 1).trimStart();
        if (rest.startsWith(",")) rest = rest.slice(1);
      }
      if (!ok) {
        errors.push({ line: n + 1, reason: "malformed labels" });
        continue;
      }
    }
    const parts = rest.trim().split(/\s+/);
    const value = parts[0] !== undefined ? parseValue(parts[0]) : null;
    if (value === null || parts.length > 2) {
      errors.push({ line: n + 1, reason: `malformed value "${rest.trim()}"` });
      continue;
    }
    const sample: PromSample = { name, labels, value, type: familyOf(name, types) };
    if (parts[1] !== undefined) {
      const ts = Number(parts[1]);
      if (!Number.isInteger(ts)) {
        errors.push({ line: n + 1, reason: `malformed timestamp "${parts[1]}"` });
        continue;
      }
      sample.timestamp = ts;
    }
    samples.push(sample);
  }
  return { samples, errors };
}
