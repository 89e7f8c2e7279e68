/**
 * The production topology for tests: a nats-server in operator mode (full resolver), a
 * vendor home with one customer account, its streams and buckets (`mr-saas init`), the
 * enrolment service (`mr-saas serve`) and the governor mediator, and nodes enrolled through
 * the real HTTP enrolment with their own credentials.
 *
 * @example A daemon with its own provisioned credentials
 * ```ts
 * await using fleet = await startOperatorFleet();
 * const n1 = await fleet.provisionNode("site1", "n1");     // creds + config.json, in-process
 * await using d1 = await fleet.startNode("site1", "n2");    // provisions, then runs the daemon
 * const nc = await n1.connect();                            // a connection as that node
 * // fleet.admin: the customer account's admin connection (vendor tooling, `--creds`)
 * ```
 *
 * Safe under `deno test --parallel`: each fleet has its own temp dirs, server and ports.
 *
 * @module
 */
import {
  connect,
  type ConnectionOptions,
  credsAuthenticator,
  type NatsConnection,
} from "@nats-io/transport-node";
import { join } from "node:path";
import { type NatsServer, startNatsServer } from "./nats_server.ts";
import { type RunningNode, startNode, type StartNodeOptions } from "./daemon.ts";
import {
  addAccount,
  ensureStreams,
  type EnsureStreamsOptions,
  initOperator,
  issueToken,
  operatorConfigLines,
  serveProvisioner,
} from "../../provisioner/mod.ts";
import { provision } from "../../src/provision/mod.ts";
import { startGovernorMediator } from "../../src/governor/mod.ts";
import type { NodeConfig } from "../../src/config/schema.ts";

/** Options of {@linkcode startOperatorFleet}. */
export interface OperatorFleetOptions {
  /** The customer account. @default {"acme"} */
  customer?: string;
  /** Options of `mr-saas init` (e.g. `electionTtlMs`, `storage: "memory"`). */
  streams?: EnsureStreamsOptions;
  /** Run the governor mediator on the customer account (as `mr-saas serve` does). @default {true} */
  mediator?: boolean;
  /** Spec-signing public keys the nodes trust (written to the vendor home). */
  specKeys?: string[];
  /** Extra nats-server config text (e.g. a `leafnodes { listen }` block). */
  serverConfig?: string;
}

/** An enrolled node: its state dir, config and credentials. */
export interface ProvisionedNode {
  site: string;
  node: string;
  stateDir: string;
  configPath: string;
  credsPath: string;
  config: NodeConfig;
  /** A new connection with the node's own credentials and inbox prefix (caller closes it). */
  connect(options?: Omit<ConnectionOptions, "servers" | "authenticator">): Promise<NatsConnection>;
}

/** A running operator-mode fleet; dispose to stop everything and remove the temp dirs. */
export interface OperatorFleet extends AsyncDisposable {
  server: NatsServer;
  /** The vendor home (`--home`). */
  home: string;
  customer: string;
  /** The enrolment service's URL. */
  provisionerUrl: string;
  /** The customer account's admin creds file (what `mr-saas --creds` uses). */
  adminCreds: string;
  /** A connection with the admin creds (closed on dispose). */
  admin: NatsConnection;
  /** Enrols `<site>.<node>` through the real enrolment HTTP API, in this process. */
  provisionNode(site: string, node: string): Promise<ProvisionedNode>;
  /** The node enrolled as `<site>.<node>` in this fleet, enrolling it first if needed. */
  ensureNode(site: string, node: string): Promise<ProvisionedNode>;
  /**
   * Enrols (unless already enrolled) and starts a real daemon with the node's creds. `config`
   * fields are merged over the provisioned config.
   */
  startNode(
    site: string,
    node: string,
    o?: Omit<StartNodeOptions, "natsUrl" | "configFile" | "stateDir" | "site" | "node">,
  ): Promise<RunningNode & { provisioned: ProvisionedNode }>;
  /** Adds another customer account; returns its admin connection (closed on dispose). */
  addCustomer(customer: string): Promise<{ admin: NatsConnection; adminCreds: string }>;
}

