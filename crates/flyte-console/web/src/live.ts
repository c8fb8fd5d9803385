// Live updates over server-sent events (docs/console.md, "Live updates"): the server announces
// what changed; pages re-read over REST what they show. No polling.
import { useEffect, useState } from "preact/hooks";
import { isTerminal } from "./format";
import type { ExecutionId } from "./types";

const seg = encodeURIComponent;

export const watchPaths = {
  execution: (id: ExecutionId) => `/api/v1/watch/executions/${seg(id.project)}/${seg(id.domain)}/${seg(id.name)}`,
  executions: (project: string, domain: string) => `/api/v1/watch/executions/${seg(project)}/${seg(domain)}`,
};

/** `fn` at once, then at most once per `ms`: calls in between fold into one at the window's end. */
export function throttle(fn: () => void, ms: number): { call: () => void; cancel: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let pending = false;
  const open = () => {
    timer = setTimeout(() => {
      timer = undefined;
      if (pending) {
        pending = false;
        fn();
        open();
      }
    }, ms);
  };
  return {
    call: () => {
      if (timer) {
        pending = true;
        return;
      }
      fn();
      open();
    },
    cancel: () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      pending = false;
    },
  };
}

/** live: subscribed; reconnecting: the connection dropped and the browser retries; ended: the
 * execution finished (nothing more will come); unavailable: the server refused the watch. */
export type LiveStatus = "connecting" | "live" | "reconnecting" | "ended" | "unavailable";

/** The phase an event's data carries, if any (`ready`, `update` and `resync` may). */
export function eventPhase(data: string): string | undefined {
  try {
    const d = JSON.parse(data) as { phase?: unknown };
    return typeof d?.phase === "string" ? d.phase : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Follows a watch endpoint: `version` grows (throttled) whenever the server says something
 * changed, including at (re)connection, when changes may have been missed. With `endOnTerminal`
 * the stream is closed once an event carries a terminal phase. `url` null: not watching.
 */
export function useLive(
  url: string | null,
  { throttleMs = 500, endOnTerminal = true } = {},
): { version: number; status: LiveStatus } {
  const [version, setVersion] = useState(0);
  const [status, setStatus] = useState<LiveStatus>(url ? "connecting" : "ended");
  useEffect(() => {
    if (!url || typeof EventSource === "undefined") {
      setStatus("ended");
      return;
    }
    setStatus("connecting");
    const es = new EventSource(url);
    const bump = throttle(() => setVersion((v) => v + 1), throttleMs);
    const onEvent = (ev: Event) => {
      setStatus("live");
      bump.call();
      const phase = eventPhase((ev as MessageEvent).data ?? "");
      if (endOnTerminal && phase && isTerminal(phase)) {
        es.close();
        setStatus("ended");
      }
    };
    for (const name of ["ready", "update", "resync"]) es.addEventListener(name, onEvent);
    es.onerror = () => setStatus(es.readyState === EventSource.CLOSED ? "unavailable" : "reconnecting");
    return () => {
      es.close();
      bump.cancel();
    };
  }, [url]);
  return { version, status };
}

/** The end of a log kept in view: `max` characters at most, counting what was dropped. */
export interface Tail {
  text: string;
  dropped: number;
}

export function appendTail(t: Tail, chunk: string, max: number): Tail {
  const text = t.text + chunk;
  if (text.length <= max) return { text, dropped: t.dropped };
  return { text: text.slice(-max), dropped: t.dropped + text.length - max };
}
