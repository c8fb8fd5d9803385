import { describe, expect, it } from "vitest";
import { NODE_W } from "./graph";
import { type Box, type Expansion, FIRST_N, type Inner, type VNode, place, runGraph } from "./runGraph";
import type { CompiledWorkflow, ExecutionId, ExternalResource, NodeExecution } from "./types";

const EX: ExecutionId = { project: "p", domain: "d", name: "e1" };
const id = (name: string) => ({ project: "p", domain: "d", name, version: "v1" });

/** A workflow of task nodes chained in order (start → a → b → end), some nodes special. */
function chain(name: string, nodes: CompiledWorkflow["template"]["nodes"]): CompiledWorkflow {
  const upstream: Record<string, { ids: string[] }> = {};
  let prev = "start-node";
  for (const n of nodes) {
    upstream[n.id] = { ids: [prev] };
    prev = n.id;
  }
  upstream["end-node"] = { ids: [prev] };
  return { template: { id: id(name), nodes: [{ id: "start-node" }, ...nodes, { id: "end-node" }] }, connections: { upstream } };
}

const task = (nid: string, fn: string) => ({ id: nid, metadata: { name: `examples.${fn}` }, task_node: { reference_id: id(fn) } });

function ne(nodeId: string, phase: string, meta: NodeExecution["metadata"] = {}, extra: Partial<NodeExecution["closure"]> = {}): NodeExecution {
  const i = Number(nodeId.replace(/\D/g, "")) || 0;
  return {
    id: { execution_id: EX, node_id: nodeId },
    closure: { phase, started_at: new Date(Date.UTC(2026, 11, 7, 10) + i * 1000).toISOString(), ...extra },
    metadata: { spec_node_id: nodeId.split("-").pop(), ...meta },
  };
}

const inc = chain("inc_twice", [task("n0", "inc"), task("n1", "inc")]);
const parent = chain("parent_wf", [
  task("n0", "prep"),
  { id: "n1", metadata: { name: "inc_twice" }, workflow_node: { sub_workflow_ref: id("inc_twice") } },
  { id: "n2", metadata: { name: "fan" }, task_node: { reference_id: id("fan") } },
  { id: "n3", metadata: { name: "squares" }, array_node: {} },
  { id: "n4", metadata: { name: "triple" }, workflow_node: { launchplan_ref: id("triple") } },
]);
const CHILD: ExecutionId = { project: "p", domain: "d", name: "child1" };
const top = [
  ne("n0", "SUCCEEDED"),
  ne("n1", "RUNNING", { is_parent_node: true }),
  ne("n2", "RUNNING", { is_parent_node: true, is_dynamic: true }),
  ne("n3", "RUNNING", { is_array: true }),
  ne("n4", "RUNNING", {}, { workflow_node_metadata: { executionId: CHILD } }),
];

const at = (nodes: VNode[], key: string) => nodes.find((n) => n.key === key)!;
const graph = (i: Inner | undefined) => {
  if (i?.kind !== "graph") throw new Error(`not a graph: ${JSON.stringify(i)}`);
  return i;
};
const summary = (i: Inner | undefined) => {
  if (i?.kind !== "summary") throw new Error(`not a summary: ${JSON.stringify(i)}`);
  return i;
};

/** Every box and chip drawn, at any depth. */
function drawn(boxes: Box[]): number {
  let n = 0;
  for (const b of boxes) {
    n += 1;
    if (b.inner?.kind === "graph") n += drawn(b.inner.g.boxes);
    if (b.inner?.kind === "summary") n += b.inner.chips.length;
  }
  return n;
}