/** Starts an operator-mode fleet (see the module doc). */
export async function startOperatorFleet(o: OperatorFleetOptions = {}): Promise<OperatorFleet> {
  const customer = o.customer ?? "acme";
  const home = await Deno.makeTempDir({ prefix: "mr-fleet-home-" });
  const work = await Deno.makeTempDir({ prefix: "mr-fleet-nodes-" });
  const closers: (() => PromiseLike<unknown>)[] = [];
  const cleanup = async () => {
    for (const c of closers.reverse()) await Promise.resolve(c()).catch(() => {});
    await Deno.remove(home, { recursive: true }).catch(() => {});
    await Deno.remove(work, { recursive: true }).catch(() => {});
  };
  try {
    await initOperator(home, { natsPort: 4222 });
    if (o.specKeys?.length) {
      const p = join(home, "mr-saas.json");
      const h = JSON.parse(await Deno.readTextFile(p));
      h.spec_keys = o.specKeys;
      await Deno.writeTextFile(p, JSON.stringify(h, null, 2));
    }
    const server = await startNatsServer({
      config: [await operatorConfigLines(home), o.serverConfig ?? ""].join("\n"),
    });
    closers.push(() => server[Symbol.asyncDispose]());
    const conn = async (creds: string) => {
      const nc = await connect({
        servers: server.url,
        authenticator: credsAuthenticator(await Deno.readFile(creds)),
      });
      closers.push(() => nc.close());
      return nc;
    };
    const { adminCreds } = await addAccount(home, customer, { server: server.url });
    const admin = await conn(adminCreds);
    await ensureStreams(admin, o.streams);
    if (o.mediator ?? true) {
      const m = await startGovernorMediator(admin);
      closers.push(() => m.stop());
    }
    const prov = await serveProvisioner({ home, servers: [server.url] });
    closers.push(() => prov.shutdown());
    const provisionerUrl = `http://127.0.0.1:${prov.addr.port}`;

    // token issue rewrites tokens.json: one at a time
    let tail: Promise<unknown> = Promise.resolve();
    const tokens = new Map<string, Promise<string>>();
    const tokenFor = (site: string) => {
      let t = tokens.get(site);
      if (!t) {
        const run = tail.then(() =>
          issueToken(home, {
            server: server.url,
            customer,
            site,
            provisioner: provisionerUrl,
            ttlMs: 3600_000,
            maxNodes: 1000,
          })
        );
        tail = run.catch(() => {});
        t = run.then((r) => r.token);
        tokens.set(site, t);
      }
      return t;
    };
    const enrolled = new Map<string, ProvisionedNode>();
    const provisionNode = async (site: string, node: string): Promise<ProvisionedNode> => {
      const stateDir = join(work, `${site}.${node}`);
      const configPath = await provision({ token: await tokenFor(site), stateDir, node });
      const config = JSON.parse(await Deno.readTextFile(configPath)) as NodeConfig;
      const credsPath = join(stateDir, "identity", "node.creds");
      const p: ProvisionedNode = {
        site,
        node,
        stateDir,
        configPath,
        credsPath,
        config,
        connect: async (opts = {}) =>
          await connect({
            ...opts,
            servers: server.url,
            authenticator: credsAuthenticator(await Deno.readFile(credsPath)),
            inboxPrefix: `_INBOX.${site}.${node}`,
          }),
      };
      enrolled.set(`${site}.${node}`, p);
      return p;
    };

    const fleet: OperatorFleet = {
      server,
      home,
      customer,
      provisionerUrl,
      adminCreds,
      admin,
      provisionNode,
      ensureNode: async (site, node) =>
        enrolled.get(`${site}.${node}`) ?? await provisionNode(site, node),
      async startNode(site, node, so = {}) {
        const p = enrolled.get(`${site}.${node}`) ?? await provisionNode(site, node);
        let configFile = p.configPath;
        if (so.config) {
          // the provisioned config with the test's fields over it (e.g. election, role)
          configFile = join(p.stateDir, "config.test.json");
          await Deno.writeTextFile(configFile, JSON.stringify({ ...p.config, ...so.config }));
        }
        const d = await startNode({
          ...so,
          site,
          node,
          natsUrl: server.url,
          stateDir: p.stateDir,
          configFile,
        });
        return Object.assign(d, { provisioned: p });
      },
      async addCustomer(name) {
        const r = await addAccount(home, name, { server: server.url });
        const nc = await conn(r.adminCreds);
        await ensureStreams(nc, o.streams);
        return { admin: nc, adminCreds: r.adminCreds };
      },
      [Symbol.asyncDispose]: cleanup,
    };
    return fleet;
  } catch (err) {
    await cleanup();
    throw err;
  }
}
