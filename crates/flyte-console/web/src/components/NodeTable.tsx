import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api } from "../api";
import { elapsed, formatTime, isTerminal } from "../format";
import { paths } from "../router";
import { type Loaded, type Row, flattenRows, isStartOrEnd, phaseCounts, windowOf } from "../rows";
import type { ExecutionId, NodeExecution, TaskExecution } from "../types";
import { ErrorBox, Phase } from "./common";

/** Row height in px (CSS `.vgrid td` keeps every row at it, so the window can be computed). */
const ROW_H = 34;
/** Up to this many rows the table is drawn whole (no inner scroll). */
const WHOLE = 60;
/** Children read per request: the first page shows while the rest is read. */
const CHILD_PAGE = 500;

const CACHE: Record<string, string> = {
  CACHE_DISABLED: "–",
  CACHE_MISS: "miss",
  CACHE_HIT: "hit",
  CACHE_POPULATED: "populated",
  CACHE_LOOKUP_FAILURE: "lookup failed",
  CACHE_PUT_FAILURE: "put failed",
  CACHE_SKIPPED: "skipped",
  CACHE_EVICTED: "evicted",
};

/**
 * The node table: top-level nodes; subworkflow, dynamic and branch nodes expand into their
 * children (read with the gateway's `unique_parent_id`), map tasks into their indices (the
 * array node's task execution). Only the rows in view are drawn, so thousands of children
 * cost what a screenful does.
 */
export function NodeTable({
  id,
  nodes,
  attempts,
  version,
  onSelect,
  selected,
}: {
  id: ExecutionId;
  nodes: NodeExecution[];
  /** The task executions of top-level task nodes (their attempts). */
  attempts: Record<string, TaskExecution[]> | undefined;
  version: number;
  onSelect: (n: string) => void;
  selected: string | null;
}) {
  const [open, setOpen] = useState<ReadonlySet<string>>(new Set());
  const [loaded, setLoaded] = useState<ReadonlyMap<string, Loaded>>(new Map());
  const fetchedAt = useRef(new Map<string, number>());
  const known = useRef(new Map<string, NodeExecution>());
  const rows = useMemo(() => flattenRows(nodes, open, loaded), [nodes, open, loaded]);
  for (const r of rows) if (r.kind === "node") known.current.set(r.key, r.n);

  // Children of open nodes: read when opened, and again after a live update while they run
  // (one read at a time per node; children come in pages, the first shown at once).
  const inFlight = useRef(new Set<string>());
  const [settledTick, setSettledTick] = useState(0);
  // Reads outlive the effect run that started them (a page chain must finish), not the table.
  const mounted = useRef(true);
  useEffect(
    () => () => {
      mounted.current = false;
    },
    [],
  );
  useEffect(() => {
    const put = (nodeId: string, l: Loaded) => mounted.current && setLoaded((m) => new Map(m).set(nodeId, l));
    for (const nodeId of open) {
      const n = known.current.get(nodeId);
      const last = fetchedAt.current.get(nodeId);
      const settled = n && isTerminal(n.closure.phase) && last !== undefined;
      if (last === version || settled || inFlight.current.has(nodeId)) continue;
      fetchedAt.current.set(nodeId, version);
      inFlight.current.add(nodeId);
      const load = async () => {
        if (n?.metadata?.is_array) {
          const r = await api.taskExecutions(id, nodeId);
          const latest = r.task_executions[r.task_executions.length - 1];
          put(nodeId, { indices: latest?.closure.metadata?.external_resources ?? [] });
          return;
        }
        let token = "";
        let nodes: NodeExecution[] = [];
        do {
          const page = await api.childPage(id, nodeId, CHILD_PAGE, token);
          nodes = nodes.concat(page.node_executions);
          token = page.token;
          put(nodeId, { nodes, more: !!token });
        } while (token && mounted.current);
      };
      load()
        .catch((error) => mounted.current && setLoaded((m) => new Map(m).set(nodeId, { ...m.get(nodeId), more: false, error })))
        .finally(() => {
          inFlight.current.delete(nodeId);
          // An update that came meanwhile is read now.
          if (mounted.current) setSettledTick((t) => t + 1);
        });
    }
  }, [open, version, settledTick]);

  const top = nodes.filter((n) => !isStartOrEnd(n.id.node_id));
  const scroller = useRef<HTMLDivElement>(null);
  const [view, setView] = useState({ top: 0, height: 700 });
  const virtual = rows.length > WHOLE;
  useEffect(() => {
    const el = scroller.current;
    if (el) setView({ top: el.scrollTop, height: el.clientHeight || 700 });
  }, [virtual]);
  const { start, end } = virtual ? windowOf(view.top, view.height, ROW_H, rows.length) : { start: 0, end: rows.length };

  if (top.length === 0) return <p class="empty">No node has started yet.</p>;
  const toggle = (nodeId: string) => {
    const next = new Set(open);
    if (next.has(nodeId)) next.delete(nodeId);
    else next.add(nodeId);
    setOpen(next);
  };
  return (
    <div
      class={virtual ? "vscroll" : ""}
      ref={scroller}
      onScroll={(e) => {
        const el = e.currentTarget as HTMLDivElement;
        setView({ top: el.scrollTop, height: el.clientHeight });
      }}
      data-rows={rows.length}
    >
      <table class="grid vgrid" aria-label="Nodes" aria-rowcount={rows.length + 1}>
        <thead>
          <tr>
            <th scope="col">Node</th>
            <th scope="col">Phase</th>
            <th scope="col">Started</th>
            <th scope="col">Duration</th>
            <th scope="col">Attempts</th>
            <th scope="col">Cache</th>
          </tr>
        </thead>
        <tbody>
          {start > 0 ? <Spacer rows={start} /> : null}
          {rows.slice(start, end).map((r, i) => (
            <RowView
              key={r.key}
              r={r}
              index={start + i}
              id={id}
              attempts={r.kind === "node" && r.depth === 0 ? attempts?.[r.key]?.length : undefined}
              loaded={r.kind === "node" ? loaded.get(r.key) : undefined}
              onToggle={toggle}
              onSelect={onSelect}
              selected={selected}
            />
          ))}
          {end < rows.length ? <Spacer rows={rows.length - end} /> : null}
        </tbody>
      </table>
    </div>
  );
}

