import { useEffect, useRef } from "preact/hooks";
import { isTerminal } from "../format";
import { ErrorBox, useAsync } from "./common";

/** Shown of a long log: its end, where a running task writes and a failure is explained. */
const TAIL_BYTES = 256 * 1024;

/** The server's own task logs (`/logs/…`, same origin) can be read inline; others are links. */
export function inlineLogPath(uri: string): string | null {
  try {
    const u = new URL(uri, location.href);
    return u.pathname.startsWith("/logs/") ? u.pathname : null;
  } catch {
    return null;
  }
}

/** An attempt's log inline, re-read every 2 s while the attempt runs (the end stays in view). */
export function LogView({ path, phase }: { path: string; phase: string }) {
  const log = useAsync(
    async () => {
      const res = await fetch(path, { headers: { Accept: "text/plain" } });
      const text = await res.text();
      if (!res.ok) throw new Error(text.trim() || `${res.status} ${res.statusText}`);
      return text;
    },
    [path, phase],
    2000,
    () => !isTerminal(phase),
  );
  const pre = useRef<HTMLPreElement>(null);
  useEffect(() => {
    const el = pre.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [log.data]);
  if (log.error && log.data === undefined) return <ErrorBox error={log.error} what="the log" />;
  const text = log.data ?? "";
  const cut = text.length > TAIL_BYTES;
  return (
    <div class="log">
      {cut ? <p class="muted">… the first {Math.round((text.length - TAIL_BYTES) / 1024)} kB are not shown.</p> : null}
      <pre ref={pre} tabIndex={0} aria-label="Task log" data-testid="task-log">
        {text.trim() === ""
          ? log.loading && log.data === undefined
            ? "Loading…"
            : isTerminal(phase)
              ? "(the task wrote nothing)"
              : "(nothing yet)"
          : cut
            ? text.slice(-TAIL_BYTES)
            : text}
      </pre>
    </div>
  );
}
