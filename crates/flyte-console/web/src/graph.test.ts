import { describe, expect, it } from "vitest";
import { layout, workflowGraph } from "./graph";
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
