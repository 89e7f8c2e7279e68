import { assertEquals, assertStringIncludes, assertThrows } from "@std/assert";
import { brokerConfig, leafUrlFor } from "./site_broker.ts";
import { natsServerBin } from "../../tests/helpers/nats_server.ts";

const config = {
  customer: "acme",
  site: "plant",
  node: "edge-1",
  nats: {
    servers: ["nats://saas.example:4222", "tls://saas2.example:4443"],
    creds: "/var/lib/mr/identity/node.creds",
    tls: { ca: "/var/lib/mr/ca.pem" },
  },
};

Deno.test("site broker - default remotes use the leafnode port, creds and CA of the node", async () => {
  const r = brokerConfig(config, { monitorPort: 0 });
  assertEquals(r.remotes, ["nats-leaf://saas.example:7422", "tls://saas2.example:7422"]);
  assertStringIncludes(r.text, 'credentials: "/var/lib/mr/identity/node.creds"');
  assertStringIncludes(r.text, 'tls { ca_file: "/var/lib/mr/ca.pem" }');
  assertStringIncludes(r.text, 'server_name: "mr-site-plant"');
  // nats-server itself accepts the file (-t checks the config and reads the files it names).
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/node.creds`, "");
    // (no CA here: -t parses it, and an empty file is not a certificate)
    const text = brokerConfig({
      ...config,
      nats: { servers: config.nats.servers, creds: `${dir}/node.creds` },
    }, { listen: "127.0.0.1:4333" }).text;
    await Deno.writeTextFile(`${dir}/leaf.conf`, text);
    const o = await new Deno.Command(natsServerBin(), { args: ["-t", "-c", `${dir}/leaf.conf`] })
      .output();
    assertEquals(o.code, 0, new TextDecoder().decode(o.stderr));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("site broker - bad input names the problem", () => {
  assertThrows(() => brokerConfig(config, { listen: "nope" }), TypeError, 'listen address: "nope"');
  assertThrows(() => brokerConfig(config, { remotes: ['x" y'] }), TypeError, "leafnode URL");
  assertThrows(() => brokerConfig(config, { leafPort: 0 }), RangeError, "leafnode port");
  assertEquals(leafUrlFor("saas:4222"), "nats-leaf://saas:7422");
  assertEquals(leafUrlFor("nats://u:p@h:1", 7000), "nats-leaf://u:p@h:7000");
});
