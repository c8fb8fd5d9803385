// A layered layout of a workflow's DAG: each node's layer is its longest distance from a
// node without upstreams; within a layer nodes are ordered to cross few edges: barycentre
// sweeps (each node at the mean position of its neighbours in the layer before, then after),
// keeping the order with the fewest crossings (Sugiyama's heuristic; exact minimisation is
// NP-hard).
import type { CompiledWorkflow } from "./types";

export interface GraphNode {
  id: string;
  label: string;
  layer: number;
  row: number;
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface GraphEdge {
  from: string;
  to: string;
}

export interface Layout {
  nodes: GraphNode[];
  edges: GraphEdge[];
  width: number;
  height: number;
}

export const NODE_W = 168;
export const NODE_H = 44;
const GAP_X = 56;
const GAP_Y = 18;
const PAD = 12;

export function workflowGraph(wf: CompiledWorkflow): { ids: string[]; labels: Record<string, string>; edges: GraphEdge[] } {
  const labels: Record<string, string> = { "start-node": "start", "end-node": "end" };
  for (const n of wf.template.nodes ?? []) {
    if (n.id in labels) continue; // start-node and end-node, listed by some compilers
    const ref = n.task_node?.reference_id?.name ?? n.workflow_node?.launchplan_ref?.name ?? n.workflow_node?.sub_workflow_ref?.name;
    const kind = n.branch_node ? "branch" : n.gate_node ? "gate" : n.array_node ? "map" : "";
    labels[n.id] = shortName(n.metadata?.name || ref || kind || n.id);
  }
  const ids = new Set<string>(Object.keys(labels));
  const edges: GraphEdge[] = [];
  for (const [to, ups] of Object.entries(wf.connections?.upstream ?? {})) {
    ids.add(to);
    for (const from of ups.ids ?? []) {
      ids.add(from);
      edges.push({ from, to });
    }
  }
  // Nodes with no upstream (other than start) hang off the start node, as propeller runs them.
  return { ids: [...ids], labels, edges };
}

function shortName(name: string): string {
  const parts = name.split(".");
  return parts[parts.length - 1] || name;
}

export interface Size {
  w: number;
  h: number;
}

/** Layers left to right; a node's size may differ (an expanded node holds its inside): a
 * layer is as wide as its widest node, a column's nodes are stacked and centred. */
export function layout(
  ids: string[],
  edges: GraphEdge[],
  labels: Record<string, string> = {},
  sizes: ReadonlyMap<string, Size> = new Map(),
): Layout {
  const ups = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const e of edges) {
    if (!ups.has(e.to)) ups.set(e.to, []);
    if (!ups.has(e.from)) ups.set(e.from, []);
    ups.get(e.to)!.push(e.from);
  }
  const layer = new Map<string, number>();
  const visiting = new Set<string>();
  const depth = (id: string): number => {
    const known = layer.get(id);
    if (known !== undefined) return known;
    if (visiting.has(id)) return 0; // a cycle (never in a valid workflow): cut it
    visiting.add(id);
    const d = Math.max(-1, ...(ups.get(id) ?? []).map(depth)) + 1;
    visiting.delete(id);
    layer.set(id, d);
    return d;
  };
  const all = [...ups.keys()];
  all.forEach(depth);
  // The end node goes last even when a shorter path reaches it.
  const maxLayer = Math.max(0, ...layer.values());
  if (layer.has("end-node")) layer.set("end-node", Math.max(maxLayer, 1));