describe("runGraph", () => {
  it("shows the top level closed, with what each node would open into", () => {
    const g = runGraph(parent, [inc], top, new Set(), new Map());
    expect(g.nodes.map((n) => n.key).sort()).toEqual(["end-node", "n0", "n1", "n2", "n3", "n4", "start-node"]);
    expect(Object.fromEntries(g.nodes.filter((n) => n.expandable).map((n) => [n.key, n.what]))).toEqual({
      n1: "subworkflow",
      n2: "dynamic",
      n3: "map",
      n4: "launch plan",
    });
    expect(g.nodes.every((n) => !n.open && !n.inner)).toBe(true);
    expect(g.wants).toEqual([]);
  });

  it("opens a subworkflow in place: its nodes by their unique ids, phases and edges, no start/end", () => {
    const loaded = new Map<string, Expansion>([["n1", { children: [ne("n1-0-start-node", "SUCCEEDED"), ne("n1-0-n0", "SUCCEEDED"), ne("n1-0-n1", "RUNNING")] }]]);
    const g = runGraph(parent, [inc], top, new Set(["n1"]), loaded);
    const n1 = at(g.nodes, "n1");
    expect(n1.open).toBe(true);
    const inner = graph(n1.inner);
    expect(inner.nodes.map((n) => [n.key, n.label, n.phase])).toEqual([
      ["n1-0-n0", "inc", "SUCCEEDED"],
      ["n1-0-n1", "inc", "RUNNING"],
    ]);
    expect(inner.edges).toEqual([{ from: "n1-0-n0", to: "n1-0-n1" }]);
    expect(g.wants).toEqual([{ key: "n1", kind: "sub", exec: null, nodeId: "n1", phase: "RUNNING", child: undefined }]);
  });

  it("draws a subworkflow that has not started from its template, nodes marked not started", () => {
    const g = runGraph(parent, [inc], [ne("n0", "RUNNING")], new Set(["n1"]), new Map());
    const inner = graph(at(g.nodes, "n1").inner);
    expect(inner.nodes.map((n) => [n.key, n.started])).toEqual([
      ["n1-0-n0", false],
      ["n1-0-n1", false],
    ]);
    expect(g.wants).toEqual([]); // nothing to read yet
  });

  it("opens a small dynamic node: children without edges first, then the graph it built", () => {
    const kids = [ne("n2-0-dn0", "SUCCEEDED"), ne("n2-0-dn1", "RUNNING")];
    let g = runGraph(parent, [inc], top, new Set(["n2"]), new Map([["n2", { children: kids }]]));
    let inner = graph(at(g.nodes, "n2").inner);
    expect(inner.nodes.map((n) => n.key)).toEqual(["n2-0-dn0", "n2-0-dn1"]);
    expect(inner.edges).toEqual([]);
    const built = chain("dyn", [task("dn0", "fib_step"), task("dn1", "fib_step")]);
    g = runGraph(parent, [inc], top, new Set(["n2"]), new Map([["n2", { children: kids, wf: built, subs: [] }]]));
    inner = graph(at(g.nodes, "n2").inner);
    expect(inner.nodes.map((n) => [n.key, n.label, n.phase])).toEqual([
      ["n2-0-dn0", "fib_step", "SUCCEEDED"],
      ["n2-0-dn1", "fib_step", "RUNNING"],
    ]);
    expect(inner.edges).toEqual([{ from: "n2-0-dn0", to: "n2-0-dn1" }]);
  });

  it("summarises 6,000 dynamic children: counts per phase and the first few, never 6,000 nodes", () => {
    const kids = Array.from({ length: 6000 }, (_, i) => ne(`n2-0-dn${i}`, i < 5990 ? "SUCCEEDED" : "RUNNING"));
    const g = runGraph(parent, [inc], top, new Set(["n2"]), new Map([["n2", { children: kids, more: true }]]));
    const s = summary(at(g.nodes, "n2").inner);
    expect(s.total).toBe(6000);
    expect(s.more).toBe(true);
    expect(s.counts).toEqual([
      ["SUCCEEDED", 5990],
      ["RUNNING", 10],
    ]);
    expect(s.first).toHaveLength(FIRST_N);
    expect(s.first[0]).toMatchObject({ key: "n2-0-dn0", nodeId: "n2-0-dn0", label: "dn0", selectable: true });
    const p = place(g.nodes, g.edges);
    expect(drawn(p.boxes)).toBeLessThan(7 + FIRST_N + 1);
    const box = p.boxes.find((b) => b.v.key === "n2")!;
    expect(box.inner?.kind === "summary" && box.inner.lines).toEqual(["6,000 children read so far", "5,990 succeeded", "10 running"]);
    expect(box.inner?.kind === "summary" && box.inner.rest).toMatch(/first 24/);
  });

  it("opens a map task into its indices: all of a few, a summary of many", () => {
    const idx = (n: number, failed = 0): ExternalResource[] =>
      Array.from({ length: n }, (_, i) => ({ index: n - 1 - i, phase: i < failed ? "FAILED" : "SUCCEEDED" }));
    let g = runGraph(parent, [inc], top, new Set(["n3"]), new Map([["n3", { indices: idx(4) }]]));
    let s = summary(at(g.nodes, "n3").inner);
    expect(s.first.map((c) => c.label)).toEqual(["[0]", "[1]", "[2]", "[3]"]);
    expect(s.first.every((c) => !c.selectable)).toBe(true);
    let box = place(g.nodes, g.edges).boxes.find((b) => b.v.key === "n3")!;
    expect(box.inner?.kind === "summary" && box.inner.rest).toBeNull();
    g = runGraph(parent, [inc], top, new Set(["n3"]), new Map([["n3", { indices: idx(1000, 3) }]]));
    s = summary(at(g.nodes, "n3").inner);
    expect([s.total, s.counts, s.first.length]).toEqual([1000, [["SUCCEEDED", 997], ["FAILED", 3]], FIRST_N]);
    box = place(g.nodes, g.edges).boxes.find((b) => b.v.key === "n3")!;
    expect(box.inner?.kind === "summary" && box.inner.lines[0]).toBe("1,000 indices");
    expect(g.wants.map((w) => [w.key, w.kind])).toEqual([["n3", "indices"]]);
  });

  it("opens a launch-plan node into its child execution's nodes, keyed apart from the parent's", () => {
    const childWf = chain("scale_wf", [task("n0", "scale")]);
    const g = runGraph(parent, [inc], top, new Set(["n4"]), new Map([["n4", { wf: childWf, children: [ne("n0", "QUEUED")] }]]));
    const inner = graph(at(g.nodes, "n4").inner);
    expect(inner.nodes.map((n) => [n.key, n.nodeId, n.exec, n.phase])).toEqual([["n4>n0", "n0", CHILD, "QUEUED"]]);
    expect(g.wants).toEqual([{ key: "n4", kind: "launch", exec: null, nodeId: "n4", phase: "RUNNING", child: CHILD }]);
  });

  it("opens nested insides and asks for each (a subworkflow in a subworkflow)", () => {
    const outer = chain("inc_four", [
      { id: "n0", workflow_node: { sub_workflow_ref: id("inc_twice") } },
      { id: "n1", workflow_node: { sub_workflow_ref: id("inc_twice") } },
    ]);
    const wf = chain("wf", [{ id: "n0", workflow_node: { sub_workflow_ref: id("inc_four") } }]);
    const loaded = new Map<string, Expansion>([
      ["n0", { children: [ne("n0-0-n0", "SUCCEEDED", { is_parent_node: true }), ne("n0-0-n1", "RUNNING", { is_parent_node: true })] }],
      ["n0-0-n1", { children: [ne("n0-0-n1-0-n0", "RUNNING")] }],
    ]);
    const g = runGraph(wf, [outer, inc], [ne("n0", "RUNNING", { is_parent_node: true })], new Set(["n0", "n0-0-n1"]), loaded);
    const deep = graph(at(graph(at(g.nodes, "n0").inner).nodes, "n0-0-n1").inner);
    expect(deep.nodes.map((n) => [n.key, n.phase])).toEqual([
      ["n0-0-n1-0-n0", "RUNNING"],
      ["n0-0-n1-0-n1", undefined],
    ]);
    expect(g.wants.map((w) => w.key)).toEqual(["n0", "n0-0-n1"]);
  });

  it("opens a branch node into the branch it took, named from the branch's candidates", () => {
    const wf = chain("sign_wf", [
      {
        id: "n0",
        metadata: { name: "sign" },
        branch_node: {
          if_else: {
            case: { then_node: { id: "n0-n0", metadata: { name: "examples.conditionals.square" } } },
            other: [{ then_node: { id: "n0-n1", metadata: { name: "examples.conditionals.negate" } } }],
            else_node: { id: "n0-n2", task_node: { reference_id: id("examples.conditionals.square") } },
          },
        },
      },
    ]);
    // Flyte-RS does not mark a branch node as a parent: its template says it is one.
    const g = runGraph(wf, [], [ne("n0", "SUCCEEDED")], new Set(["n0"]), new Map([["n0", { children: [ne("n0-0-n0-n0", "SUCCEEDED", { spec_node_id: "n0-n0" })] }]]));
    expect(at(g.nodes, "n0").what).toBe("branch");
    expect(graph(at(g.nodes, "n0").inner).nodes.map((n) => [n.key, n.label, n.phase])).toEqual([["n0-0-n0-n0", "square", "SUCCEEDED"]]);
    expect(g.wants.map((w) => [w.key, w.kind])).toEqual([["n0", "children"]]);
  });

  it("says when an inside could not be read or is still loading", () => {
    let g = runGraph(parent, [inc], top, new Set(["n2"]), new Map());
    expect(at(g.nodes, "n2").inner).toEqual({ kind: "note", text: "Loading…" });
    g = runGraph(parent, [inc], top, new Set(["n2"]), new Map([["n2", { error: new Error("boom") }]]));
    expect(at(g.nodes, "n2").inner).toMatchObject({ kind: "note", text: "The inside of n2 could not be read." });
  });
});

describe("place", () => {
  it("makes an open node a box around its inside and moves later layers right", () => {
    const closed = runGraph(parent, [inc], top, new Set(), new Map());
    const loaded = new Map<string, Expansion>([["n1", { children: [ne("n1-0-n0", "SUCCEEDED"), ne("n1-0-n1", "RUNNING")] }]]);
    const opened = runGraph(parent, [inc], top, new Set(["n1"]), loaded);
    const a = place(closed.nodes, closed.edges);
    const b = place(opened.nodes, opened.edges);
    const box = (p: typeof a, k: string) => p.boxes.find((x) => x.v.key === k)!;
    expect(box(a, "n1").w).toBe(NODE_W);
    expect(box(b, "n1").w).toBeGreaterThan(2 * NODE_W); // two inner nodes side by side
    expect(box(b, "n2").x - box(a, "n2").x).toBe(box(b, "n1").w - NODE_W);
    const inner = box(b, "n1").inner;
    expect(inner?.kind === "graph" && inner.g.boxes.map((x) => x.v.key)).toEqual(["n1-0-n0", "n1-0-n1"]);
    expect(b.height).toBeGreaterThan(a.height);
  });
});
