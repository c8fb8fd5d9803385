// The graph of a run with nodes expanded in place: a subworkflow, dynamic, branch or
// launch-plan node opens into its inner nodes, a map task into its indices. Pure: it turns what
// was read into what to draw, and lists what still has to be read (`wants`). Big insides (more
// than INNER_LIMIT nodes, or a map's indices) are summarised (counts per phase and the first
// FIRST_N), so a 6,000-leaf fan-out never becomes 6,000 graph nodes.
import { type GraphEdge, NODE_H, NODE_W, layout, workflowGraph } from "./graph";
import { byStart, isStartOrEnd, phaseCounts } from "./rows";
import type { CompiledWorkflow, ExecutionId, ExternalResource, Identifier, NodeExecution, WorkflowNode } from "./types";

/** Up to this many inner nodes are drawn as a graph; more are summarised. */
export const INNER_LIMIT = 30;
/** Members drawn as chips in a summary. */
export const FIRST_N = 24;

/** How an expanded node's inside is read. */
export type LoadKind = "sub" | "dynamic" | "children" | "indices" | "launch";

/** Something the graph needs read: the inside of open node `nodeId` of execution `exec` (null:
 * the page's execution); `child` is a launch-plan node's child execution. */
export interface Want {
  key: string;
  kind: LoadKind;
  exec: ExecutionId | null;
  nodeId: string;
  phase?: string;
  child?: ExecutionId;
}

/** What was read for an open node. */
export interface Expansion {
  /** Child node executions (or a launch plan's child execution's nodes). */
  children?: NodeExecution[];
  /** More children are still being read. */
  more?: boolean;
  /** The inner workflow when it is known (a dynamic node's, a child execution's). */
  wf?: CompiledWorkflow | null;
  subs?: CompiledWorkflow[];
  indices?: ExternalResource[];
  error?: unknown;
}

export interface Chip {
  key: string;
  nodeId: string;
  exec: ExecutionId | null;
  label: string;
  phase?: string;
  /** Has a node execution to open (map indices do not). */
  selectable: boolean;
}

export type Inner =
  | { kind: "graph"; nodes: VNode[]; edges: GraphEdge[] }
  | {
      kind: "summary";
      what: "children" | "indices";
      total: number;
      more: boolean;
      counts: [string, number][];
      first: Chip[];
    }
  | { kind: "note"; text: string; error?: unknown };

export interface VNode {
  /** Unique in the whole drawing (inside a child execution: `{lp node}>{node id}`). */
  key: string;
  /** The node execution's id in its execution. */
  nodeId: string;
  /** The execution it belongs to when not the page's (inside a launch plan's child). */
  exec: ExecutionId | null;
  label: string;
  phase?: string;
  /** It has a node execution (has started). */
  started: boolean;
  special: boolean;
  /** What opening it shows: subworkflow, dynamic, map, launch plan, branch. */
  what?: string;
  expandable: boolean;
  open: boolean;
  inner?: Inner;
}

interface Level {
  wf: CompiledWorkflow | null;
  subs: CompiledWorkflow[];
  /** Node executions of this level by their node id in the template. */
  bySpec: Map<string, NodeExecution>;
  children: NodeExecution[];
  exec: ExecutionId | null;
  /** The enclosing node's id in `exec` (null: the workflow's top level). */
  parentNodeId: string | null;
  prefix: string;
  /** Names of children by template id when there is no template (a branch's candidates). */
  labels?: Map<string, string>;
}

const sameId = (a: Identifier | undefined, b: Identifier | undefined) =>
  !!a && !!b && a.name === b.name && a.version === b.version && a.project === b.project && a.domain === b.domain;

/** The template node id of a child node execution (`n1-0-n0` → `n0`). */
const specId = (n: NodeExecution) => n.metadata?.spec_node_id || n.id.node_id.split("-").pop() || n.id.node_id;

