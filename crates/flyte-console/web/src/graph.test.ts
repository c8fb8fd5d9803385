import { describe, expect, it } from "vitest";
import { crossings, layout, workflowGraph } from "./graph";
import { parse } from "./router";

describe("layout", () => {
  it("puts each node one layer after its deepest upstream, end last", () => {
    const g = workflowGraph({
      template: {
        id: { project: "p", domain: "d", name: "wf", version: "v" },
        nodes: [
          { id: "start-node" },
          { id: "n0", metadata: { name: "examples.basics.add" } },
          { id: "n1", metadata: { name: "examples.basics.add" } },
          { id: "n2", metadata: { name: "examples.basics.stats" } },
        ],
      },
      connections: {
        upstream: {
          n0: { ids: ["start-node"] },
          n1: { ids: ["n0", "start-node"] },
          n2: { ids: ["n0", "n1", "start-node"] },
          "end-node": { ids: ["n2"] },
        },
      },
    });
    expect(g.labels.n2).toBe("stats");
    expect(g.labels["start-node"]).toBe("start");
    const l = layout(g.ids, g.edges, g.labels);
    const layer = Object.fromEntries(l.nodes.map((n) => [n.id, n.layer]));
    expect(layer).toEqual({ "start-node": 0, n0: 1, n1: 2, n2: 3, "end-node": 4 });
    expect(l.edges).toHaveLength(7);
    expect(l.width).toBeGreaterThan(0);
  });

  it("survives a cycle and an empty graph", () => {
    expect(layout(["a", "b"], [{ from: "a", to: "b" }, { from: "b", to: "a" }]).nodes).toHaveLength(2);
    expect(layout([], []).nodes).toHaveLength(0);
  });
});

describe("routes", () => {
  it("parses the links flytekit prints", () => {
    expect(parse("/console/projects/flytesnacks/domains/development/executions/abc")).toEqual({
      page: "execution",
      project: "flytesnacks",
      domain: "development",
      name: "abc",
    });
    expect(parse("/console/projects/p/domains/d/tasks/my.task/version/v%201")).toEqual({
      page: "entity",
      project: "p",
      domain: "d",
      kind: "tasks",
      name: "my.task",
      version: "v 1",
    });
    expect(parse("/console/")).toEqual({ page: "home" });
    expect(parse("/console/projects/p/domains/d")).toEqual({ page: "executions", project: "p", domain: "d" });
    expect(parse("/console/nope").page).toBe("notfound");
  });
});

describe("edge crossings", () => {
  // A dynamic node's inside: three steps from the start; the first and third feed one sum,
  // the second another. Ordered by upstreams alone (names break the tie) two edges cross.
  const edges = [
    { from: "start-node", to: "x1" },
    { from: "start-node", to: "x2" },
    { from: "start-node", to: "x3" },
    { from: "x1", to: "y1" },
    { from: "x3", to: "y1" },
    { from: "x2", to: "y2" },
    { from: "y1", to: "end-node" },
    { from: "y2", to: "end-node" },
  ];
  const ids = ["start-node", "x1", "x2", "x3", "y1", "y2", "end-node"];
  const layersOf = (l: ReturnType<typeof layout>) => {
    const out: string[][] = [];
    for (const n of [...l.nodes].sort((a, b) => a.row - b.row)) (out[n.layer] ??= []).push(n.id);
    return out;
  };

  it("counts the pairs of edges that cross between two layers", () => {
    expect(crossings([["a", "b"], ["c", "d"]], [{ from: "a", to: "d" }, { from: "b", to: "c" }])).toBe(1);
    expect(crossings([["a", "b"], ["c", "d"]], [{ from: "a", to: "c" }, { from: "b", to: "d" }])).toBe(0);
  });

  it("sweeps both ways until the graph crosses no edge it need not", () => {
    const l = layout(ids, edges);
    expect(crossings(layersOf(l), edges)).toBe(0);
    // x1 and x3 feed y1, so they sit together.
    const row = Object.fromEntries(l.nodes.map((n) => [n.id, n.row]));
    expect(Math.abs(row.x1 - row.x3)).toBe(1);
  });
});
