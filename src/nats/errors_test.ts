import { assert, assertEquals } from "@std/assert";
import { JetStreamApiError, jserrors } from "@nats-io/jetstream/internal";
import { errors } from "@nats-io/transport-node";
import {
  isConnectionError,
  isNoResponders,
  isPayloadTooLarge,
  isPermissionViolation,
  isStreamNotFound,
  isTimeout,
  isTransient,
  isWrongLastSequence,
  jsApiCode,
  JsCode,
} from "./errors.ts";
import { classifyPublishError } from "../replicator/classify.ts";

const api = (err_code: number) => new JetStreamApiError({ code: 400, err_code, description: "x" });

Deno.test("nats errors - predicates follow classes and codes through the cause chain", () => {
  const noResp = new errors.RequestError("no responders", {
    cause: new errors.NoRespondersError("$JS.API.x"),
  });
  // what js.publish throws for "no responders": JetStreamNotEnabled wrapping the RequestError
  const jsNotEnabled = new jserrors.JetStreamNotEnabled("jetstream is not enabled", {
    cause: noResp,
  });
  assert(isNoResponders(noResp) && isNoResponders(jsNotEnabled));
  assert(isTransient(noResp) && isTransient(jsNotEnabled));
  assert(isTimeout(new errors.TimeoutError()) && isTransient(new errors.TimeoutError()));
  assert(isConnectionError(new errors.ClosedConnectionError()));
  assert(isTransient(new errors.DrainingConnectionError()));
  assert(isStreamNotFound(api(10059)) && !isStreamNotFound(api(10058)));
  assert(isWrongLastSequence(api(10071)));
  assertEquals(jsApiCode(new Error("wrap", { cause: api(10077) })), 10077);
  assert(
    isPayloadTooLarge(errors.InvalidArgumentError.format("payload", "max_payload size exceeded")),
  );
  assert(isPayloadTooLarge(api(JsCode.MessageExceedsMaximum)));
  assert(isPermissionViolation(new errors.PermissionViolationError("x", "publish", "a.b")));
  // message text alone means nothing
  assert(!isNoResponders(new Error("no responders")));
  assert(!isTimeout(new Error("timeout")));
  assert(!isTransient(new Error("jetstream is not enabled")));
});

Deno.test("nats errors - publish verdicts: park, count, ambiguous, transient", () => {
  const v = (e: unknown) => classifyPublishError(e);
  assertEquals(v(errors.InvalidArgumentError.format("payload", "max_payload size exceeded")), {
    kind: "park",
    reason: "too_large",
  });
  assertEquals(v(new errors.InvalidSubjectError("a b")), {
    kind: "park",
    reason: "invalid_subject",
  });
  assertEquals(v(new errors.NoRespondersError("x")).kind, "ambiguous");
  assertEquals(v(new jserrors.JetStreamNotEnabled("x")).kind, "ambiguous");
  assertEquals(v(new errors.TimeoutError()).kind, "transient");
  assertEquals(v(new errors.ClosedConnectionError()).kind, "transient");
  assertEquals(v(api(10077)).kind, "transient", "a full stream may drain");
  assertEquals(v(api(10060)), { kind: "count", reason: "rejected" });
  assertEquals(v(new errors.PermissionViolationError("x", "publish", "a")), {
    kind: "count",
    reason: "permission",
  });
  assertEquals(v(new Error("something odd")).kind, "transient");
});
