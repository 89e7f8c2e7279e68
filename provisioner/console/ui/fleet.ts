/// <reference lib="dom" />
/** Fleet view: counts, filter, search and sort over every node of every customer. */
import { h } from "preact";
import { useEffect, useState } from "preact/hooks";
import htm from "htm";
import { ago, get } from "./api.ts";

const html = htm.bind(h);

interface Agent {
  name: string;
  status: string;
}
interface Row {
  customer: string;
  site: string;
  node: string;
  health: string;
  lastSeen: number | null;
  version: string | null;
  os: string | null;
  hostname: string | null;
  leader: boolean;
  agents: Agent[];
}
interface Page {
  counts: Record<string, number>;
  nodes: Row[];
}

const COLUMNS: [string, string][] = [
  ["customer", "Customer"],
  ["site", "Site"],
  ["node", "Node"],
  ["health", "Health"],
  ["lastSeen", "Last seen"],
  ["version", "Version"],
  ["os", "OS"],
  ["agents", "Agents"],
];

const FIRST_ROWS = 60;

function params(): URLSearchParams {
  return new URLSearchParams(location.search);
}

/** The fleet table (URL: /fleet?q=&status=&sort=&dir=). */
export function FleetView() {
  const [q, setQ] = useState(params().get("q") ?? "");
  const [status, setStatus] = useState(params().get("status") ?? "");
  const [sort, setSort] = useState(params().get("sort") ?? "customer");
  const [dir, setDir] = useState(params().get("dir") ?? "asc");
  const [page, setPage] = useState<Page | null>(null);
  const [error, setError] = useState<string | null>(null);
  // first paint shows a screenful of rows; the rest follow right after it
  const [limit, setLimit] = useState(FIRST_ROWS);
  useEffect(() => {
    if (!page || limit !== FIRST_ROWS) return;
    requestAnimationFrame(() => setTimeout(() => setLimit(Infinity), 0));
  }, [page]);

  useEffect(() => {
    const sp = new URLSearchParams();
    if (q) sp.set("q", q);
    if (status) sp.set("status", status);
    if (sort !== "customer") sp.set("sort", sort);
    if (dir !== "asc") sp.set("dir", dir);
    const qs = sp.toString();
    history.replaceState(null, "", `/fleet${qs ? "?" + qs : ""}`);
    let live = true;
    const load = () =>
      get<Page>(`/api/fleet${qs ? "?" + qs : ""}`).then((p) => {
        if (live) (setPage(p), setError(null));
      }).catch((e) => live && setError(String(e.message ?? e)));
    load();
    const t = setInterval(load, 2000);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [q, status, sort, dir]);

  const clickSort = (c: string) => {
    if (sort === c) setDir(dir === "asc" ? "desc" : "asc");
    else (setSort(c), setDir("asc"));
  };
  const counts = page?.counts ?? {};
  const card = (key: string, label: string) =>
    html`
      <div class=${"count" + (status === key ? " sel" : "")} data-count=${key}
        onClick=${() => setStatus(status === key ? "" : key)}>
            <b>${counts[key] ?? 0}</b>${label}</div>
    `;
  return html`<main>
    <h1>Fleet</h1>
    <div class="counts">
      <div class=${"count" + (status === "" ? " sel" : "")} data-count="total" onClick=${() =>
    setStatus("")}>
        <b>${counts.total ?? 0}</b>nodes</div>
      ${card("healthy", "healthy")} ${card("degraded", "degraded")}
      ${card("unhealthy", "unhealthy")} ${card("offline", "offline")}
    </div>
    <div class="toolbar">
      <input type="search" placeholder="Search node, site, customer, agent, OS…" value=${q}
        onInput=${(e: Event) => setQ((e.target as HTMLInputElement).value)} aria-label="search" />
      <select value=${status} onChange=${(e: Event) =>
    setStatus((e.target as HTMLSelectElement).value)} aria-label="status">
        <option value="">any health</option>
        ${
    ["healthy", "degraded", "unhealthy", "offline", "unknown"].map((s) =>
      html`<option value=${s}>${s}</option>`
    )
  }
      </select>
      ${error ? html`<span class="error">${error}</span>` : null}
    </div>
    <table id="fleet">
      <thead><tr>${
    COLUMNS.map(([c, label]) =>
      html`<th class="sortable" data-col=${c} onClick=${() => clickSort(c)}>${label}${
        sort === c ? (dir === "asc" ? " ▲" : " ▼") : ""
      }</th>`
    )
  }</tr></thead>
      <tbody>
        ${
    (page?.nodes ?? []).map((n) => {
      const running = n.agents.filter((a) => a.status === "running").length;
      const failed = n.agents.filter((a) => a.status === "failed").length;
      return html`
        <tr data-node=${`${n.customer}/${n.site}/${n.node}`} data-health=${n.health}>
          <td>${n.customer}</td>
          <td>${n.site}</td>
          <td><a href=${`/node/${n.customer}/${n.site}/${n.node}`}>${n.node}</a>
                      ${n.leader
                        ? html`
                          <span class="badge leader" title="site leader">leader</span>
                        `
                        : null}</td>
          <td><span class=${"badge h-" + n.health}>${n.health}</span></td>
          <td title=${n.lastSeen ? new Date(n.lastSeen).toISOString() : ""}>${ago(n.lastSeen)}</td>
          <td>${n.version ?? "—"}</td>
          <td>${n.os ?? "—"}</td>
          <td><span class="s-running">${running} running</span>${failed
            ? html`, <span class="s-failed">${failed} failed</span>`
            : null}</td>
        </tr>
      `;
    })
  }
      </tbody>
    </table>
    ${page && page.nodes.length === 0 ? html`<p class="muted">No nodes match.</p>` : null}
  </main>`;
}
