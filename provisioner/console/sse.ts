/**
 * The live event tail: Server-Sent Events fanned out from the fleet view's one subscription
 * set. Each tail replays the last 200 matching events, then follows. A reader that falls
 * more than {@linkcode MAX_QUEUED} events behind loses the newest ones and is told how many
 * (an `event: dropped` message) once it catches up.
 *
 * @module
 */
import type { FleetView, ViewEvent } from "./view.ts";
import type { EventsQuery } from "./schemas.ts";
import { jsonError, SECURITY_HEADERS } from "./http.ts";

/** Live tails open at once (all sessions). */
export const MAX_STREAMS = 64;
/** Events queued for one slow reader before new ones are dropped. */
export const MAX_QUEUED = 2_000;

/** True when the event passes the tail's filter. */
export function eventMatches(e: ViewEvent, f: EventsQuery): boolean {
  if (f.customer && e.customer !== f.customer) return false;
  const [, site, node] = e.subject.split(".");
  if (f.site && site !== f.site) return false;
  if (f.node && node !== f.node) return false;
  if (f.type && !String(e.event.type ?? "").includes(f.type)) return false;
  return true;
}

/** The console's live tails. */
export interface LiveTails {
  /** An SSE answer; it ends when `done` settles or the console stops. */
  open(done: Promise<void>, filter: EventsQuery): Response;
  count(): number;
}

/** Creates the tails over `view`; `shutdown` ends every one. */
export function createLiveTails(view: FleetView, shutdown: AbortSignal): LiveTails {
  const enc = new TextEncoder();
  let open = 0;
  return {
    count: () => open,
    open(done, f) {
      if (open >= MAX_STREAMS) return jsonError(503, "busy", "too many live tails open");
      open++;
      let stop = () => {};
      const body = new ReadableStream<Uint8Array>({
        start(ctrl) {
          let dropped = 0;
          const send = (e: ViewEvent) => {
            if (!eventMatches(e, f)) return;
            // desiredSize counts queued chunks below the high-water mark of 1
            if ((ctrl.desiredSize ?? 0) < -MAX_QUEUED) {
              dropped++;
              return;
            }
            if (dropped) {
              ctrl.enqueue(enc.encode(`event: dropped\ndata: ${dropped}\n\n`));
              dropped = 0;
            }
            ctrl.enqueue(enc.encode(`data: ${JSON.stringify(e)}\n\n`));
          };
          ctrl.enqueue(enc.encode(`retry: 2000\n\n`));
          for (const e of view.recent().slice(-200)) send(e);
          const off = view.listen(send);
          const ping = setInterval(() => {
            try {
              ctrl.enqueue(enc.encode(`: keep-alive\n\n`));
            } catch { /* closed */ }
          }, 15_000);
          let stopped = false;
          stop = () => {
            if (stopped) return;
            stopped = true;
            open--;
            off();
            clearInterval(ping);
          };
          const end = () => {
            stop();
            try {
              ctrl.close();
            } catch { /* already closed */ }
          };
          done.finally(end);
          shutdown.addEventListener("abort", end);
        },
        cancel() {
          stop();
        },
      }, new CountQueuingStrategy({ highWaterMark: 1 }));
      return new Response(body, {
        headers: {
          ...SECURITY_HEADERS,
          "content-type": "text/event-stream",
          "cache-control": "no-store",
        },
      });
    },
  };
}
