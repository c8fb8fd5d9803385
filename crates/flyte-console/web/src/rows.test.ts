import { describe, expect, it } from "vitest";
import { type Loaded, attemptBars, flattenRows, phaseCounts, windowOf } from "./rows";
import type { NodeExecution, TaskExecution } from "./types";

const node = (id: string, phase: string, started: string, meta: NodeExecution["metadata"] = {}): NodeExecution => ({
  id: { execution_id: { project: "p", domain: "d", name: "e" }, node_id: id },
  closure: { phase, started_at: started },
  metadata: meta,
});

describe("flattenRows", () => {
  const top = [
    node("end-node", "SUCCEEDED", "2026-01-01T00:00:09Z"),
    node("n1", "RUNNING", "2026-01-01T00:00:02Z", { is_array: true }),
    node("n0", "SUCCEEDED", "2026-01-01T00:00:01Z", { is_parent_node: true, is_dynamic: true }),
    node("start-node", "SUCCEEDED", "2026-01-01T00:00:00Z"),
  ];

  it("lists top-level nodes by start, without start/end nodes, collapsed", () => {
    const rows = flattenRows(top, new Set(), new Map());
    expect(rows.map((r) => r.key)).toEqual(["n0", "n1"]);
    expect(rows.every((r) => r.kind === "node" && r.expandable && !r.open)).toBe(true);
  });

  it("expands dynamic children and map indices under their node", () => {
    const loaded = new Map<string, Loaded>([
      [
        "n0",
        {
          nodes: [
            node("n0-0-dn1", "SUCCEEDED", "2026-01-01T00:00:01.2Z"),
            node("n0-0-start-node", "SUCCEEDED", "2026-01-01T00:00:01Z"),
            node("n0-0-dn0", "SUCCEEDED", "2026-01-01T00:00:01.1Z"),
          ],
        },
      ],
      ["n1", { indices: [{ index: 1, phase: "RUNNING" }, { index: 0, phase: "SUCCEEDED" }] }],
    ]);
    const rows = flattenRows(top, new Set(["n0", "n1"]), loaded);
    expect(rows.map((r) => `${r.key}@${r.depth}`)).toEqual([
      "n0@0",
      "n0-0-dn0@1",
      "n0-0-dn1@1",
      "n1@0",
      "n1[0]@1",
      "n1[1]@1",
    ]);
  });

  it("says when children are loading, missing or failed", () => {
    const rows = flattenRows(
      top,
      new Set(["n0", "n1"]),
      new Map<string, Loaded>([["n1", { error: new Error("boom") }]]),
    );
    expect(rows.filter((r) => r.kind === "note").map((r) => r.key)).toEqual(["n0/loading", "n1/error"]);
    const empty = flattenRows(top, new Set(["n0"]), new Map<string, Loaded>([["n0", { nodes: [] }]]));
    expect(empty.map((r) => r.key)).toEqual(["n0", "n0/none", "n1"]);
  });

  it("flattens 6,000 children fast enough to redo on every update", () => {
    const many = Array.from({ length: 6000 }, (_, i) => node(`n0-0-dn${i}`, "SUCCEEDED", `2026-01-01T00:00:0${i % 10}Z`));
    const rows = flattenRows(top, new Set(["n0"]), new Map<string, Loaded>([["n0", { nodes: many }]]));
    expect(rows.length).toBe(6002);
  });
});

describe("windowOf", () => {
  it("draws the rows in view plus the overscan, clamped to the list", () => {
    expect(windowOf(0, 600, 30, 6000, 10)).toEqual({ start: 0, end: 31 });
    expect(windowOf(3000, 600, 30, 6000, 10)).toEqual({ start: 90, end: 131 });
    expect(windowOf(1e9, 600, 30, 6000, 10)).toEqual({ start: 5969, end: 6000 });
    expect(windowOf(0, 600, 30, 5, 10)).toEqual({ start: 0, end: 5 });
    expect(windowOf(-50, 0, 30, 0)).toEqual({ start: 0, end: 0 });
  });
});

describe("phaseCounts", () => {
  it("counts members by phase, largest first", () => {
    expect(phaseCounts(["SUCCEEDED", "RUNNING", "SUCCEEDED", undefined])).toEqual([
      ["SUCCEEDED", 2],
      ["RUNNING", 1],
      ["UNDEFINED", 1],
    ]);
  });
});

describe("attemptBars", () => {
  const attempt = (n: number, phase: string, started?: string, duration?: string): TaskExecution => ({
    id: { retry_attempt: n, task_id: { project: "p", domain: "d", name: "t", version: "v" } },
    closure: { phase, started_at: started, duration },
  });

  it("gives each attempt that started its own span, a running one up to now", () => {
    const now = Date.parse("2026-01-01T00:00:10Z");
    const bars = attemptBars(
      [
        attempt(1, "RUNNING", "2026-01-01T00:00:04Z", "0s"),
        attempt(0, "FAILED", "2026-01-01T00:00:00Z", "3s"),
        attempt(2, "QUEUED"),
      ],
      now,
    );
    expect(bars).toEqual([
      { attempt: 0, phase: "FAILED", start: now - 10_000, end: now - 7_000 },
      { attempt: 1, phase: "RUNNING", start: now - 6_000, end: now },
    ]);
  });
});
