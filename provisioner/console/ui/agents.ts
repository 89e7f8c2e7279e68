/// <reference lib="dom" />
// deno-lint-ignore-file no-explicit-any
/** Agents and rollouts: the desired state per key, and each rollout's per-node progress. */
import { h } from "preact";
import { useEffect, useState } from "preact/hooks";
import htm from "htm";
import { compactGrants, get } from "./api.ts";

const html = htm.bind(h);

interface Entry {
  key: string;
  signer: string | null;
  version: number | null;
  agents: Record<string, any>[];
  error?: string;
}
interface Rollout {
  customer: string;
  agent: string;
  governor: string | null;
  capacity: number | null;
  holders: any[];
  desired: Record<string, { version: number; sha256: string | null }>;
  nodes: Record<string, { sha256: string | null; state?: string | null; code?: string | null }>;
  halted: boolean;
}

/** /agents */
export function AgentsView() {
  const [desired, setDesired] = useState<Record<string, Entry[]> | null>(null);
  const [rollouts, setRollouts] = useState<Rollout[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    const load = () => {
      get<{ customers: Record<string, Entry[]> }>("/api/desired").then((d) =>
        live && setDesired(d.customers)
      )
        .catch((e) => live && setError(String(e.message)));
      get<{ rollouts: Rollout[] }>("/api/rollouts").then((r) => live && setRollouts(r.rollouts))
        .catch((e) => live && setError(String(e.message)));
    };
    load();
    const t = setInterval(load, 2000);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, []);
  return html`<main>
    <h1>Agents & rollouts</h1>
    ${error ? html`<p class="error">${error}</p>` : null}
    <h2>Rollouts</h2>
    ${
    rollouts === null
      ? html`<p class="loading">Loading…</p>`
      : rollouts.length === 0
      ? html`<p class="muted">No agent has a rollout governor.</p>`
      : rollouts.map((r) => {
        const target = new Set(Object.values(r.desired).map((d) => d.sha256));
        const nodes = Object.entries(r.nodes).sort(([a], [b]) => a.localeCompare(b));
        const done = nodes.filter(([, n]) => n.sha256 && target.has(n.sha256)).length;
        const pct = nodes.length ? Math.round((done / nodes.length) * 100) : 0;
        return html`<div class="card rollout" data-agent=${r.agent} data-customer=${r.customer}>
          <b>${r.customer} / ${r.agent}</b> <span class="muted">governor ${
          r.governor ?? "—"
        }: ${r.holders.length}/${r.capacity ?? "?"} slots held</span>
          ${
          r.halted
            ? html`
              <span class="badge h-unhealthy">halted</span>
            `
            : null
        }
          <div style="display:flex;gap:10px;align-items:center;margin:6px 0">
            <div class=${
          "progress" + (r.halted ? " halted" : "")
        }><div style=${`width:${pct}%`}></div></div>
            <span class="rollout-count">${done}/${nodes.length} nodes on the desired version</span></div>
          <table><thead><tr><th>Node</th><th>sha256</th><th>Outcome</th></tr></thead><tbody>
            ${
          nodes.map(([k, n]) =>
            html`
              <tr data-node=${k}>
                <td>${k}</td>
                <td class="mono">${String(n.sha256 ?? "").slice(0, 12)}</td>
                <td class=${n.sha256 && target.has(n.sha256) ? "s-running" : "muted"}>${n.state ??
                  (n.sha256 && target.has(n.sha256) ? "updated" : "waiting")}${n.code
                  ? " (" + n.code + ")"
                  : ""}</td>
              </tr>
            `
          )
        }
          </tbody></table></div>`;
      })
  }
    <h2>Desired state</h2>
    ${
    desired === null
      ? html`<p class="loading">Loading…</p>`
      : Object.entries(desired).map(([c, entries]) =>
        html`<div>
      ${entries.length === 0 ? html`<p class="muted">${c}: no desired state.</p>` : null}
      ${
          entries.map((e) =>
            html`<div class="card desired" data-key=${`${c}/${e.key}`}>
        <b>${c} / ${e.key}</b> <span class="muted">version ${
              e.version ?? "?"
            } · signed by <span class="mono">${e.signer ?? "?"}</span></span>
        ${e.error ? html`<p class="error">${e.error}</p>` : null}
        <table><thead><tr><th>Agent</th><th>sha256</th><th>Grants</th><th>Limits</th><th>Match</th><th>Rollout</th></tr></thead><tbody>
          ${
              e.agents.map((a) =>
                html`
                  <tr data-agent=${a.name}>
                    <td>${a.name}${a.leader_only
                      ? html`
                        <span class="badge leader">leader only</span>
                      `
                      : null}</td>
                    <td class="mono">${String(a.wasm?.sha256 ?? "").slice(0, 12)}</td>
                    <td class="mono">${compactGrants(a.grants)}</td>
                    <td class="mono">${JSON.stringify(a.limits ?? {})}</td>
                    <td class="mono">${a.match ? JSON.stringify(a.match) : "all"}</td>
                    <td class="mono">${a.rollout ? JSON.stringify(a.rollout) : "—"}</td>
                  </tr>
                `
              )
            }
        </tbody></table></div>`
          )
        }</div>`
      )
  }
  </main>`;
}
