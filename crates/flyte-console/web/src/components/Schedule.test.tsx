import { render } from "preact-render-to-string";
import { afterEach, describe, expect, it, vi } from "vitest";
import { api, ApiError } from "../api";
import { formatTime } from "../format";
import type { Execution, ScheduleView } from "../types";
import { ScheduleBlock, ScheduledTable } from "./Schedule";

const SCHED: ScheduleView = {
  project: "flytesnacks",
  domain: "development",
  launch_plan: "every_minute_lp",
  version: "v1",
  schedule: "every 1 minute",
  kickoff_time_input_arg: "kickoff_time",
  time_zone: "UTC",
  active_since: "2026-12-07T07:14:43.120Z",
  last_tick: "2026-12-07T07:15:43Z",
  last_error: "",
  next_ticks: ["2026-12-07T07:16:43Z", "2026-12-07T07:17:43Z", "2026-12-07T07:18:43Z"],
};

describe("ScheduleBlock", () => {
  it("shows the schedule, its kickoff input and the next three ticks", () => {
    const html = render(<ScheduleBlock schedule={SCHED} />);
    expect(html).toContain("every 1 minute");
    expect(html).toContain("kickoff_time");
    for (const t of SCHED.next_ticks) expect(html).toContain(`datetime="${t}"`);
    expect(html.match(/<li>/g)).toHaveLength(3);
    expect(html).not.toContain("schedule-error");
    expect(html).not.toContain("none yet");
  });

  it("highlights the last error and says when nothing ticked yet", () => {
    const html = render(<ScheduleBlock schedule={{ ...SCHED, last_tick: null, last_error: "launch refused: input x is required" }} />);
    expect(html).toContain('data-testid="schedule-error"');
    expect(html).toContain("launch refused: input x is required");
    expect(html).toContain("none yet");
  });

  it("names a time zone other than UTC", () => {
    expect(render(<ScheduleBlock schedule={{ ...SCHED, time_zone: "Europe/Amsterdam" }} />)).toContain(
      "every 1 minute (Europe/Amsterdam)",
    );
  });

  it("shows nothing without an active schedule or on another version's page", () => {
    expect(render(<ScheduleBlock schedule={null} />)).toBe("");
    expect(render(<ScheduleBlock schedule={SCHED} version="v0" />)).toBe("");
    expect(render(<ScheduleBlock schedule={SCHED} version="v1" />)).toContain("every 1 minute");
  });

  it("shows other errors as errors", () => {
    const html = render(<ScheduleBlock error={new ApiError(500, "store unavailable")} />);
    expect(html).toContain('role="alert"');
    expect(html).toContain("store unavailable");
  });
});

describe("ScheduledTable", () => {
  it("lists mode and scheduled time", () => {
    const e: Execution = {
      id: { project: "p", domain: "d", name: "abc" },
      spec: { launch_plan: { project: "p", domain: "d", name: "lp", version: "v1" }, metadata: { mode: "SCHEDULED", scheduled_at: "2026-12-07T07:16:43Z" } },
      closure: { phase: "SUCCEEDED" },
    };
    const html = render(<ScheduledTable list={[e]} />);
    expect(html).toContain("scheduled");
    expect(html).toContain("abc");
    expect(html).toContain(formatTime("2026-12-07T07:16:43Z"));
    expect(render(<ScheduledTable list={[]} />)).toContain("No scheduled executions yet.");
  });
});

describe("api.schedule", () => {
  afterEach(() => vi.unstubAllGlobals());
  const reply = (status: number, body: unknown) =>
    vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify(body), { status })));

  it("is null when the launch plan has no active schedule (404)", async () => {
    reply(404, { message: "launch plan p/d/lp has no active schedule" });
    await expect(api.schedule("p", "d", "lp")).resolves.toBeNull();
  });

  it("reads the schedule at its path", async () => {
    reply(200, SCHED);
    await expect(api.schedule("flytesnacks", "development", "every_minute_lp")).resolves.toEqual(SCHED);
    expect(vi.mocked(fetch).mock.calls[0][0]).toBe("/api/v1/schedules/flytesnacks/development/every_minute_lp");
  });

  it("passes other errors on", async () => {
    reply(500, { message: "store unavailable" });
    await expect(api.schedule("p", "d", "lp")).rejects.toMatchObject({ status: 500, message: "store unavailable" });
  });
});
