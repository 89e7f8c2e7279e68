/**
 * The console's HTTP server: the single-page UI, its JSON API, the live event tail (SSE)
 * and `/metrics`. Every UI page and API call needs a session ({@linkcode createSessions});
 * every action (POST) also the session's CSRF token; `/metrics` needs its own bearer token.
 * Bad input gets a 4xx JSON error naming the problem; a failing handler gets a 500 and
 * never takes the server down.
 *
 * @module
 */
import { z } from "zod";
import type { FleetView, NodeRow, ViewEvent } from "./view.ts";
import { sameSecret, type Sessions } from "./auth.ts";
import { desiredState, nodeEvents, nodeMetrics, RANGES, sendCommand } from "./queries.ts";
import { renderMetrics, type RolloutGauge } from "./prom.ts";
import { indexHtml, STYLE_CSS } from "./page.ts";
import { createHash } from "node:crypto";

const ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const id = z.string().regex(ID, "must be an identifier (a-z0-9_-, 1-63 chars)");
/** Largest action body accepted. */
export const MAX_BODY = 64 * 1024;

/** Rollout state for one agent of one customer, as the console shows it. */
export interface RolloutView {
  customer: string;
  agent: string;
  governor: string | null;
  capacity: number | null;
  holders: unknown[];
  desired: Record<string, { version: number; sha256: string | null }>;
  nodes: Record<string, { sha256: string | null; state?: string | null; code?: string | null }>;
  halted: boolean;
}

/** What the server needs from its surroundings. */
export interface ConsoleDeps {
  view: FleetView;
  sessions: Sessions;
  /** Bearer token of `/metrics`. */
  metricsToken: string;
  /** Reads every rollout of a customer. */
  rollouts(customer: string): Promise<RolloutView[]>;
  /** The audit log with its verification, or `null` without a vendor home. */
  audit(): Promise<{ verify: Record<string, unknown>; records: Record<string, unknown>[] } | null>;
  /** Writes an audit record of a console action. */
  record(entry: Record<string, unknown>): Promise<void>;
  /** The login/JS bundle. */
  bundle: Uint8Array;
  /** Hosts accepted in the `Host` header (DNS-rebinding guard); `null` accepts any. */
  allowedHosts: Set<string> | null;
  /** Aborted when the console stops: live tails end. */
  shutdown: AbortSignal;
}

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "content-security-policy":
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
};

function json(body: unknown, status = 200, extra: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: {
      ...SECURITY_HEADERS,
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store",
      ...extra,
    },
  });
}

/** A JSON error: `{"error":{"code","message"}}`. */
export function jsonError(status: number, code: string, message: string): Response {
  return json({ error: { code, message } }, status);
}

function html(body: string, status = 200, extra: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: { ...SECURITY_HEADERS, "content-type": "text/html; charset=utf-8", ...extra },
  });
}

function notice(title: string, text: string, status: number): Response {
  const esc = (s: string) =>
    s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
  return html(
    `<!doctype html><meta charset="utf-8"><title>${esc(title)} · Machine Room</title>` +
      `<link rel="stylesheet" href="/app.css"><main class="notice"><h1>${esc(title)}</h1>` +
      `<p>${esc(text)}</p></main>`,
    status,
  );
}

