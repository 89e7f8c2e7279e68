// The daemon connects over TLS with the config's `nats.tls.ca` (server cert signed by a
// private CA, generated here with openssl) and refuses a server it cannot verify.
import { assert, assertEquals } from "@std/assert";
import { connect } from "@nats-io/transport-node";
import { join } from "node:path";
import { startNatsServer } from "./helpers/nats_server.ts";
import { startNode, waitFor } from "./helpers/daemon.ts";
import { ensureStreams } from "../provisioner/mod.ts";

async function openssl(args: string[], cwd: string): Promise<void> {
  const o = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" })
    .output();
  if (!o.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(o.stderr)}`);
  }
}

async function makeCerts(dir: string): Promise<void> {
  await openssl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=mr-test-ca",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
  ], dir);
  await openssl([
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    "/CN=localhost",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
  ], dir);
  await Deno.writeTextFile(join(dir, "ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  await openssl([
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "1",
    "-extfile",
    "ext.cnf",
    "-out",
    "server.pem",
  ], dir);
  // a second CA that did not sign the server cert
  await openssl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=other-ca",
    "-keyout",
    "other.key",
    "-out",
    "other.pem",
  ], dir);
}

Deno.test("daemon - connects over TLS with the configured CA; an unverifiable server is refused, the node keeps spooling", async () => {
  const certs = await Deno.makeTempDir({ prefix: "mr-tls-" });
  try {
    await makeCerts(certs);
    await using srv = await startNatsServer({
      config: `tls { cert_file: "${certs}/server.pem", key_file: "${certs}/server.key" }`,
    });
    const url = `tls://127.0.0.1:${srv.port}`;
    const admin = await connect({ servers: url, tls: { caFile: join(certs, "ca.pem") } });
    await ensureStreams(admin);

    await using good = await startNode({
      natsUrl: url,
      node: "tls-ok",
      config: { nats: { servers: [url], tls: { ca: join(certs, "ca.pem") } } },
    });
    const h = await good.health();
    assertEquals((h!.nats as { connected: boolean }).connected, true);
    const pong = await admin.request("mr.site1.tls-ok.cmd.ping", "", { timeout: 5000 });
    assertEquals(pong.json<{ pong: boolean }>().pong, true);

    await using bad = await startNode({
      natsUrl: url,
      node: "tls-bad",
      waitConnected: false,
      config: { nats: { servers: [url], tls: { ca: join(certs, "other.pem") } } },
    });
    const hb = await waitFor(
      async () => {
        const d = await bad.health();
        return d && (d.nats as { last_error: string | null }).last_error ? d : null;
      },
      20_000,
      "TLS failure reported",
    );
    assertEquals((hb.nats as { connected: boolean }).connected, false);
    assert(((hb.spool as { depth: number }).depth) >= 1, "startup event spooled while refused");
    await admin.close();
  } finally {
    await Deno.remove(certs, { recursive: true }).catch(() => {});
  }
});
