/// <reference lib="dom" />
/** Live tail of CloudEvents (SSE), filtered by customer/site/node/type, pausable. */
import { h } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import htm from "htm";

const html = htm.bind(h);
const KEEP = 500;

interface Item {
  customer: string;
  subject: string;
  seq: number;
  event: Record<string, unknown>;
}

/** /events?customer=&site=&node=&type= */
export function EventsView() {
  const init = new URLSearchParams(location.search);
  const [f, setF] = useState({
    customer: init.get("customer") ?? "",
    site: init.get("site") ?? "",
    node: init.get("node") ?? "",
    type: init.get("type") ?? "",
  });
  const [items, setItems] = useState<Item[]>([]);
  const [paused, setPaused] = useState(false);
  const [held, setHeld] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const pausedRef = useRef(false);
  const buffer = useRef<Item[]>([]);
  pausedRef.current = paused;

  useEffect(() => {
    const sp = new URLSearchParams();
    for (const [k, v] of Object.entries(f)) if (v) sp.set(k, v);
    const qs = sp.toString();
    history.replaceState(null, "", `/events${qs ? "?" + qs : ""}`);
    setItems([]);
    buffer.current = [];
    setError(null);
    const es = new EventSource(`/api/events/stream${qs ? "?" + qs : ""}`);
    es.onmessage = (m) => {
      const it = JSON.parse(m.data) as Item;
      if (pausedRef.current) {
        buffer.current.push(it);
        if (buffer.current.length > KEEP) buffer.current.shift();
        setHeld(buffer.current.length);
        return;
      }
      setItems((xs) => [it, ...xs].slice(0, KEEP));
    };
    es.onerror = () => {
      fetch(`/api/events/stream${qs ? "?" + qs : ""}`, { method: "HEAD" }).then((r) => {
        if (r.status === 400 || r.status === 401) {
          r.json().then((b) => setError(b?.error?.message ?? `HTTP ${r.status}`)).catch(() =>
            setError(`HTTP ${r.status}`)
          );
          es.close();
        }
      }).catch(() => {});
    };
    return () => es.close();
  }, [f.customer, f.site, f.node, f.type]);

  const resume = () => {
    setItems((xs) => [...buffer.current.reverse(), ...xs].slice(0, KEEP));
    buffer.current = [];
    setHeld(0);
    setPaused(false);
  };
  const field = (k: keyof typeof f, label: string) =>
    html`
      <input type="text" placeholder=${label} aria-label=${label} value=${f[k]}
        onChange=${(e: Event) =>
          setF({ ...f, [k]: (e.target as HTMLInputElement).value.trim() })} />
    `;
  return html`
    <main>
      <h1>Events</h1>
      <div class="toolbar">
          ${field("customer", "customer")} ${field("site", "site")} ${field(
            "node",
            "node",
          )} ${field("type", "type contains")}
          ${paused
            ? html`<button id="resume" onClick=${resume}>Resume (${held} new)</button>`
            : html`<button id="pause" class="secondary" onClick=${() =>
              setPaused(true)}>Pause</button>`}
          ${error ? html`<span class="error" id="events-error">${error}</span>` : null}
        </div>
      <div class="card tail" id="tail">
          ${items.length === 0
            ? html`<p class="muted">Waiting for events…</p>`
            : items.map((it) => {
              const e = it.event;
              return html`
                <details class="ev" data-type=${String(e.type ?? "")} data-id=${String(e.id ?? "")}>
                  <summary><span class="muted">${String(e.time ?? "").replace("T", " ").slice(
                    0,
                    19,
                  )}</span>
                            <b>${it.customer}</b> ${String(e.mrsite ?? "")}.${String(
                              e.mrnode ?? "",
                            )}
                            ${String(e.type ?? "").replace("io.machineroom.", "")}${e.mragent
                              ? ` (${e.mragent})`
                              : ""}</summary>
                  <pre class="mono">${JSON.stringify(e, null, 2)}</pre>
                </details>
              `;
            })}
        </div>
    </main>
  `;
}