/** Stands in for `rows` rows that are not drawn. */
function Spacer({ rows }: { rows: number }) {
  return (
    <tr class="spacer" aria-hidden="true">
      <td colSpan={6} style={{ height: `${rows * ROW_H}px` }} />
    </tr>
  );
}

function RowView({
  r,
  index,
  id,
  attempts,
  loaded,
  onToggle,
  onSelect,
  selected,
}: {
  r: Row;
  index: number;
  id: ExecutionId;
  attempts: number | undefined;
  loaded: Loaded | undefined;
  onToggle: (n: string) => void;
  onSelect: (n: string) => void;
  selected: string | null;
}) {
  const indent = { paddingLeft: `${0.6 + r.depth * 1.2}em` };
  if (r.kind === "note") {
    return (
      <tr aria-rowindex={index + 2}>
        <td colSpan={6} class="empty" style={indent}>
          {r.error ? <ErrorBox error={r.error} what={r.text} /> : r.text}
        </td>
      </tr>
    );
  }
  if (r.kind === "index") {
    const log = r.r.logs?.[0];
    return (
      <tr aria-rowindex={index + 2} data-node={r.key} class="index-row">
        <td style={indent}>
          <span class="mono">
            {r.parent}[{r.r.index ?? 0}]
          </span>
          {log ? (
            <>
              {" "}
              <a href={log.uri} target="_blank" rel="noreferrer" title={log.name}>
                log
              </a>
            </>
          ) : null}
        </td>
        <td>
          <Phase phase={r.r.phase} />
        </td>
        <td>–</td>
        <td>–</td>
        <td>{(r.r.retry_attempt ?? 0) + 1}</td>
        <td>{CACHE[r.r.cache_status ?? ""] ?? r.r.cache_status ?? "–"}</td>
      </tr>
    );
  }
  const n = r.n;
  const nodeId = r.key;
  const child = n.closure.workflow_node_metadata?.executionId;
  const cache = n.closure.task_node_metadata;
  const task = cache?.catalog_key?.dataset_id?.name?.replace(/^flyte_task-/, "");
  // A collapsed group says how many it holds once they were read.
  const members = loaded?.indices?.map((x) => x.phase) ?? loaded?.nodes?.filter((c) => !isStartOrEnd(c.id.node_id)).map((c) => c.closure.phase);
  return (
    <tr aria-rowindex={index + 2} data-node={nodeId} class={selected === nodeId ? "selected" : ""}>
      <td style={indent}>
        {r.expandable ? (
          <button
            type="button"
            class="expander"
            aria-expanded={r.open}
            aria-label={`${r.open ? "Collapse" : "Expand"} ${nodeId}`}
            onClick={() => onToggle(nodeId)}
          >
            {r.open ? "▾" : "▸"}
          </button>
        ) : null}
        <button type="button" class="link" onClick={() => onSelect(nodeId)}>
          {nodeId}
        </button>
        {members ? (
          <span class="muted group-count" title={phaseCounts(members).map(([p, c]) => `${c} ${p.toLowerCase()}`).join(", ")}>
            {" "}
            ({members.length.toLocaleString("en")}
            {loaded?.more ? "+" : ""} {n.metadata?.is_array ? "indices" : "children"})
          </span>
        ) : null}
        {child ? (
          <>
            {" "}
            <a href={paths.execution(child.project, child.domain, child.name)} title="The child execution">
              → {child.name}
            </a>
          </>
        ) : null}
      </td>
      <td>
        <Phase phase={n.closure.phase} />
      </td>
      <td>{formatTime(n.closure.started_at)}</td>
      <td>{elapsed(n.closure.phase, n.closure.started_at, n.closure.duration)}</td>
      <td>{attempts ?? (cache && r.depth === 0 && !n.metadata?.is_array ? "…" : "–")}</td>
      <td>
        {task && cache?.cache_status && cache.cache_status !== "CACHE_DISABLED" ? (
          <a
            href={`/api/v1/cache/${encodeURIComponent(id.project)}/${encodeURIComponent(id.domain)}?task=${encodeURIComponent(task)}`}
            title="The task's cache entries (JSON)"
          >
            {CACHE[cache.cache_status] ?? cache.cache_status}
          </a>
        ) : (
          (CACHE[cache?.cache_status ?? ""] ?? cache?.cache_status ?? "–")
        )}
      </td>
    </tr>
  );
}
