/**
 * The console's HTTP server: the single-page UI, its JSON API, the live event tail (SSE)
 * and `/metrics`. Every UI page and API call needs a session ({@linkcode createSessions});
 * every action (POST) also the session's CSRF token; `/metrics` needs its own bearer token.
 * Bad input gets a 4xx JSON error naming the problem; a failing handler gets a 500 and
 * never takes the server down.
 *
 * @module
 */
import type { FleetView } from "./view.ts";
import { sameSecret, type Sessions } from "./auth.ts";
import { html, json, jsonError, notice, readBody, SECURITY_HEADERS } from "./http.ts";
import { actionBody, eventsQuery, fleetQuery, ID, query, zodMessage } from "./schemas.ts";
import { fleetPage } from "./fleet_page.ts";
import { createLiveTails } from "./sse.ts";
import { desiredState, nodeEvents, nodeMetrics, RANGES, sendCommand } from "./queries.ts";
import { renderMetrics, type RolloutGauge } from "./prom.ts";
import { indexHtml, STYLE_CSS } from "./page.ts";
import { createHash } from "node:crypto";

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
  const tails = createLiveTails(view, deps.shutdown);
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
      return tails.open(done, q);
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
