/// <reference lib="dom" />
/** One uPlot time-series chart as a Preact component. */
import { h } from "preact";
import { useEffect, useRef } from "preact/hooks";
import htm from "htm";
import uPlot from "uplot";

const html = htm.bind(h);

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
        axes: [{}, { size: 60 }],
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