function zodMessage(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`)
    .join("; ");
}

const fleetQuery = z.object({
  q: z.string().max(200, "at most 200 characters").optional(),
  status: z.enum(["healthy", "degraded", "unhealthy", "offline", "unknown"]).optional(),
  customer: id.optional(),
  sort: z.enum(["customer", "site", "node", "health", "lastSeen", "version", "os", "agents"])
    .optional(),
  dir: z.enum(["asc", "desc"]).optional(),
}).strict();

const eventsQuery = z.object({
  customer: id.optional(),
  site: id.optional(),
  node: id.optional(),
  type: z.string().max(200).regex(/^[A-Za-z0-9._-]*$/, "letters, digits, '.', '_', '-' only")
    .optional(),
}).strict();

const target = z.object({ customer: id, site: id, node: id }).strict();
const common = {
  targets: z.array(target).min(1).max(500),
  /** How long each target may take to answer. */
  timeout_ms: z.number().int().min(100).max(30_000).optional(),
};
const actionBody = z.discriminatedUnion("action", [
  z.object({ action: z.literal("ping"), ...common }).strict(),
  z.object({ action: z.literal("health"), ...common }).strict(),
  z.object({
    action: z.literal("invoke"),
    ...common,
    agent: id,
    command: z.string().min(1).max(100),
    args: z.unknown().optional(),
  }).strict(),
]);

function query<T extends z.ZodType>(url: URL, schema: T): z.infer<T> | Response {
  const raw: Record<string, string> = {};
  for (const [k, v] of url.searchParams) if (v !== "") raw[k] = v;
  const r = schema.safeParse(raw);
  return r.success ? r.data : jsonError(400, "bad_request", zodMessage(r.error));
}

const HEALTH_ORDER = { unhealthy: 0, offline: 1, degraded: 2, unknown: 3, healthy: 4 };

/** Fleet rows after filter, search and sort; counts before filtering. */
export function fleetPage(rows: NodeRow[], q: z.infer<typeof fleetQuery>) {
  const counts = {
    total: rows.length,
    healthy: 0,
    degraded: 0,
    unhealthy: 0,
    offline: 0,
    unknown: 0,
  };
  for (const r of rows) counts[r.health]++;
  let out = rows;
  if (q.customer) out = out.filter((r) => r.customer === q.customer);
  if (q.status) out = out.filter((r) => r.health === q.status);
  if (q.q) {
    const needle = q.q.toLowerCase();
    out = out.filter((r) =>
      [
        r.customer,
        r.site,
        r.node,
        r.hostname ?? "",
        r.os ?? "",
        r.version ?? "",
        ...r.agents.map((a) => a.name),
      ].some((s) => s.toLowerCase().includes(needle))
    );
  }
  const key = q.sort ?? "customer";
  const val = (r: NodeRow): string | number =>
    key === "health"
      ? HEALTH_ORDER[r.health]
      : key === "lastSeen"
      ? r.lastSeen ?? 0
      : key === "agents"
      ? r.agents.length
      : (r[key] ?? "") as string;
  const sign = q.dir === "desc" ? -1 : 1;
  out = [...out].sort((a, b) => {
    const x = val(a);
    const y = val(b);
    const c = x < y ? -1 : x > y ? 1 : 0;
    return c * sign ||
      `${a.customer}/${a.site}/${a.node}`.localeCompare(`${b.customer}/${b.site}/${b.node}`);
  });
  return { counts, nodes: out };
}

async function readBody(req: Request): Promise<Uint8Array | Response> {
  const len = Number(req.headers.get("content-length") ?? "0");
  if (len > MAX_BODY) return jsonError(413, "too_large", `body over ${MAX_BODY} bytes`);
  if (!req.body) return new Uint8Array();
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY) {
      await reader.cancel().catch(() => {});
      return jsonError(413, "too_large", `body over ${MAX_BODY} bytes`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.byteLength;
  }
  return out;
}

function eventMatches(e: ViewEvent, f: z.infer<typeof eventsQuery>): boolean {
  if (f.customer && e.customer !== f.customer) return false;
  const [, site, node] = e.subject.split(".");
  if (f.site && site !== f.site) return false;
  if (f.node && node !== f.node) return false;
  if (f.type && !String(e.event.type ?? "").includes(f.type)) return false;
  return true;
}

/** Live-tail streams open at once (all sessions). */
const MAX_STREAMS = 64;

/** Builds the request handler. */
export function createHandler(
  deps: ConsoleDeps,
): (req: Request, info?: { completed?: Promise<void> }) => Promise<Response> {
  const { view, sessions } = deps;
  // the bundle and stylesheet are immutable per version: browsers keep them
  const version = createHash("sha256").update(deps.bundle).update(STYLE_CSS).digest("hex").slice(
    0,
    16,
  );
  const INDEX_HTML = indexHtml(version);
  const immutable = { "cache-control": "public, max-age=31536000, immutable" };
  let streams = 0;
  let refusedInWindow = 0;
  let refusedTimer: ReturnType<typeof setTimeout> | null = null;

  // refused actions are audited, aggregated per 10 s so a flood cannot fill the log
  const refuse = (why: string, path: string) => {
    refusedInWindow++;
    if (refusedTimer) return;
    refusedTimer = setTimeout(() => {
      const count = refusedInWindow;
      refusedInWindow = 0;
      refusedTimer = null;
      deps.record({ event: "console.action.refused", reason: why, path, count }).catch(() => {});
    }, 10_000);
    Deno.unrefTimer(refusedTimer);
  };

  const nodeParts = (path: string, prefix: string) => {
    const rest = path.slice(prefix.length).split("/");
    const [c, s, n, ...more] = rest;
    if (!c || !s || !n || !ID.test(c) || !ID.test(s) || !ID.test(n)) return null;
    return { customer: c, site: s, node: n, more };
  };

  const sse = (done: Promise<void>, f: z.infer<typeof eventsQuery>): Response => {
    if (streams >= MAX_STREAMS) return jsonError(503, "busy", "too many live tails open");
    streams++;
    const enc = new TextEncoder();
    let stop = () => {};
    const body = new ReadableStream<Uint8Array>({
      start(ctrl) {
        let queued = 0;
        const send = (e: ViewEvent) => {
          if (!eventMatches(e, f)) return;
          // a reader that falls far behind loses events, and is told so
          if (queued > 2_000) return;
          queued++;
          ctrl.enqueue(enc.encode(`data: ${JSON.stringify(e)}\n\n`));
        };
        for (const e of view.recent().slice(-200)) send(e);
        const off = view.listen(send);
        const ping = setInterval(() => {
          queued = 0;
          try {
            ctrl.enqueue(enc.encode(`: keep-alive\n\n`));
          } catch { /* closed */ }
        }, 15_000);
        let stopped = false;
        stop = () => {
          if (stopped) return;
          stopped = true;
          streams--;
          off();
          clearInterval(ping);
        };
        const end = () => {
          stop();
          try {
            ctrl.close();
          } catch { /* already closed */ }
        };
        done.finally(end);
        deps.shutdown.addEventListener("abort", end);
        ctrl.enqueue(enc.encode(`retry: 2000\n\n`));
      },
      cancel() {
        stop();
      },
    });
    return new Response(body, {
      headers: {
        ...SECURITY_HEADERS,
        "content-type": "text/event-stream",
        "cache-control": "no-store",
      },
    });
  };

  const api = async (
    req: Request,
    url: URL,
    session: { csrf: string },
    done: Promise<void>,
  ): Promise<Response> => {
    const p = url.pathname;
    if (p === "/api/session" && req.method === "GET") {
      return json({ csrf: session.csrf, customers: view.customers() });
    }
    if (p === "/api/fleet" && req.method === "GET") {
      const q = query(url, fleetQuery);
      if (q instanceof Response) return q;
      return json(fleetPage(view.nodes(), q));
    }
    if (p.startsWith("/api/node/") && req.method === "GET") {
      const t = nodeParts(p, "/api/node/");
      if (!t) return jsonError(400, "bad_request", "expected /api/node/<customer>/<site>/<node>");
      const row = view.node(t.customer, t.site, t.node);
      if (!row) {
        return jsonError(404, "not_found", `no node ${t.customer}/${t.site}/${t.node}`);
      }
      const nc = view.connection(t.customer)!;
      const sub = t.more.join("/");
      if (sub === "") return json({ node: row, facts: view.facts(t.customer, t.site, t.node) });
      if (sub === "events") return json({ events: await nodeEvents(nc, t.site, t.node) });
      if (sub === "metrics") {
        const range = url.searchParams.get("range") ?? "1h";
        if (!Object.hasOwn(RANGES, range)) {
          return jsonError(
            400,
            "bad_request",
            `range: must be one of ${Object.keys(RANGES).join(", ")}`,
          );
        }
        return json(await nodeMetrics(nc, t.site, t.node, range as keyof typeof RANGES));
      }
      return jsonError(404, "not_found", `unknown node resource "${sub}"`);
    }
    if (p === "/api/desired" && req.method === "GET") {
      const out: Record<string, unknown> = {};
      for (const c of view.customers()) out[c] = await desiredState(view.connection(c)!);
      return json({ customers: out });
    }
    if (p === "/api/rollouts" && req.method === "GET") {
      const out: RolloutView[] = [];
      for (const c of view.customers()) out.push(...await deps.rollouts(c));
      return json({ rollouts: out });
    }
    if (p === "/api/events/stream" && req.method === "GET") {
      const q = query(url, eventsQuery);
      if (q instanceof Response) return q;
      return sse(done, q);
    }
    if (p === "/api/audit" && req.method === "GET") {
      const a = await deps.audit();
      if (!a) return jsonError(404, "no_audit", "no vendor home: start the console with --home");
      return json(a);
    }
    return jsonError(404, "not_found", `no API ${req.method} ${p}`);
  };

  const action = async (req: Request, session: { id: string }): Promise<Response> => {
    const raw = await readBody(req);
    if (raw instanceof Response) return raw;
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder().decode(raw));
    } catch (err) {
      return jsonError(400, "bad_request", `body is not JSON: ${(err as Error).message}`);
    }
    const r = actionBody.safeParse(body);
    if (!r.success) return jsonError(400, "bad_request", zodMessage(r.error));
    const a = r.data;
    for (const t of a.targets) {
      if (!view.connection(t.customer)) {
        return jsonError(404, "not_found", `no customer "${t.customer}" in this console`);
      }
    }
    await deps.record({
      event: `console.action.${a.action}`,
      session: session.id.slice(0, 8),
      targets: a.targets.map((t) => `${t.customer}/${t.site}/${t.node}`),
      ...(a.action === "invoke" ? { agent: a.agent, command: a.command } : {}),
    });
    const results = await Promise.all(a.targets.map((t) => {
      const nc = view.connection(t.customer)!;
      const ms = a.timeout_ms ?? 5_000;
      if (a.action === "invoke") {
        const payload = { agent: a.agent, command: a.command, args: a.args ?? null };
        return sendCommand(nc, t, "invoke", payload, ms);
      }
      return sendCommand(nc, t, a.action, undefined, ms);
    }));
    const summary: Record<string, number> = {};
    for (const x of results) summary[x.outcome] = (summary[x.outcome] ?? 0) + 1;
    return json({ action: a.action, summary, results });
  };

  return async (req: Request, info?: { completed?: Promise<void> }): Promise<Response> => {
    // when the response is fully sent or the client went away (live tails end then)
    const done = info?.completed ??
      new Promise<void>((r) => req.signal.addEventListener("abort", () => r()));
    try {
      const url = new URL(req.url);
      if (deps.allowedHosts && !deps.allowedHosts.has(req.headers.get("host") ?? "")) {
        return jsonError(421, "bad_host", "unexpected Host header");
      }
      const p = url.pathname;
      if (p === "/healthz") return json({ ok: true });
      if (p === "/app.css") {
        return new Response(STYLE_CSS, {
          headers: { ...SECURITY_HEADERS, ...immutable, "content-type": "text/css; charset=utf-8" },
        });
      }
      if (p === "/app.js") {
        return new Response(deps.bundle.slice(), {
          headers: {
            ...SECURITY_HEADERS,
            ...immutable,
            "content-type": "text/javascript; charset=utf-8",
          },
        });
      }
      if (p === "/metrics") {
        const h = req.headers.get("authorization") ?? "";
        const tok = h.startsWith("Bearer ") ? h.slice(7) : "";
        if (!tok || !sameSecret(tok, deps.metricsToken)) {
          return new Response("unauthorized: send Authorization: Bearer <scrape token>\n", {
            status: 401,
            headers: { "www-authenticate": 'Bearer realm="mr-console-metrics"' },
          });
        }
        const rollouts: RolloutGauge[] = [];
        for (const c of view.customers()) {
          for (const r of await deps.rollouts(c).catch(() => [] as RolloutView[])) {
            const target = new Set(Object.values(r.desired).map((d) => d.sha256));
            const nodes = Object.values(r.nodes);
            rollouts.push({
              customer: c,
              agent: r.agent,
              total: nodes.length,
              updated: nodes.filter((n) => n.sha256 && target.has(n.sha256)).length,
              halted: r.halted,
            });
          }
        }
        return new Response(renderMetrics(view, rollouts), {
          headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
        });
      }
      if (p === "/login") {
        const s = sessions.login(url.searchParams.get("token") ?? "");
        if (!s) {
          return notice("Login refused", "This login link is not valid for this console.", 401);
        }
        const next = url.searchParams.get("next") ?? "/fleet";
        const safe = next.startsWith("/") && !next.startsWith("//") ? next : "/fleet";
        return new Response(null, {
          status: 303,
          headers: { ...SECURITY_HEADERS, "set-cookie": sessions.cookie(s), location: safe },
        });
      }
      const s = sessions.check(req);
      if (typeof s === "string") {
        const why = s === "expired"
          ? "Your session expired: open the login URL printed by `mr-saas console` again."
          : "Not logged in: open the login URL printed by `mr-saas console`.";
        if (req.method !== "GET") refuse(`no session (${s})`, p);
        if (p.startsWith("/api/")) {
          return jsonError(401, s === "expired" ? "session_expired" : "unauthorized", why);
        }
        return notice(s === "expired" ? "Session expired" : "Not logged in", why, 401);
      }
      if (req.method === "POST") {
        if (!sessions.csrfOk(s, req)) {
          refuse("missing or wrong CSRF token", p);
          return jsonError(403, "csrf", "missing or wrong X-CSRF-Token");
        }
        if (p === "/api/action") return await action(req, s);
        if (p === "/api/logout") {
          sessions.logout(s);
          return json({ ok: true });
        }
        return jsonError(404, "not_found", `no API POST ${p}`);
      }
      if (p.startsWith("/api/")) return await api(req, url, s, done);
      if (req.method !== "GET") return jsonError(405, "method", `${req.method} not allowed`);
      if (p === "/") return new Response(null, { status: 302, headers: { location: "/fleet" } });
      if (/^\/(fleet|agents|events|audit)\/?$/.test(p) || p.startsWith("/node/")) {
        return html(INDEX_HTML, 200, { "cache-control": "no-store" });
      }
      return notice("Not found", `No page at ${p}.`, 404);
    } catch (err) {
      console.error(JSON.stringify({
        ts: new Date().toISOString(),
        level: "error",
        msg: "console request failed",
        error: (err as Error)?.message ?? String(err),
      }));
      return jsonError(500, "internal", "the console could not answer this request");
    }
  };
}
