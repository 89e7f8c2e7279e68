/**
 * The subset of `@std/assert` the tests use, on `node:assert` (JSR is not reachable
 * here). Mapped as `@std/assert` in deno.json so tests read like std ones.
 *
 * @module
 */
import nodeAssert from "node:assert/strict";

/** Asserts `expr` is truthy. */
export function assert(expr: unknown, msg?: string): asserts expr {
  nodeAssert.ok(expr, msg);
}

/** Deep strict equality. */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  nodeAssert.deepStrictEqual(actual, expected, msg);
}

/** Deep strict inequality. */
export function assertNotEquals<T>(actual: T, expected: T, msg?: string): void {
  nodeAssert.notDeepStrictEqual(actual, expected, msg);
}

/** `actual` matches `re`. */
export function assertMatch(actual: string, re: RegExp, msg?: string): void {
  nodeAssert.match(actual, re, msg);
}

/** `a` includes `b` (string or array). */
export function assertStringIncludes(actual: string, expected: string, msg?: string): void {
  nodeAssert.ok(
    actual.includes(expected),
    msg ?? `Expected ${JSON.stringify(actual)} to include ${JSON.stringify(expected)}`,
  );
}

type ErrorClass = abstract new (...args: never[]) => Error;

function check(err: unknown, cls?: ErrorClass | RegExp, re?: RegExp | string): Error {
  nodeAssert.ok(err instanceof Error, `Expected an Error, got ${String(err)}`);
  if (cls instanceof RegExp) {
    nodeAssert.match(err.message, cls);
  } else if (cls) {
    nodeAssert.ok(err instanceof cls, `Expected ${cls.name}, got ${err.name}: ${err.message}`);
  }
  if (re instanceof RegExp) nodeAssert.match(err.message, re);
  else if (typeof re === "string") {
    nodeAssert.ok(err.message.includes(re), `"${err.message}" lacks "${re}"`);
  }
  return err;
}

/** `fn` throws (an instance of `cls`, or a message matching `cls` as a RegExp, and `re`). */
export function assertThrows(
  fn: () => unknown,
  cls?: ErrorClass | RegExp,
  re?: RegExp | string,
): Error {
  try {
    fn();
  } catch (err) {
    return check(err, cls, re);
  }
  throw new nodeAssert.AssertionError({ message: "Expected function to throw" });
}

/** `fn` rejects, checked like {@linkcode assertThrows}. */
export async function assertRejects(
  fn: () => Promise<unknown>,
  cls?: ErrorClass | RegExp,
  re?: RegExp | string,
): Promise<Error> {
  try {
    await fn();
  } catch (err) {
    return check(err, cls, re);
  }
  throw new nodeAssert.AssertionError({ message: "Expected promise to reject" });
}

/** Fails the test. */
export function fail(msg?: string): never {
  nodeAssert.fail(msg);
}
