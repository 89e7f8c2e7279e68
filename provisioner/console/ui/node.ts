/// <reference lib="dom" />
// deno-lint-ignore-file no-explicit-any
/** Node view: facts, agents, events timeline, metrics graphs and actions. */
import { h } from "preact";
import { useEffect, useState } from "preact/hooks";
import htm from "htm";
import { ago, compactGrants, get, post } from "./api.ts";
import { Chart } from "./chart.ts";

const html = htm.bind(h);

interface Props {
  customer: string;
  site: string;
  node: string;
}
interface Series {
  name: string;
  labels: Record<string, string>;
  t: number[];
  v: number[];
}
interface Result {
  customer: string;
  site: string;
  node: string;
  outcome: string;
  reply?: unknown;
  error?: string;
  ms: number;
}

function Outcome(
  { r }: { r: { action: string; summary: Record<string, number>; results: Result[] } },
) {
  return html`<div class="card" id="action-result">
    <b>${r.action}</b>: ${
    Object.entries(r.summary).map(([k, n]) => html`<span class=${"out-" + k}> ${n} ${k}</span>`)
  }
    ${
    r.results.map((x) =>
      html`<div data-outcome=${x.outcome}>
      <span class=${
        "out-" + x.outcome
      }>${x.site}.${x.node}: ${x.outcome}</span> <span class="muted">${x.ms} ms</span>
      ${x.error ? html`<div class="error">${x.error}</div>` : null}
      ${
        x.reply !== undefined
          ? html`<pre class="mono">${JSON.stringify(x.reply, null, 2)}</pre>`
          : null
      }
    </div>`
    )
  }
  </div>`;
}

