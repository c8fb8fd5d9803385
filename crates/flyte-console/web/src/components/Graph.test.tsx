import { render } from "preact-render-to-string";
import { describe, expect, it } from "vitest";
import { place, type VNode } from "../runGraph";
import type { CompiledWorkflow } from "../types";
import { PlacedGraph } from "./Graph";
import { StaticGraph } from "./RunGraph";

const node = (key: string, extra: Partial<VNode> = {}): VNode => ({
  key,
  nodeId: key,
  exec: null,
  label: key,
  phase: "SUCCEEDED",
  started: true,
  special: false,
  expandable: false,
  open: false,
  ...extra,
});

describe("PlacedGraph", () => {
  it("draws a closed node with a + button and an open one as a box with its inside", () => {
    const open = node("n1", {
      label: "inc_twice",
      what: "subworkflow",
      expandable: true,
      open: true,
      inner: { kind: "graph", nodes: [node("n1-0-n0", { phase: "RUNNING" })], edges: [] },
    });
    const g = place([node("n0", { expandable: true, what: "dynamic" }), open], [{ from: "n0", to: "n1" }]);
    const html = render(<PlacedGraph g={g} selected="n1-0-n0" onSelect={() => {}} onToggle={() => {}} />);
    expect(html).toContain('aria-label="Expand n0 in the graph"');
    expect(html).toContain('aria-expanded="false"');
    expect(html).toContain('aria-label="Collapse n1 in the graph"');
    expect(html).toContain('data-cluster="n1"');
    expect(html).toMatch(/class="node ph-run selected" data-node-id="n1-0-n0" data-phase="RUNNING"/);
    expect(html).toContain(">n1-0-n0 · running<");
  });

  it("keeps the end of a long unique id so that id and phase fit the node", () => {
    const html = render(<PlacedGraph g={place([node("n1-0-n0-0-n0-0-dn12")], [])} selected={null} />);
    const sub = html.match(/class="node-sub">([^<]*)</)![1];
    expect(sub).toBe("…0-n0-0-dn12 · succeeded");
    expect(sub.length).toBeLessThanOrEqual(24);
  });

  it("draws a summary's counts and chips; index chips are not buttons", () => {
    const map = node("n3", {
      what: "map",
      expandable: true,
      open: true,
      inner: {
        kind: "summary",
        what: "indices",
        total: 1000,
        more: false,
        counts: [["SUCCEEDED", 998], ["FAILED", 2]],
        first: [0, 1, 2].map((i) => ({ key: `n3[${i}]`, nodeId: "n3", exec: null, label: `[${i}]`, phase: "SUCCEEDED", selectable: false })),
      },
    });
    const html = render(<PlacedGraph g={place([map], [])} selected={null} onSelect={() => {}} onToggle={() => {}} />);
    expect(html).toContain(">1,000 indices<");
    expect(html).toContain(">998 succeeded<");
    expect(html).toContain(">2 failed<");
    expect(html.match(/role="img"/g)).toHaveLength(3);
    expect(html).toContain("the first 3; all in the node table");
  });
});

describe("StaticGraph", () => {
  it("offers a workflow version's subworkflow nodes to open, without run states", () => {
    const ref = { project: "p", domain: "d", name: "sub", version: "v" };
    const wf = (name: string, nodes: CompiledWorkflow["template"]["nodes"]): CompiledWorkflow => ({
      template: { id: { ...ref, name }, nodes },
      connections: { upstream: Object.fromEntries(nodes.map((n) => [n.id, { ids: ["start-node"] }])) },
    });
    const html = render(
      <StaticGraph
        closure={{
          primary: wf("main", [{ id: "n0", workflow_node: { sub_workflow_ref: ref } }, { id: "n1", task_node: { reference_id: ref } }]),
          sub_workflows: [wf("sub", [{ id: "n0", task_node: { reference_id: ref } }])],
        }}
      />,
    );
    expect(html).toContain('aria-label="Expand n0 in the graph"');
    expect(html).not.toContain("Expand n1");
    expect(html).not.toContain("not started");
  });
});
