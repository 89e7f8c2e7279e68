/// <reference lib="dom" />
/** Audit: the provisioning audit log with its verification status. */
import { h } from "preact";
import { useEffect, useState } from "preact/hooks";
import htm from "htm";
import { get } from "./api.ts";

const html = htm.bind(h);

/** /audit */
export function AuditView() {
  const [data, setData] = useState<
    { verify: Record<string, unknown>; records: Record<string, unknown>[] } | null
  >(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    get<typeof data>("/api/audit").then(setData).catch((e) => setError(String(e.message)));
  }, []);
  if (error) {
    return html`
      <main>
        <h1>Audit</h1>
        <p class="error" id="audit-error">${error}</p>
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
  const ok = data.verify.ok === true;
  return html`
    <main>
      <h1>Audit <span class=${"badge " + (ok ? "h-healthy" : "h-unhealthy")} id="audit-status">${ok
        ? "chain verified"
        : "NOT verified"}</span></h1>
      <p class="muted mono">${JSON.stringify(data.verify)}</p>
      <table id="audit">
        <thead>
          <tr>
            <th>Time</th>
            <th>Event</th>
            <th>Details</th>
          </tr>
        </thead>
        <tbody>
          ${data.records.map((r) => {
            const { time, event, hash: _h, prev: _p, mac: _m, ...rest } = r;
            return html`
              <tr>
                <td class="mono">${String(time ?? "")}</td>
                <td>${String(event ?? "")}</td>
                <td class="mono">${JSON.stringify(rest)}</td>
              </tr>
            `;
          })}
        </tbody>
      </table>
    </main>
  `;
}