/** /node/:customer/:site/:node?range=1h|24h|7d */
export function NodeView({ customer, site, node }: Props) {
  const base = `/api/node/${customer}/${site}/${node}`;
  const [data, setData] = useState<{ node: Record<string, unknown>; facts: unknown } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [events, setEvents] = useState<Record<string, unknown>[]>([]);
  const [range, setRange] = useState(new URLSearchParams(location.search).get("range") ?? "1h");
  const [series, setSeries] = useState<Series[] | null>(null);
  const [health, setHealth] = useState<Record<string, unknown> | null>(null);
  const [grants, setGrants] = useState<Record<string, unknown>>({});
  const [result, setResult] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [invoke, setInvoke] = useState({ agent: "", command: "", args: "" });

  useEffect(() => {
    let live = true;
    const load = () =>
      get<{ node: Record<string, unknown>; facts: unknown }>(base).then((d) =>
        live && (setData(d), setError(null))
      )
        .catch((e) => live && setError(String(e.message ?? e)));
    load();
    get<{ events: Record<string, unknown>[] }>(`${base}/events`).then((e) =>
      live && setEvents(e.events)
    ).catch(() => {});
    get<{ customers: Record<string, { key: string; agents: Record<string, unknown>[] }[]> }>(
      "/api/desired",
    ).then((d) => {
      const g: Record<string, unknown> = {};
      for (const key of [`site.${site}`, `node.${site}.${node}`]) {
        for (const e of d.customers[customer] ?? []) {
          if (e.key !== key) continue;
          for (const a of e.agents) g[String(a.name)] = a.grants ?? {};
        }
      }
      if (live) setGrants(g);
    }).catch(() => {});
    post<{ results: Result[] }>("/api/action", {
      action: "health",
      targets: [{ customer, site, node }],
    })
      .then((r) =>
        live && r.results[0]?.outcome === "answered" &&
        setHealth(r.results[0].reply as Record<string, unknown>)
      )
      .catch(() => {});
    const t = setInterval(load, 3000);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [customer, site, node]);

  useEffect(() => {
    history.replaceState(
      null,
      "",
      `/node/${customer}/${site}/${node}${range !== "1h" ? "?range=" + range : ""}`,
    );
    setSeries(null);
    // graphs follow the node: reloaded every 10 s (1 h) or minute (24 h, 7 d); a failed load
    // is retried by the next round
    let live = true;
    const load = () =>
      get<{ series: Series[] }>(`${base}/metrics?range=${range}`)
        .then((m) => live && setSeries(m.series))
        .catch((e) => live && setError(String(e.message ?? e)));
    load();
    const t = setInterval(load, range === "1h" ? 10_000 : 60_000);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [range, customer, site, node]);

  const act = async (body: Record<string, unknown>) => {
    setBusy(true);
    try {
      setResult(await post("/api/action", { ...body, targets: [{ customer, site, node }] }));
    } catch (e) {
      setResult({ error: String((e as Error).message) });
    } finally {
      setBusy(false);
    }
  };
  const doInvoke = () => {
    let args: unknown = undefined;
    if (invoke.args.trim()) {
      try {
        args = JSON.parse(invoke.args);
      } catch (e) {
        return setResult({ error: `args: not JSON: ${(e as Error).message}` });
      }
    }
    act({
      action: "invoke",
      agent: invoke.agent,
      command: invoke.command,
      ...(args !== undefined ? { args } : {}),
    });
  };

  if (error && !data) {
    return html`
      <main>
        <h1>${site}.${node}</h1>
        <p class="error" id="node-error">${error}</p>
      </main>
    `;
  }
  if (!data) {
    return html`
      <main>
        <p class="loading">Loading…</p>
      </main>
    `;
  }
  const n = data.node as Record<string, any>;
  const healthAgents = ((health?.modules as any)?.agents?.agents ?? []) as Record<string, any>[];
  const byName = new Map(healthAgents.map((a) => [a.name, a]));
  const agents = (n.agents as Record<string, any>[]).map((a) => ({
    ...a,
    ...(byName.get(a.name) ?? {}),
  }));
  for (const a of healthAgents) if (!agents.some((x) => x.name === a.name)) agents.push(a);
  return html`
    <main>
      <h1>${customer} / ${site} / ${node} <span class=${"badge h-" + n.health} id="node-health">${n
        .health}</span>
          ${n.leader
            ? html`
              <span class="badge leader">leader</span>
            `
            : null}</h1>
      <p class="muted">last seen ${ago(n.lastSeen)} · version ${n.version ?? "?"} · ${n.os ??
        ""} ${n.hostname ? "· " + n.hostname : ""}</p>
      <div class="card">
          <button id="ping" disabled=${busy} onClick=${() => act({ action: "ping" })}>Ping</button>
          <button id="health" class="secondary" disabled=${busy} onClick=${() =>
            act({ action: "health" })}>Health</button>
          <span style="margin-left:18px">Invoke</span>
          <select aria-label="agent" value=${invoke.agent} onChange=${(e: Event) =>
            setInvoke({ ...invoke, agent: (e.target as HTMLSelectElement).value })}>
            <option value="">agent…</option>${agents.map((a) =>
              html`<option value=${a.name}>${a.name}</option>`
            )}
          </select>
          <input type="text" placeholder="command" aria-label="command" value=${invoke
            .command} onInput=${(e: Event) =>
            setInvoke({ ...invoke, command: (e.target as HTMLInputElement).value })} />
          <input type="text" placeholder='args (JSON)' aria-label="args" value=${invoke
            .args} onInput=${(e: Event) =>
            setInvoke({ ...invoke, args: (e.target as HTMLInputElement).value })} />
          <button id="invoke" disabled=${busy || !invoke.agent ||
            !invoke.command} onClick=${doInvoke}>Run</button>
          ${result
            ? ((result as any).error
              ? html`<p class="error" id="action-result">${(result as any).error}</p>`
              : html`<${Outcome} r=${result} />`)
            : null}
        </div>
      <h2>Agents</h2>
      <table id="agents">
        <thead>
          <tr>
            <th>Name</th>
            <th>Version</th>
            <th>sha256</th>
            <th>Status</th>
            <th>Last result</th>
            <th>Restarts</th>
            <th>Grants</th>
          </tr>
        </thead>
        <tbody>${agents.map((a) =>
          html`
            <tr data-agent=${a.name}>
              <td>${a.name}</td>
              <td>${a.version ?? "—"}</td>
              <td class="mono">${String(a.sha256 ?? "").slice(0, 12)}</td>
              <td class=${"s-" + a.status}>${a.status}</td>
              <td>${a.last_error ?? (a.last_run ? "ok " + ago(Date.parse(a.last_run)) : "—")}</td>
              <td>${a.restarts ?? "—"}</td>
              <td class="mono">${grants[a.name] ? compactGrants(grants[a.name]) : "—"}</td>
            </tr>
          `
        )}</tbody>
      </table>
      <h2>Metrics
          ${["1h", "24h", "7d"].map((r) =>
            html`
              <button class=${r === range ? "" : "secondary"} data-range=${r} onClick=${() =>
                setRange(r)}>${r}</button>
            `
          )}
        </h2>
      <div class="charts" id="charts">
          ${series === null
            ? html`<p class="loading">Loading…</p>`
            : series.length === 0
            ? html`<p class="muted">No metrics in this range.</p>`
            : series.slice(0, 24).map((s) =>
              html`<${Chart} title=${
                s.name + (Object.keys(s.labels).length ? " " + JSON.stringify(s.labels) : "")
              } t=${s.t} v=${s.v} />`
            )}
        </div>
      <div class="grid2">
        <div>
          <h2>Events</h2>
          <div class="card tail" id="node-events">
            ${events.length === 0
              ? html`<p class="muted">No events in the last 24 h.</p>`
              : events.map((e) =>
                html`
                  <details class="ev">
                    <summary><span class="muted">${String(e.time ?? "").slice(
                      11,
                      19,
                    )}</span> ${String(e.type ?? "").replace("io.machineroom.", "")}</summary>
                    <pre class="mono">${JSON.stringify(e, null, 2)}</pre>
                  </details>
                `
              )}</div>
        </div>
        <div>
          <h2>Facts</h2>
          <details class="card" id="facts">
            <summary>facts document</summary>
            <pre class="mono">${JSON.stringify(data.facts, null, 2)}</pre>
          </details>
        </div>
      </div>
    </main>
  `;
}
