/// <reference lib="dom" />
/**
 * The console UI: Preact + htm, preact-router for URLs, uPlot for charts.
 * Each view has its own URL: /fleet, /node/<customer>/<site>/<node>, /agents, /events, /audit.
 */
import { h, render } from "preact";
import { useState } from "preact/hooks";
import htm from "htm";
import Router, { Link } from "preact-router";
import { FleetView } from "./fleet.ts";
import { NodeView } from "./node.ts";
import { AgentsView } from "./agents.ts";
import { EventsView } from "./events.ts";
import { AuditView } from "./audit.ts";

const html = htm.bind(h);

function Nav({ here }: { here: string }) {
  const link = (href: string, label: string) =>
    html`<${Link} href=${href} class=${here.startsWith(href) ? "active" : ""}>${label}<//>`;
  return html`<header class="top">
    <span class="brand">Machine Room</span>
    ${link("/fleet", "Fleet")} ${link("/agents", "Agents & rollouts")}
    ${link("/events", "Events")} ${link("/audit", "Audit")}
  </header>`;
}

function NotFound() {
  return html`
    <main>
      <h1>Not found</h1>
      <p>No view at ${location.pathname}.</p>
    </main>
  `;
}

function App() {
  const [here, setHere] = useState(location.pathname);
  return html`
    <div>
      <${Nav} here=${here} />
      <${Router} onChange=${(e: { url: string }) =>
        setHere(new URL(e.url, location.href).pathname)}>
        <${FleetView} path="/fleet" />
        <${NodeView} path="/node/:customer/:site/:node" />
        <${AgentsView} path="/agents" />
        <${EventsView} path="/events" />
        <${AuditView} path="/audit" />
        <${NotFound} default />
        <//>
        </div>
  `;
}

const root = document.getElementById("app")!;
root.textContent = "";
render(html`<${App} />`, root);
