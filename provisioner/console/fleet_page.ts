/**
 * The fleet table's rows after filter, search and sort, with the counts by health.
 *
 * @module
 */
import type { NodeRow } from "./view.ts";
import type { FleetQuery } from "./schemas.ts";

const HEALTH_ORDER = { unhealthy: 0, offline: 1, degraded: 2, unknown: 3, healthy: 4 };

/** Fleet rows after filter, search and sort; counts before filtering. */
export function fleetPage(rows: NodeRow[], q: FleetQuery) {
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
