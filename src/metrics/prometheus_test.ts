import { assert, assertEquals } from "@std/assert";
import { parsePrometheusText } from "./prometheus.ts";

const TEXT = `# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu="0",mode="idle"} 12345.67
node_cpu_seconds_total{cpu="0",mode="user"} 89.1 1700000000000
# TYPE node_load1 gauge
node_load1 0.42
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.1"} 3
http_request_duration_seconds_bucket{le="+Inf"} 5
http_request_duration_seconds_sum 0.77
http_request_duration_seconds_count 5
weird_label{path="C:\\\\dir",msg="say \\"hi\\"\\nbye"} 1e3
not_a_number NaN
up +Inf
this line is broken
bad_labels{a="x} 1
bad_value{a="1"} twelve
`;

Deno.test("prometheus - parses samples, types, labels with escapes; counts malformed lines", () => {
  const { samples, errors } = parsePrometheusText(TEXT);
  assertEquals(samples.length, 10);
  const idle = samples[0]!;
  assertEquals(idle.name, "node_cpu_seconds_total");
  assertEquals(idle.labels, { cpu: "0", mode: "idle" });
  assertEquals(idle.value, 12345.67);
  assertEquals(idle.type, "counter");
  assertEquals(samples[1]!.timestamp, 1700000000000);
  assertEquals(samples.find((s) => s.name === "node_load1")!.type, "gauge");
  const bucket = samples.find((s) =>
    s.name === "http_request_duration_seconds_bucket" && s.labels.le === "+Inf"
  )!;
  assertEquals(bucket.type, "histogram");
  assertEquals(
    samples.find((s) => s.name === "http_request_duration_seconds_count")!.type,
    "histogram",
  );
  const weird = samples.find((s) => s.name === "weird_label")!;
  assertEquals(weird.labels.path, "C:\\dir");
  assertEquals(weird.labels.msg, 'say "hi"\nbye');
  assertEquals(weird.value, 1000);
  assert(Number.isNaN(samples.find((s) => s.name === "not_a_number")!.value));
  assertEquals(samples.find((s) => s.name === "up")!.value, Infinity);
  assertEquals(errors.length, 3);
  assertEquals(errors.map((e) => e.line), [15, 16, 17]);
});

Deno.test("prometheus - empty and comment-only input", () => {
  assertEquals(parsePrometheusText(""), { samples: [], errors: [] });
  assertEquals(parsePrometheusText("# just a comment\n\n").samples.length, 0);
});
