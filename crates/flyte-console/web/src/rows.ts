// The node table as a flat list of rows (nodes, expanded children, map indices) and the window
// of it that is drawn: a run with 6,000 dynamic children or 1,000 map indices renders only the
// rows in view.
import { durationSeconds, isTerminal } from "./format";
import type { ExternalResource, NodeExecution, TaskExecution } from "./types";

/** What an expanded node has loaded: child node executions, or a map task's indices. */
export interface Loaded {
  nodes?: NodeExecution[];
  /** More children are being read (they come in pages). */
  more?: boolean;
  indices?: ExternalResource[];
  error?: unknown;
}

export type Row =
  | { kind: "node"; key: string; n: NodeExecution; depth: number; expandable: boolean; open: boolean }
  | { kind: "index"; key: string; parent: string; r: ExternalResource; depth: number }
  | { kind: "note"; key: string; text: string; depth: number; error?: unknown };

/** start-node and end-node, also inside subworkflows and dynamic nodes (`n0-0-start-node`). */
export const isStartOrEnd = (nodeId: string) => nodeId.endsWith("start-node") || nodeId.endsWith("end-node");

/** By start time (RFC 3339 strings of one server compare as text; cheap for 6,000 rows). */
export const byStart = (a: NodeExecution, b: NodeExecution) => {
  const x = a.closure.started_at ?? a.closure.created_at ?? "";
  const y = b.closure.started_at ?? b.closure.created_at ?? "";
  return x < y ? -1 : x > y ? 1 : 0;
};

/** A node with something under it: a subworkflow, dynamic or branch node (children), or a map task (indices). */
export const isExpandable = (n: NodeExecution) => !!(n.metadata?.is_parent_node || n.metadata?.is_array);

export function flattenRows(top: NodeExecution[], open: ReadonlySet<string>, loaded: ReadonlyMap<string, Loaded>): Row[] {
  const out: Row[] = [];
  const visit = (list: NodeExecution[], depth: number) => {
    for (const n of list.filter((c) => !isStartOrEnd(c.id.node_id)).sort(byStart)) {
      const id = n.id.node_id;
      const expandable = isExpandable(n);
      const isOpen = expandable && open.has(id);
      out.push({ kind: "node", key: id, n, depth, expandable, open: isOpen });
      if (!isOpen) continue;
      const l = loaded.get(id);
      if (!l) {
        out.push({ kind: "note", key: `${id}/loading`, text: "Loading…", depth: depth + 1 });
      } else if (l.error && !l.nodes && !l.indices) {
        out.push({ kind: "note", key: `${id}/error`, text: `The children of ${id} could not be loaded.`, depth: depth + 1, error: l.error });
      } else if (l.indices) {
        if (l.indices.length === 0) out.push({ kind: "note", key: `${id}/none`, text: "No index has started yet.", depth: depth + 1 });
        const sorted = [...l.indices].sort((a, b) => (a.index ?? 0) - (b.index ?? 0));
        for (const r of sorted) out.push({ kind: "index", key: `${id}[${r.index ?? 0}]`, parent: id, r, depth: depth + 1 });
      } else {
        const children = (l.nodes ?? []).filter((c) => !isStartOrEnd(c.id.node_id));
        if (children.length === 0) out.push({ kind: "note", key: `${id}/none`, text: "No child nodes yet.", depth: depth + 1 });
        visit(children, depth + 1);
      }
    }
  };
  visit(top, 0);
  return out;
}

/** The rows to draw, `[start, end)`, for a viewport of `height` px scrolled to `scrollTop`,
 * with `overscan` rows either side so a quick scroll does not show blanks. */
export function windowOf(
  scrollTop: number,
  height: number,
  rowHeight: number,
  count: number,
  overscan = 15,
): { start: number; end: number } {
  const visible = Math.ceil(Math.max(0, height) / rowHeight) + 1;
  // Scrolled past the end (the list shrank): the last rows.
  const first = Math.min(Math.floor(Math.max(0, scrollTop) / rowHeight), Math.max(0, count - visible));
  const start = Math.max(0, Math.min(count, first - overscan));
  const end = Math.max(start, Math.min(count, first + visible + overscan));
  return { start, end };
}

/** Per-phase counts of a group's members ("5,990 succeeded · 10 running"), for a collapsed group. */
export function phaseCounts(phases: (string | undefined)[]): [string, number][] {
  const m = new Map<string, number>();
  for (const p of phases) m.set(p ?? "UNDEFINED", (m.get(p ?? "UNDEFINED") ?? 0) + 1);
  return [...m.entries()].sort((a, b) => b[1] - a[1]);
}

/** One bar per attempt of a task node for the timeline: [start, end] in ms (a running
 * attempt ends `now`), its phase and number. Attempts that never started are left out. */
export function attemptBars(list: TaskExecution[], now: number): { attempt: number; phase: string; start: number; end: number }[] {
  return list
    .filter((t) => t.closure.started_at)
    .map((t) => {
      const start = Date.parse(t.closure.started_at!);
      const d = durationSeconds(t.closure.duration);
      const end = d !== null && (d > 0 || isTerminal(t.closure.phase)) ? start + d * 1000 : now;
      return { attempt: t.id.retry_attempt ?? 0, phase: t.closure.phase, start, end };
    })
    .filter((a) => Number.isFinite(a.start))
    .sort((a, b) => a.attempt - b.attempt);
}
