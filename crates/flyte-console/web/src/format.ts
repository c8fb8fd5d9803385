// Phases, times and durations as people read them.

const TERMINAL = new Set(["SUCCEEDED", "FAILED", "ABORTED", "TIMED_OUT", "SKIPPED", "RECOVERED"]);
export const isTerminal = (phase: string) => TERMINAL.has(phase);

/** The CSS class of a phase's colour: one palette for executions, nodes and attempts. */
export function phaseClass(phase: string | undefined): string {
  switch (phase) {
    case "SUCCEEDED":
    case "RECOVERED":
      return "ph-ok";
    case "FAILED":
    case "FAILING":
    case "TIMED_OUT":
      return "ph-fail";
    case "RUNNING":
    case "SUCCEEDING":
    case "DYNAMIC_RUNNING":
      return "ph-run";
    case "QUEUED":
    case "INITIALIZING":
    case "WAITING_FOR_RESOURCES":
      return "ph-queued";
    case "ABORTED":
    case "ABORTING":
    case "SKIPPED":
      return "ph-aborted";
    default:
      return "ph-none";
  }
}

/** Seconds from a proto JSON duration ("12.5s"). */
export function durationSeconds(d: string | null | undefined): number | null {
  if (!d) return null;
  const n = Number.parseFloat(d);
  return Number.isFinite(n) ? n : null;
}

export function formatSeconds(s: number | null): string {
  if (s === null) return "–";
  if (s < 1) return `${Math.round(s * 1000)}ms`;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.round(s % 60)}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

/** The duration of something: its recorded duration, or for a running one, time since start. */
export function elapsed(
  phase: string,
  startedAt: string | null | undefined,
  duration: string | null | undefined,
  now: number = Date.now(),
): string {
  const recorded = durationSeconds(duration);
  if (recorded !== null && (recorded > 0 || isTerminal(phase))) return formatSeconds(recorded);
  if (startedAt && !isTerminal(phase)) {
    const started = Date.parse(startedAt);
    if (Number.isFinite(started)) return formatSeconds(Math.max(0, (now - started) / 1000));
  }
  return "–";
}

export function formatTime(t: string | null | undefined): string {
  if (!t) return "–";
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return t;
  return d.toLocaleString(undefined, {
    year: "numeric",
    month: "short",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

export const humanPhase = (p: string | undefined) => (p ? p.replace(/_/g, " ").toLowerCase() : "unknown");
