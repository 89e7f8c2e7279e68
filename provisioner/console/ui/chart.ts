/// <reference lib="dom" />
/** One uPlot time-series chart as a Preact component. */
import { h } from "preact";
import { useEffect, useRef } from "preact/hooks";
import htm from "htm";
import uPlot from "uplot";

const html = htm.bind(h);

/** 1234567 → "1.2M": short axis labels. */
function si(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(0) + "k";
  return String(Math.round(v * 100) / 100);
}

/** A chart of one series: `t` in seconds, `v` values. */
export function Chart({ title, t, v }: { title: string; t: number[]; v: number[] }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!el.current) return;
    const plot = new uPlot(
      {
        title,
        width: 460,
        height: 200,
        series: [{}, {
          label: title,
          stroke: "#2f6fde",
          fill: "rgba(47,111,222,0.08)",
          width: 1.5,
        }],
        axes: [{}, { size: 56, values: (_u: unknown, ticks: number[]) => ticks.map(si) }],
        scales: { x: { time: true } },
      },
      [t, v],
      el.current,
    );
    el.current.dataset.points = String(t.length);
    return () => plot.destroy();
  }, [title, t, v]);
  return html`<div class="chart" ref=${el} data-title=${title}></div>`;
}
