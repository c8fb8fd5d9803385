import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api } from "../api";
import { isTerminal } from "../format";
import { throttle, watchPaths } from "../live";
import { isStartOrEnd } from "../rows";
import { type Expansion, INNER_LIMIT, type Want, place, runGraph } from "../runGraph";
import type { CompiledWorkflowClosure, ExecutionId, NodeExecution } from "../types";
import { PlacedGraph } from "./Graph";

/** Children read per request (as the node table). */
const CHILD_PAGE = 500;

/**
 * The graph of a run, coloured by phase and live; subworkflow, dynamic, branch, launch-plan
 * and map nodes open in place (their +). Insides are read when opened and re-read on each
 * live update until the node has ended; a launch plan's child execution is followed with its
 * own watch while it runs.
 */
export function RunGraph({
  id,
  closure,
  nodes,
  version,
  selected,
  onSelect,
}: {
  id: ExecutionId;
  closure: CompiledWorkflowClosure | null | undefined;
  nodes: NodeExecution[];
  version: number;
  selected: string | null;
  onSelect: (nodeId: string, exec: ExecutionId | null) => void;
}) {
  const [open, setOpen] = useState<ReadonlySet<string>>(new Set());
  const [loaded, setLoaded] = useState<ReadonlyMap<string, Expansion>>(new Map());
  const g = useMemo(
    () => (closure ? runGraph(closure.primary, closure.sub_workflows ?? [], nodes, open, loaded) : null),
    [closure, nodes, open, loaded],
  );
  const placed = useMemo(() => (g ? place(g.nodes, g.edges) : null), [g]);
  useExpansions(id, g?.wants ?? [], version, setLoaded);
  if (!g || !placed) return <p class="empty">This workflow has no compiled graph.</p>;
  const toggle = (key: string) => {
    const next = new Set(open);
    if (next.has(key)) next.delete(key);
    else next.add(key);
    setOpen(next);
  };
  return <PlacedGraph g={placed} selected={selected} onSelect={(v) => onSelect(v.nodeId, v.exec)} onToggle={toggle} />;
}

/** A workflow version's graph: its subworkflows open in place (nothing has run). */
export function StaticGraph({ closure }: { closure: CompiledWorkflowClosure }) {
  const [open, setOpen] = useState<ReadonlySet<string>>(new Set());
  const placed = useMemo(() => {
    const g = runGraph(closure.primary, closure.sub_workflows ?? [], [], open, new Map());
    return place(g.nodes, g.edges);
  }, [closure, open]);
  const toggle = (key: string) => {
    const next = new Set(open);
    if (next.has(key)) next.delete(key);
    else next.add(key);
    setOpen(next);
  };
  return <PlacedGraph g={placed} selected={null} onToggle={toggle} definition />;
}

const execKey = (e: ExecutionId | null) => (e ? `${e.project}/${e.domain}/${e.name}` : "");

/** Reads what the open nodes need: once when opened, then after each live update (of the page's
 * execution, or of a launch plan's child) until the node has ended; one read at a time per node. */
