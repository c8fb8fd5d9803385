import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api";
import { humanPhase, phaseClass } from "../format";

export function Phase({ phase }: { phase: string | undefined }) {
  return (
    <span class={`phase ${phaseClass(phase)}`} data-phase={phase ?? ""}>
      {humanPhase(phase)}
    </span>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="loading" role="status">
      Loading {what}…
    </p>
  );
}

export function ErrorBox({ error, what }: { error: unknown; what: string }) {
  const e = error as ApiError;
  const title =
    e?.status === 404 ? `No such ${what}` : e?.status === 0 ? "The server cannot be reached" : `Could not load ${what}`;
  return (
    <div class="error-box" role="alert">
      <strong>{title}</strong>
      <p>{e?.message ?? String(error)}</p>
    </div>
  );
}

export type Async<T> = { data?: T; error?: unknown; loading: boolean };

/**
 * Loads `fn()` whenever `deps` change; with `pollMs`, again every `pollMs` while
 * `keepPolling(data)` holds (a running execution). A failed poll keeps the last data.
 */
export function useAsync<T>(
  fn: () => Promise<T>,
  deps: unknown[],
  pollMs?: number,
  keepPolling?: (d: T) => boolean,
): Async<T> & { reload: () => void } {
  const [state, setState] = useState<Async<T>>({ loading: true });
  const [tick, setTick] = useState(0);
  const fnRef = useRef(fn);
  fnRef.current = fn;
  useEffect(() => {
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = (first: boolean) => {
      fnRef.current().then(
        (data) => {
          if (!alive) return;
          setState({ data, loading: false });
          if (pollMs && keepPolling?.(data)) timer = setTimeout(() => run(false), pollMs);
        },
        (error) => {
          if (!alive) return;
          setState((s) => (first ? { error, loading: false } : { ...s, error }));
          if (pollMs && !first) timer = setTimeout(() => run(false), pollMs);
        },
      );
    };
    setState((s) => ({ ...s, loading: true }));
    run(true);
    return () => {
      alive = false;
      if (timer) clearTimeout(timer);
    };
  }, [...deps, tick]);
  return { ...state, reload: () => setTick((t) => t + 1) };
}

export function Section({ title, children, id }: { title: string; children: ComponentChildren; id?: string }) {
  return (
    <section class="card" aria-labelledby={id}>
      <h2 id={id}>{title}</h2>
      {children}
    </section>
  );
}