function bySpecId(list: NodeExecution[], top: boolean): Map<string, NodeExecution> {
  const m = new Map<string, NodeExecution>();
  // Later retries (sorted by start) win.
  for (const n of [...list].sort(byStart)) m.set(top ? n.id.node_id : specId(n), n);
  return m;
}

/** The graph of a run: its compiled workflow (with subworkflows), the top-level node
 * executions, the nodes opened and what was read for them. */
export function runGraph(
  wf: CompiledWorkflow,
  subs: CompiledWorkflow[],
  top: NodeExecution[],
  open: ReadonlySet<string>,
  loaded: ReadonlyMap<string, Expansion>,
): { nodes: VNode[]; edges: GraphEdge[]; wants: Want[] } {
  const wants: Want[] = [];
  const level: Level = { wf, subs, bySpec: bySpecId(top, true), children: top, exec: null, parentNodeId: null, prefix: "" };
  const g = buildLevel(level, true, open, loaded, wants);
  return { ...g, wants };
}

function buildLevel(
  l: Level,
  top: boolean,
  open: ReadonlySet<string>,
  loaded: ReadonlyMap<string, Expansion>,
  wants: Want[],
): { nodes: VNode[]; edges: GraphEdge[] } {
  if (!l.wf) {
    // No template: the children as they ran, without edges.
    const nodes = l.children
      .filter((c) => !isStartOrEnd(c.id.node_id))
      .sort(byStart)
      .map((c) => vnode(l, specId(c), undefined, c, l.labels?.get(specId(c)) ?? specId(c), open, loaded, wants));
    return { nodes, edges: [] };
  }
  const g = workflowGraph(l.wf);
  const templates = new Map((l.wf.template.nodes ?? []).map((t) => [t.id, t]));
  const ids = top ? g.ids : g.ids.filter((id) => !isStartOrEnd(id));
  const keep = new Set(ids);
  const nodes = ids.map((id) => vnode(l, id, templates.get(id), l.bySpec.get(id), g.labels[id] ?? id, open, loaded, wants));
  const keyOf = new Map(nodes.map((n, i) => [ids[i], n.key]));
  const edges = g.edges
    .filter((e) => keep.has(e.from) && keep.has(e.to))
    .map((e) => ({ from: keyOf.get(e.from)!, to: keyOf.get(e.to)! }));
  return { nodes, edges };
}

function vnode(
  l: Level,
  spec: string,
  t: WorkflowNode | undefined,
  ne: NodeExecution | undefined,
  label: string,
  open: ReadonlySet<string>,
  loaded: ReadonlyMap<string, Expansion>,
  wants: Want[],
): VNode {
  // A node that has not run yet gets the id it will have (attempt 0 of its parent).
  const nodeId = ne?.id.node_id ?? (l.parentNodeId ? `${l.parentNodeId}-0-${spec}` : spec);
  const key = l.prefix + nodeId;
  const child = ne?.closure.workflow_node_metadata?.executionId;
  const subRef = t?.workflow_node?.sub_workflow_ref;
  const kind: LoadKind | null =
    ne?.metadata?.is_array || (t?.array_node && ne)
      ? "indices"
      : child
        ? "launch"
        : subRef
          ? "sub"
          : ne?.metadata?.is_dynamic
            ? "dynamic"
            : ne?.metadata?.is_parent_node || (t?.branch_node && ne)
              ? "children"
              : null;
  const what = kind && { sub: "subworkflow", dynamic: "dynamic", children: t?.branch_node ? "branch" : "children", indices: "map", launch: "launch plan" }[kind];
  const v: VNode = {
    key,
    nodeId,
    exec: l.exec,
    label,
    phase: ne?.closure.phase,
    started: !!ne,
    special: isStartOrEnd(spec),
    what: what ?? undefined,
    expandable: !!kind,
    open: !!kind && open.has(key),
  };
  if (!v.open || !kind) return v;
  if (ne) wants.push({ key, kind, exec: l.exec, nodeId, phase: ne.closure.phase, child: child ?? undefined });
  const x = loaded.get(key);
  v.inner = inner(kind, l, key, nodeId, subRef, child ?? undefined, x, open, loaded, wants, branchLabels(t));
  return v;
}