function useExpansions(
  id: ExecutionId,
  wants: Want[],
  version: number,
  setLoaded: (f: (m: ReadonlyMap<string, Expansion>) => ReadonlyMap<string, Expansion>) => void,
) {
  const fetchedAt = useRef(new Map<string, string>());
  // The node's phase when last read: once read after it ended, it is not read again.
  const readPhase = useRef(new Map<string, string>());
  const inFlight = useRef(new Set<string>());
  const prev = useRef(new Map<string, Expansion>());
  const [settled, setSettled] = useState(0);
  const mounted = useRef(true);
  useEffect(
    () => () => {
      mounted.current = false;
    },
    [],
  );

  // Child executions of open launch-plan nodes that still run: their own watch.
  const followed = wants.filter((w) => w.kind === "launch" && w.child && !isTerminal(w.phase ?? "")).map((w) => w.child!);
  const followKey = followed.map(execKey).sort().join(" ");
  const [childVersions, setChildVersions] = useState<Record<string, number>>({});
  useEffect(() => {
    if (typeof EventSource === "undefined") return;
    const closers = followed.map((child) => {
      const k = execKey(child);
      const es = new EventSource(watchPaths.execution(child));
      const bump = throttle(() => setChildVersions((v) => ({ ...v, [k]: (v[k] ?? 0) + 1 })), 500);
      for (const name of ["update", "resync"]) es.addEventListener(name, bump.call);
      return () => {
        es.close();
        bump.cancel();
      };
    });
    return () => closers.forEach((c) => c());
  }, [followKey]);

  const signature = wants.map((w) => `${w.key}:${w.phase}`).join(",");
  useEffect(() => {
    const put = (key: string, x: Expansion) => {
      prev.current.set(key, x);
      if (mounted.current) setLoaded((m) => new Map(m).set(key, x));
    };
    for (const w of wants) {
      // What "changed" means for this node: the page's updates, or its execution's.
      const exec = w.kind === "launch" ? w.child! : (w.exec ?? id);
      const stamp = `${version}/${childVersions[execKey(exec)] ?? 0}`;
      const last = fetchedAt.current.get(w.key);
      const done = isTerminal(readPhase.current.get(w.key) ?? "");
      if (last === stamp || done || inFlight.current.has(w.key)) continue;
      fetchedAt.current.set(w.key, stamp);
      readPhase.current.set(w.key, w.phase ?? "");
      inFlight.current.add(w.key);
      read(w, w.exec ?? id, prev.current.get(w.key), (x) => put(w.key, x), () => mounted.current)
        .catch((error) => put(w.key, { ...prev.current.get(w.key), more: false, error }))
        .finally(() => {
          inFlight.current.delete(w.key);
          // An update that came meanwhile is read now.
          if (mounted.current) setSettled((t) => t + 1);
        });
    }
  }, [signature, version, childVersions, settled]);
}

/** One read of an open node's inside; `put` is called as pages arrive. */
async function read(w: Want, exec: ExecutionId, before: Expansion | undefined, put: (x: Expansion) => void, alive: () => boolean) {
  if (w.kind === "indices") {
    const r = await api.taskExecutions(exec, w.nodeId);
    const latest = r.task_executions[r.task_executions.length - 1];
    put({ indices: latest?.closure.metadata?.external_resources ?? [] });
    return;
  }
  if (w.kind === "launch") {
    const child = w.child!;
    let wf = before?.wf;
    let subs = before?.subs;
    if (!wf) {
      const e = await api.execution(child);
      const wid = e.closure.workflow_id;
      if (wid) {
        const c = (await api.entity("workflows", wid.project, wid.domain, wid.name, wid.version)).closure?.compiled_workflow;
        wf = c?.primary ?? null;
        subs = c?.sub_workflows ?? [];
      }
    }
    put({ ...before, wf, subs, children: (await api.nodeExecutions(child)).node_executions, more: false, error: undefined });
    return;
  }
  let token = "";
  let children: NodeExecution[] = [];
  do {
    const page = await api.childPage(exec, w.nodeId, CHILD_PAGE, token);
    children = children.concat(page.node_executions);
    token = page.token;
    put({ ...before, children, more: !!token, error: undefined });
  } while (token && alive());
  // A dynamic node's own workflow gives the edges between its children; read once, and only
  // when they are few enough to be drawn as a graph.
  const inner = children.filter((c) => !isStartOrEnd(c.id.node_id)).length;
  if (w.kind === "dynamic" && !before?.wf && inner > 0 && inner <= INNER_LIMIT) {
    const d = (await api.dynamicWorkflow(exec, w.nodeId)).compiled_workflow;
    if (d) put({ children, more: false, wf: d.primary, subs: d.sub_workflows ?? [] });
  }
}