  const layers: string[][] = [];
  for (const id of all.sort()) {
    const l = layer.get(id)!;
    (layers[l] ??= []).push(id);
  }
  orderLayers(layers, ups, edges);
  const size = (id: string) => sizes.get(id) ?? { w: NODE_W, h: NODE_H };
  const columnHeight = (ids: string[] | undefined) =>
    (ids ?? []).reduce((s, id) => s + size(id).h, 0) + Math.max(0, (ids?.length ?? 0) - 1) * GAP_Y;
  const tallest = Math.max(NODE_H, ...layers.map(columnHeight));
  const height = PAD * 2 + tallest;
  const nodes: GraphNode[] = [];
  let x = PAD;
  layers.forEach((ids, l) => {
    if (!ids) return;
    let y = (height - columnHeight(ids)) / 2;
    ids.forEach((id, i) => {
      const { w, h } = size(id);
      nodes.push({ id, label: labels[id] ?? id, layer: l, row: i, x, y, w, h });
      y += h + GAP_Y;
    });
    x += Math.max(...ids.map((id) => size(id).w)) + GAP_X;
  });
  const width = layers.length ? x - GAP_X + PAD : PAD * 2 + NODE_W;
  return { nodes, edges, width, height };
}

/** Sweeps down and up, this many times at most. */
const SWEEPS = 8;
/** Counting crossings is quadratic in the edges between two layers: past this many edges the
 * first pass stands (such graphs are summarised in the run's graph anyway). */
const SWEEP_MAX_EDGES = 1_500;

/** Pairs of edges that cross, counted between each pair of layers they join (an edge that
 * skips layers counts against edges joining the same two layers). */
export function crossings(layers: string[][], edges: GraphEdge[]): number {
  const where = new Map<string, [number, number]>();
  layers.forEach((ids, l) => ids?.forEach((id, i) => where.set(id, [l, i])));
  const groups = new Map<string, [number, number][]>();
  for (const e of edges) {
    const a = where.get(e.from);
    const b = where.get(e.to);
    if (!a || !b) continue;
    const key = `${a[0]}>${b[0]}`;
    (groups.get(key) ?? groups.set(key, []).get(key)!).push([a[1], b[1]]);
  }
  let n = 0;
  for (const g of groups.values()) {
    for (let i = 0; i < g.length; i++)
      for (let j = i + 1; j < g.length; j++) if ((g[i][0] - g[j][0]) * (g[i][1] - g[j][1]) < 0) n++;
  }
  return n;
}

/** Orders each layer in place: the first pass by the upstreams' mean row (names break ties),
 * then sweeps down (by upstreams) and up (by downstreams) while they remove crossings. */
function orderLayers(layers: string[][], ups: Map<string, string[]>, edges: GraphEdge[]) {
  const downs = new Map<string, string[]>();
  for (const e of edges) (downs.get(e.from) ?? downs.set(e.from, []).get(e.from)!).push(e.to);
  const row = new Map<string, number>();
  const sortBy = (ids: string[], near: Map<string, string[]>) => {
    const centre = new Map<string, number>();
    for (const id of ids) {
      const ns = (near.get(id) ?? []).filter((u) => row.has(u));
      // Without neighbours there, a node keeps its place.
      centre.set(id, ns.length ? ns.reduce((s, u) => s + row.get(u)!, 0) / ns.length : (row.get(id) ?? 0));
    }
    ids.sort((a, b) => centre.get(a)! - centre.get(b)! || (row.get(a) ?? 0) - (row.get(b) ?? 0) || a.localeCompare(b));
    ids.forEach((id, i) => row.set(id, i));
  };
  layers.forEach((ids, l) => {
    if (!ids) return;
    if (l > 0) sortBy(ids, ups);
    else ids.forEach((id, i) => row.set(id, i));
  });
  if (edges.length > SWEEP_MAX_EDGES) return;
  let best = crossings(layers, edges);
  let bestOrder = layers.map((ids) => ids && [...ids]);
  for (let sweep = 0; sweep < SWEEPS && best > 0; sweep++) {
    for (let l = 1; l < layers.length; l++) if (layers[l]) sortBy(layers[l], ups);
    for (let l = layers.length - 2; l >= 0; l--) if (layers[l]) sortBy(layers[l], downs);
    const n = crossings(layers, edges);
    if (n >= best) break;
    best = n;
    bestOrder = layers.map((ids) => ids && [...ids]);
  }
  bestOrder.forEach((ids, l) => {
    if (ids) layers[l] = ids;
  });
}
