// Test child for tests/replicator_restart_test.ts: drains SPOOL_PATH to NATS_URL and is
// SIGKILLed mid-drain by the test.
import { connect } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { openSpool } from "../../spool/mod.ts";
import { createReplicator } from "../mod.ts";
import { silentLogger } from "../../log/logger.ts";

const [path, url] = Deno.args;
if (!path || !url) throw new Error("usage: drain_child.ts SPOOL_PATH NATS_URL");
const nc = await connect({ servers: url });
const js = jetstream(nc);
const spool = openSpool(path);
const rep = createReplicator({
  spool,
  js: () => js,
  nc: () => nc,
  logger: silentLogger,
  batchSize: 64,
});
rep.start();
await rep.flush(600_000);
