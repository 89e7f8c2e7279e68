import { assertEquals, assertMatch, assertThrows } from "@std/assert";
import { createCloudEvent, validateCloudEvent } from "./mod.ts";

const base = () => ({
  specversion: "1.0",
  id: "01J0000000000000000000000",
  source: "mr://acme/site1/n1",
  type: "io.machineroom.lifecycle.v1.started",
  time: "2026-11-24T10:00:00.123Z",
  datacontenttype: "application/json",
  mrsite: "site1",
  data: { a: 1 },
});

Deno.test("cloudevent - createCloudEvent builds a valid 1.0 document", () => {
  const ev = createCloudEvent({
    customer: "acme",
    site: "site1",
    node: "n1",
    category: "lifecycle",
    event: "started",
    agent: "keeper",
    data: { ok: true },
    id: "X1",
    time: 0,
  });
  assertEquals(ev, {
    specversion: "1.0",
    id: "X1",
    source: "mr://acme/site1/n1/agents/keeper",
    type: "io.machineroom.lifecycle.v1.started",
    time: "1970-01-01T00:00:00.000Z",
    datacontenttype: "application/json",
    mrsite: "site1",
    mrnode: "n1",
    data: { ok: true },
    mragent: "keeper",
  });
  validateCloudEvent(ev);
  const o = { customer: "acme", site: "site1", node: "n1", category: "lifecycle", data: null };
  assertThrows(() => createCloudEvent({ ...o, event: "x", type: "" }), TypeError, "type");
  assertThrows(() => createCloudEvent({ ...o, event: "x", id: "" }), TypeError, "id");
  assertThrows(() => createCloudEvent({ ...o, event: "x", subject: "" }), TypeError, "subject");
  assertThrows(() => createCloudEvent({ ...o, event: "x", time: "soon" }), TypeError, "time");
  assertThrows(() => createCloudEvent({ ...o, event: "Bad Name" }), TypeError, "event name");
  assertThrows(
    () => createCloudEvent({ ...o, category: "a.b", event: "x" }),
    TypeError,
    "category",
  );
});

Deno.test("cloudevent - each spec rule names the attribute", () => {
  validateCloudEvent(base());
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ specversion: "0.3" }, /specversion/],
    [{ id: "" }, /id is required/],
    [{ source: undefined }, /source is required/],
    [{ source: "has space" }, /source must be a URI-reference/],
    [{ type: 7 }, /type is required/],
    [{ time: "yesterday" }, /time must be an RFC 3339/],
    [{ time: "2026-13-45T99:00:00Z" }, /time/],
    [{ datacontenttype: "json" }, /datacontenttype/],
    [{ dataschema: "not a uri" }, /dataschema/],
    [{ subject: "" }, /subject/],
    [{ MrSite: "x" }, /MrSite is not a valid extension name/],
    [{ averyveryverylongextension: "x" }, /not a valid extension name/],
    [{ mrobj: { a: 1 } }, /mrobj must be a string, boolean or integer/],
  ];
  for (const [patch, re] of cases) {
    const ev: Record<string, unknown> = { ...base(), ...patch };
    for (const k of Object.keys(patch)) if (patch[k] === undefined) delete ev[k];
    const err = assertThrows(() => validateCloudEvent(ev), TypeError);
    assertMatch((err as Error).message, re, JSON.stringify(patch));
  }
});