/** The names of the nodes a branch may run, by id (`n0-n0` → `square`). */
function branchLabels(t: WorkflowNode | undefined): Map<string, string> | undefined {
  const b = t?.branch_node?.if_else;
  if (!b) return undefined;
  const m = new Map<string, string>();
  for (const n of [b.case?.then_node, ...(b.other ?? []).map((o) => o.then_node), b.else_node]) {
    if (!n) continue;
    const name = n.metadata?.name || n.task_node?.reference_id?.name || n.workflow_node?.sub_workflow_ref?.name || n.id;
    m.set(n.id, name.split(".").pop() || name);
  }
  return m;
}

function inner(
  kind: LoadKind,
  l: Level,
  key: string,
  nodeId: string,
  subRef: Identifier | undefined,
  child: ExecutionId | undefined,
  x: Expansion | undefined,
  open: ReadonlySet<string>,
  loaded: ReadonlyMap<string, Expansion>,
  wants: Want[],
  labels?: Map<string, string>,
): Inner {
  if (x?.error && !x.children && !x.indices) return { kind: "note", text: `The inside of ${nodeId} could not be read.`, error: x.error };
  if (kind === "indices") {
    if (!x?.indices) return { kind: "note", text: "Loading…" };
    if (x.indices.length === 0) return { kind: "note", text: "No index has started yet." };
    const sorted = [...x.indices].sort((a, b) => (a.index ?? 0) - (b.index ?? 0));
    return {
      kind: "summary",
      what: "indices",
      total: sorted.length,
      more: false,
      counts: phaseCounts(sorted.map((r) => r.phase)),
      first: sorted.slice(0, FIRST_N).map((r) => ({
        key: `${key}[${r.index ?? 0}]`,
        nodeId,
        exec: l.exec,
        label: `[${r.index ?? 0}]`,
        phase: r.phase,
        selectable: false,
      })),
    };
  }
  // A static subworkflow is drawn from its template even before it runs.
  const wf = kind === "sub" ? (l.subs.find((s) => sameId(s.template.id, subRef)) ?? null) : (x?.wf ?? null);
  const subs = kind === "sub" ? l.subs : (x?.subs ?? []);
  const children = (x?.children ?? []).filter((c) => !isStartOrEnd(c.id.node_id));
  const size = wf ? wf.template.nodes.filter((n) => !isStartOrEnd(n.id)).length : children.length;
  if (!wf && !x) return { kind: "note", text: "Loading…" };
  if (size > INNER_LIMIT || children.length > INNER_LIMIT) {
    const prefix = kind === "launch" ? `${key}>` : l.prefix;
    const exec = kind === "launch" ? (child ?? null) : l.exec;
    const sorted = [...children].sort(byStart);
    return {
      kind: "summary",
      what: "children",
      total: children.length,
      more: !!x?.more,
      counts: phaseCounts(children.map((c) => c.closure.phase)),
      first: sorted.slice(0, FIRST_N).map((c) => ({
        key: prefix + c.id.node_id,
        nodeId: c.id.node_id,
        exec,
        label: specId(c),
        phase: c.closure.phase,
        selectable: true,
      })),
    };
  }
  if (!wf && children.length === 0) return { kind: "note", text: x?.more ? "Loading…" : "No inner node has started yet." };
  const level: Level =
    kind === "launch"
      ? { wf, subs, bySpec: bySpecId(children, true), children, exec: child ?? null, parentNodeId: null, prefix: `${key}>` }
      : { wf, subs, bySpec: bySpecId(children, false), children, exec: l.exec, parentNodeId: nodeId, prefix: l.prefix, labels };
  const g = buildLevel(level, false, open, loaded, wants);
  return { kind: "graph", ...g };
}

