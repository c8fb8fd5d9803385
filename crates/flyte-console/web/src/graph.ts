// A layered layout of a workflow's DAG: each node's layer is its longest distance from a
// node without upstreams; within a layer nodes are ordered by the mean position of their
// upstreams (one barycentre pass), which keeps small workflows free of crossings.
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
  const row = new Map<string, number>();
  layers.forEach((ids, l) => {
    if (l > 0) {
      const centre = (id: string) => {
        const us = ups.get(id)!.filter((u) => row.has(u));
        return us.length ? us.reduce((s, u) => s + row.get(u)!, 0) / us.length : 0;
      };
      ids.sort((a, b) => centre(a) - centre(b) || a.localeCompare(b));
    }
    ids.forEach((id, i) => row.set(id, i));
  });
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
