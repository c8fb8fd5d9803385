import { useEffect, useRef, useState } from "preact/hooks";
import { isTerminal } from "../format";
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

/** An attempt's log inline. While the attempt runs it asks every 2 s for what is new
 * (`Range: bytes=N-`: 206 appends, 416 means nothing new; a 200 is the whole log again); the
 * end stays in view. */
export function LogView({ path, phase }: { path: string; phase: string }) {
  const [text, setText] = useState<string | null>(null);
  const [dropped, setDropped] = useState(0);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let offset = 0;
    let decoder = new TextDecoder();
    let acc = "";
    let cut = 0;
    const tick = async () => {
      try {
        const res = await fetch(path, { headers: offset ? { Range: `bytes=${offset}-` } : {} });
        if (res.status !== 416) {
          if (!res.ok) throw new Error((await res.text()).trim() || `${res.status} ${res.statusText}`);
          const bytes = new Uint8Array(await res.arrayBuffer());
          if (res.status === 200) {
            decoder = new TextDecoder();
            acc = "";
            cut = 0;
            offset = 0;
          }
          acc += decoder.decode(bytes, { stream: true });
          offset += bytes.length;
          if (acc.length > TAIL_BYTES) {
            cut += acc.length - TAIL_BYTES;
            acc = acc.slice(-TAIL_BYTES);
          }
        }
        if (!alive) return;
        setText(acc);
        setDropped(cut);
        setError(null);
      } catch (e) {
        if (alive) setError(e);
      }
      if (alive && !isTerminal(phase)) timer = setTimeout(tick, 2000);
    };
    void tick();
    return () => {
      alive = false;
      if (timer) clearTimeout(timer);
    };
  }, [path, phase]);
  const pre = useRef<HTMLPreElement>(null);
  useEffect(() => {
    const el = pre.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [text]);
  if (error && text === null) return <ErrorBox error={error} what="the log" />;
  return (
    <div class="log">
      {dropped ? <p class="muted">… the first {Math.round(dropped / 1024)} kB are not shown.</p> : null}
      <pre ref={pre} tabIndex={0} aria-label="Task log" data-testid="task-log">
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