// Placing: an open node is a box holding its inside below a header the size of a node.
export const INSET = 10;
export const HEAD = NODE_H + 8;
export const CHIP_W = 64;
export const CHIP_H = 24;
export const CHIP_GAP = 6;
export const LINE = 16;
const CHIP_COLS = 6;
const MIN_OPEN_W = NODE_W + 60;

export interface Box {
  v: VNode;
  x: number;
  y: number;
  w: number;
  h: number;
  inner?: PlacedInner;
}

/** An inside, in coordinates relative to its box. */
export type PlacedInner =
  | { kind: "graph"; g: Placed }
  | { kind: "summary"; lines: string[]; chips: { c: Chip; x: number; y: number }[]; rest: string | null }
  | { kind: "note"; text: string; error?: unknown };

export interface Placed {
  boxes: Box[];
  edges: GraphEdge[];
  width: number;
  height: number;
}

const plural = (n: number, one: string, many: string) => `${n.toLocaleString("en")} ${n === 1 ? one : many}`;

/** The text lines of a summary: how many, then the count of each phase. */
export function summaryLines(s: Extract<Inner, { kind: "summary" }>): string[] {
  const noun = s.what === "indices" ? ["index", "indices"] : ["child", "children"];
  const head = `${plural(s.total, noun[0], noun[1])}${s.more ? " read so far" : ""}`;
  return [head, ...s.counts.map(([p, n]) => `${n.toLocaleString("en")} ${p.toLowerCase().replace(/_/g, " ")}`)];
}

/** Positions of everything drawn: boxes sized by what they hold, laid out in layers. */
export function place(nodes: VNode[], edges: GraphEdge[]): Placed {
  const inside = new Map<string, { inner: PlacedInner; w: number; h: number }>();
  for (const v of nodes) if (v.open && v.inner) inside.set(v.key, placeInner(v.inner));
  const sizes = new Map([...inside].map(([k, i]) => [k, { w: i.w, h: i.h }]));
  const labels = Object.fromEntries(nodes.map((v) => [v.key, v.label]));
  const l = layout(
    nodes.map((v) => v.key),
    edges,
    labels,
    sizes,
  );
  const byKey = new Map(nodes.map((v) => [v.key, v]));
  const boxes = l.nodes.map((n) => ({ v: byKey.get(n.id)!, x: n.x, y: n.y, w: n.w, h: n.h, inner: inside.get(n.id)?.inner }));
  return { boxes: boxes.filter((b) => b.v), edges, width: l.width, height: l.height };
}

function placeInner(i: Inner): { inner: PlacedInner; w: number; h: number } {
  if (i.kind === "graph") {
    const g = place(i.nodes, i.edges);
    return { inner: { kind: "graph", g }, w: Math.max(MIN_OPEN_W, g.width + 2 * INSET), h: HEAD + g.height + INSET };
  }
  if (i.kind === "note") return { inner: i, w: MIN_OPEN_W, h: HEAD + LINE + 2 * INSET };
  const lines = summaryLines(i);
  const cols = Math.min(CHIP_COLS, Math.max(1, i.first.length));
  const top = HEAD + lines.length * LINE + CHIP_GAP;
  const chips = i.first.map((c, n) => ({
    c,
    x: INSET + (n % cols) * (CHIP_W + CHIP_GAP),
    y: top + Math.floor(n / cols) * (CHIP_H + CHIP_GAP),
  }));
  const rows = Math.ceil(i.first.length / cols);
  const shownAll = i.first.length >= i.total && !i.more;
  const rest = shownAll ? null : `the first ${i.first.length}; all in the node table`;
  const h = top + rows * (CHIP_H + CHIP_GAP) + (rest ? LINE : 0) + INSET;
  const w = Math.max(MIN_OPEN_W, 2 * INSET + cols * CHIP_W + (cols - 1) * CHIP_GAP);
  return { inner: { kind: "summary", lines, chips, rest }, w, h };
}
