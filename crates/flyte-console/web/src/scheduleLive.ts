// Schedules that follow their ticks without a page reload: a schedule changes when it ticks
// (its next tick moves on, its last tick or error is set) and when a launch plan is
// (de)activated. The page re-reads the schedules API just after the soonest next tick, and
// whenever the project's execution watch (live.ts) says an execution started or moved, which
// is how a tick that launched shows up at once. Nothing is read while the tab is hidden: a
// re-read that falls due then happens when it is shown again.
import { useEffect, useRef, useState } from "preact/hooks";
import { useLive, watchPaths } from "./live";

/** How long after a tick its outcome is read (the scheduler records it as it launches). */
export const AFTER_TICK_MS = 1_500;
/** A tick already past whose outcome is not recorded yet: read again this much later. */
export const RETRY_MS = 5_000;
/** The longest wait (a yearly cron's next tick is beyond what setTimeout takes). */
export const MAX_WAIT_MS = 3_600_000;

/** Milliseconds until the schedules should be read again, or null when none will tick. */
export function refreshDelay(nextTicks: (string | undefined | null)[], now: number): number | null {
  const times = nextTicks.map((t) => (t ? Date.parse(t) : NaN)).filter(Number.isFinite);
  if (times.length === 0) return null;
  const until = Math.min(...times) - now;
  return Math.min(MAX_WAIT_MS, until > 0 ? until + AFTER_TICK_MS : RETRY_MS);
}

export interface Clock {
  now: () => number;
  hidden: () => boolean;
  setTimeout: (fn: () => void, ms: number) => unknown;
  clearTimeout: (t: unknown) => void;
}

/** One re-read after the soonest of `nextTicks`, held back while the page is hidden; call
 * `shown()` when it becomes visible and `cancel()` when the ticks are read again. */
export function afterNextTick(nextTicks: (string | undefined | null)[], clock: Clock, reload: () => void) {
  let due = false;
  const delay = refreshDelay(nextTicks, clock.now());
  const timer =
    delay === null
      ? undefined
      : clock.setTimeout(() => {
          if (clock.hidden()) due = true;
          else reload();
        }, delay);
  return {
    shown: () => {
      if (due && !clock.hidden()) {
        due = false;
        reload();
      }
    },
    cancel: () => {
      if (timer !== undefined) clock.clearTimeout(timer);
    },
  };
}

const browserClock: Clock = {
  now: () => Date.now(),
  hidden: () => typeof document !== "undefined" && document.hidden,
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t as ReturnType<typeof setTimeout>),
};

/**
 * Keeps a schedules view current: calls `reload` after the soonest of `nextTicks` (pass the
 * array as loaded: each load re-arms the timer) and on each live update of the project's
 * executions. Returns how many re-reads it asked for (a dependency for what else the view
 * reads, such as the scheduled executions).
 */
export function useScheduleRefresh(project: string, domain: string, nextTicks: string[] | undefined, reload: () => void): number {
  const [count, setCount] = useState(0);
  const reloadRef = useRef(reload);
  reloadRef.current = reload;
  const hiddenMissed = useRef(false);
  const again = () => {
    if (browserClock.hidden()) {
      hiddenMissed.current = true;
      return;
    }
    setCount((c) => c + 1);
    reloadRef.current();
  };
  // Watched only while there is a schedule to follow.
  const watching = !!nextTicks?.length;
  const live = useLive(watching ? watchPaths.executions(project, domain) : null, { endOnTerminal: false, throttleMs: 2_000 });
  useEffect(() => {
    if (live.version > 0) again();
  }, [live.version]);
  useEffect(() => {
    if (!nextTicks) return;
    const t = afterNextTick(nextTicks, browserClock, again);
    if (typeof document === "undefined") return t.cancel;
    const onVisibility = () => {
      t.shown();
      if (hiddenMissed.current && !document.hidden) {
        hiddenMissed.current = false;
        again();
      }
    };
    document.addEventListener("visibilitychange", onVisibility);
    return () => {
      t.cancel();
      document.removeEventListener("visibilitychange", onVisibility);
    };
  }, [nextTicks]);
  return count;
}
