import { render } from "preact-render-to-string";
import { afterEach, describe, expect, it, vi } from "vitest";
import { api } from "../api";
import { formatTime } from "../format";
import { parse, paths } from "../router";
import type { ScheduleView } from "../types";
import { ScheduleTable } from "./Schedules";

const base: ScheduleView = {
  project: "p",
  domain: "d",
  launch_plan: "later_lp",
  version: "v1",
  schedule: "every 1 hour",
  kickoff_time_input_arg: "",
  time_zone: "UTC",
  active_since: "2026-12-07T07:00:00Z",
  last_tick: null,
  last_error: "",
  next_ticks: ["2026-12-07T09:00:00Z", "2026-12-07T10:00:00Z", "2026-12-07T11:00:00Z"],
};
const soon: ScheduleView = {
  ...base,
  launch_plan: "soon_lp",
  version: "v2",
  schedule: 'cron "*/5 * * * *"',
  time_zone: "Europe/Amsterdam",
  last_tick: "2026-12-07T08:00:00Z",
  last_error: "launch refused: input x is required",
  next_ticks: ["2026-12-07T08:05:00Z"],
};

describe("ScheduleTable", () => {
  it("lists schedules soonest first, linking to the active launch plan version, with the next tick", () => {
    const html = render(<ScheduleTable list={[base, soon]} />);
    expect(html.indexOf('data-launch-plan="soon_lp"')).toBeLessThan(html.indexOf('data-launch-plan="later_lp"'));
    expect(html).toContain(`href="${paths.entity("p", "d", "launch_plans", "soon_lp", "v2")}"`);
    expect(html).toContain(`<time datetime="2026-12-07T08:05:00Z">${formatTime("2026-12-07T08:05:00Z")}</time>`);
    expect(html).toContain("(Europe/Amsterdam)");
    expect(html).toContain("none yet"); // later_lp never ticked
    expect(html).toContain(formatTime("2026-12-07T08:00:00Z"));
    expect(html).toContain('role="alert"');
    expect(html).toContain("launch refused: input x is required");
    expect(html.match(/role="alert"/g)).toHaveLength(1);
  });

  it("says how to get a schedule when there is none", () => {
    const html = render(<ScheduleTable list={[]} />);
    expect(html).toContain("No active schedules here.");
    expect(html).not.toContain("<table");
  });
});

describe("the schedules page", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("has a route and reads the project and domain's list", async () => {
    expect(parse("/console/projects/p/domains/d/schedules")).toEqual({ page: "schedules", project: "p", domain: "d" });
    expect(paths.schedules("p", "d")).toBe("/console/projects/p/domains/d/schedules");
    vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify({ schedules: [base] }), { status: 200 })));
    await expect(api.schedules("flytesnacks", "development")).resolves.toEqual({ schedules: [base] });
    expect(vi.mocked(fetch).mock.calls[0][0]).toBe("/api/v1/schedules/flytesnacks/development");
  });
});
