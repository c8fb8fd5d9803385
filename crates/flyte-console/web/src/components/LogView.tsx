import { useEffect, useRef, useState } from "preact/hooks";
import { isTerminal } from "../format";
import { type Tail, appendTail } from "../live";
import { ErrorBox } from "./common";

/** Kept of a long log: its end, where a running task writes and a failure is explained
 * (characters, close to bytes for logs). */
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

/** An attempt's log inline. While the attempt runs the server streams its lines as they are
 * written (`EventSource` on the same URL: `log` events, then `end`); once it has ended, one
 * read. The end stays in view. */
export function LogView({ path, phase }: { path: string; phase: string }) {
  const [tail, setTail] = useState<Tail | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [following, setFollowing] = useState(false);
  const ended = isTerminal(phase);
  useEffect(() => {
    let alive = true;
    setError(null);
    if (!ended && typeof EventSource !== "undefined") {
      let t: Tail = { text: "", dropped: 0 };
      setTail(t);
      const es = new EventSource(path);
      setFollowing(true);
      es.addEventListener("log", (ev) => {
        try {
          t = appendTail(t, JSON.parse((ev as MessageEvent).data) as string, TAIL_BYTES);
        } catch {
          return;
        }
        if (alive) setTail(t);
      });
      es.addEventListener("end", (ev) => {
        es.close();
        setFollowing(false);
        const err = (JSON.parse((ev as MessageEvent).data || "{}") as { error?: string }).error;
        if (err && alive) setError(new Error(err));
      });
      // The browser reconnects by itself (resuming after the last event's byte offset).
      es.onerror = () => {
        if (es.readyState === EventSource.CLOSED) {
          setFollowing(false);
          if (alive) setError(new Error("The log cannot be followed (the server refused it)."));
        }
      };
      return () => {
        alive = false;
        es.close();
      };
    }
    setFollowing(false);
    (async () => {
      try {
        const res = await fetch(path);
        if (!res.ok) throw new Error((await res.text()).trim() || `${res.status} ${res.statusText}`);
        const text = await res.text();
        if (alive) setTail(appendTail({ text: "", dropped: 0 }, text, TAIL_BYTES));
      } catch (e) {
        if (alive) setError(e);
      }
    })();
    return () => {
      alive = false;
    };
  }, [path, ended]);
  const pre = useRef<HTMLPreElement>(null);
  useEffect(() => {
    const el = pre.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [tail]);
  const text = tail?.text ?? null;
  const dropped = tail?.dropped ?? 0;
  if (error && !text) return <ErrorBox error={error} what="the log" />;
  return (
    <div class="log">
      {dropped ? <p class="muted">… the first {Math.round(dropped / 1024)} kB are not shown.</p> : null}
      <pre ref={pre} tabIndex={0} aria-label="Task log" data-testid="task-log" data-following={following ? "yes" : "no"}>
        {text === null
          ? "Loading…"
          : text.trim() === ""
            ? isTerminal(phase)
              ? "(the task wrote nothing)"
              : "(nothing yet)"
            : text}
      </pre>
    </div>
  );
}
