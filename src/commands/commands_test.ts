import { assertEquals } from "@std/assert";
import { CommandError, dispatchCommand, parseCommandPayload } from "./mod.ts";

const enc = new TextEncoder();

Deno.test("commands - payload parsing: empty is null, JSON parsed, garbage is bad_request", () => {
  assertEquals(parseCommandPayload(new Uint8Array()), null);
  assertEquals(parseCommandPayload(enc.encode("  ")), null);
  assertEquals(parseCommandPayload(enc.encode('{"a":1}')), { a: 1 });
  try {
    parseCommandPayload(enc.encode("{oops"));
    throw new Error("not reached");
  } catch (err) {
    assertEquals((err as CommandError).code, "bad_request");
  }
});

Deno.test("commands - dispatch maps results, unknown commands and handler errors", async () => {
  const handlers = {
    echo: (p: unknown) => Promise.resolve({ got: p }),
    strict: (p: unknown) => {
      if (typeof p !== "object" || p === null) {
        throw new CommandError("bad_request", "object expected");
      }
      return Promise.resolve("ok");
    },
    boom: () => Promise.reject(new Error("kaput")),
  };
  assertEquals(await dispatchCommand(handlers, "echo", enc.encode("[1]")), { got: [1] });
  assertEquals(await dispatchCommand(handlers, "echo", new Uint8Array()), { got: null });
  const unknown = await dispatchCommand(handlers, "nope", new Uint8Array()) as {
    error: { code: string };
  };
  assertEquals(unknown.error.code, "unknown_command");
  const proto = await dispatchCommand(handlers, "__proto__", new Uint8Array()) as {
    error: { code: string };
  };
  assertEquals(proto.error.code, "unknown_command");
  assertEquals(
    await dispatchCommand(handlers, "strict", enc.encode("3")),
    { error: { code: "bad_request", message: "object expected" } },
  );
  assertEquals(await dispatchCommand(handlers, "boom", new Uint8Array()), {
    error: { code: "failed", message: "kaput" },
  });
  const bad = await dispatchCommand(handlers, "echo", enc.encode("{x")) as {
    error: { code: string };
  };
  assertEquals(bad.error.code, "bad_request");
});
