/**
 * The console's HTML shell and stylesheet (the application itself is `ui/`, bundled).
 *
 * @module
 */

/** The single page every UI route serves; `version` busts the bundle's cache. */
export const indexHtml = (version: string): string =>
  `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Machine Room console</title>
<link rel="stylesheet" href="/app.css?v=${version}">
<link rel="modulepreload" href="/app.js?v=${version}">
</head>
<body>
<div id="app"><p class="loading">Loading…</p></div>
<script type="module" src="/app.js?v=${version}"></script>
</body>
</html>
`;

/** Our styles plus the few rules uPlot needs (its own CSS file is not bundled). */
export const STYLE_CSS = `
:root { --bg:#f6f7f9; --fg:#1d2330; --muted:#6b7385; --line:#dde1e8; --card:#fff;
  --ok:#1f9d55; --warn:#d98c00; --bad:#d0342c; --off:#8a90a0; --accent:#2f6fde; }
* { box-sizing: border-box; }
body { margin:0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background:var(--bg); color:var(--fg); }
header.top { display:flex; gap:18px; align-items:center; padding:10px 20px; background:#1d2330; color:#fff; }
header.top a { color:#cdd3e0; text-decoration:none; }
header.top a.active, header.top a:hover { color:#fff; }
header.top .brand { font-weight:700; color:#fff; margin-right:12px; }
main { padding:18px 20px; }
main.notice { max-width:640px; margin:60px auto; background:var(--card); border:1px solid var(--line); border-radius:8px; }
h1 { font-size:20px; margin:0 0 12px; } h2 { font-size:16px; margin:18px 0 8px; }
.counts { display:flex; gap:10px; margin-bottom:14px; flex-wrap:wrap; }
.count { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:8px 14px; min-width:110px; cursor:pointer; }
.count b { display:block; font-size:22px; }
.count.sel { outline:2px solid var(--accent); }
.toolbar { display:flex; gap:10px; margin-bottom:10px; align-items:center; flex-wrap:wrap; }
input, select, textarea, button { font:inherit; }
input[type=search], input[type=text], textarea, select { padding:5px 8px; border:1px solid var(--line); border-radius:6px; background:#fff; }
button { padding:5px 12px; border:1px solid var(--accent); background:var(--accent); color:#fff; border-radius:6px; cursor:pointer; }
button.secondary { background:#fff; color:var(--accent); }
table { border-collapse:collapse; width:100%; background:var(--card); border:1px solid var(--line); }
th, td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#eef1f5; font-weight:600; white-space:nowrap; }
th.sortable { cursor:pointer; user-select:none; }
tr:hover td { background:#f9fafc; }
td a { color:var(--accent); text-decoration:none; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; color:#fff; }
.h-healthy { background:var(--ok); } .h-degraded { background:var(--warn); }
.h-unhealthy { background:var(--bad); } .h-offline { background:var(--off); } .h-unknown { background:#a0a6b4; }
.s-running, .s-healthy { color:var(--ok); } .s-failed { color:var(--bad); } .s-stopped, .s-started { color:var(--muted); }
.leader { background:#6d4bd8; }
.muted { color:var(--muted); }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size:12px; word-break: break-all; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 14px; margin-bottom:14px; }
.grid2 { display:grid; grid-template-columns: 1fr 1fr; gap:14px; }
.charts { display:flex; flex-wrap:wrap; gap:14px; }
.chart { background:#fff; border:1px solid var(--line); border-radius:8px; padding:6px; }
.progress { height:10px; background:#e6e9ef; border-radius:5px; overflow:hidden; min-width:160px; }
.progress > div { height:100%; background:var(--ok); }
.progress.halted > div { background:var(--bad); }
.tail { max-height:70vh; overflow:auto; }
.ev { border-bottom:1px solid var(--line); padding:4px 0; }
.ev summary { cursor:pointer; }
pre { margin:6px 0; white-space:pre-wrap; word-break:break-all; background:#f3f5f8; padding:8px; border-radius:6px; }
.out-answered { color:var(--ok); } .out-offline, .out-timed_out { color:var(--warn); } .out-denied, .out-error { color:var(--bad); }
.error { color:var(--bad); }
.uplot, .uplot *, .uplot *::before, .uplot *::after { box-sizing: border-box; }
.uplot { font-family: system-ui, sans-serif; line-height: 1.5; width: min-content; }
.u-title { text-align: center; font-size: 14px; font-weight: 600; }
.u-wrap { position: relative; user-select: none; }
.u-over, .u-under { position: absolute; }
.u-under { overflow: hidden; }
.uplot canvas { display: block; position: relative; width: 100%; height: 100%; }
.u-axis { position: absolute; }
.u-legend { font-size: 12px; margin: auto; text-align: center; }
.u-inline { display: block; }
.u-inline * { display: inline-block; }
.u-inline tr { margin-right: 16px; }
.u-legend th { font-weight: 600; } .u-legend th > * { vertical-align: middle; display: inline-block; }
.u-legend .u-marker { width: 1em; height: 1em; margin-right: 4px; background-clip: padding-box !important; }
.u-inline.u-live th::after { content: ":"; vertical-align: middle; }
.u-inline:not(.u-live) .u-value { display: none; }
.u-series > * { padding: 4px; } .u-series th { cursor: pointer; } .u-legend .u-off > * { opacity: 0.3; }
.u-select { background: rgba(0,0,0,0.07); position: absolute; pointer-events: none; }
.u-cursor-x, .u-cursor-y { position: absolute; left: 0; top: 0; pointer-events: none; will-change: transform; }
.u-hz .u-cursor-x, .u-vt .u-cursor-y { height: 100%; border-right: 1px dashed #607D8B; }
.u-hz .u-cursor-y, .u-vt .u-cursor-x { width: 100%; border-bottom: 1px dashed #607D8B; }
.u-cursor-pt { position: absolute; top: 0; left: 0; border-radius: 50%; border: 0 solid; pointer-events: none; will-change: transform; background-clip: padding-box !important; }
.u-axis.u-off, .u-select.u-off, .u-cursor-x.u-off, .u-cursor-y.u-off, .u-cursor-pt.u-off { display: none; }
`;
