import { describe, expect, it } from "vitest";
import { AFTER_TICK_MS, afterNextTick, MAX_WAIT_MS, refreshDelay, RETRY_MS, type Clock } from "./scheduleLive";

const NOW = Date.parse("2026-12-07T08:00:00Z");

describe("refreshDelay", () => {
  it("waits until just after the soonest next tick", () => {
    expect(refreshDelay(["2026-12-07T08:05:00Z", "2026-12-07T08:01:00Z", undefined], NOW)).toBe(60_000 + AFTER_TICK_MS);
  });
  it("reads again soon when a tick is past but not recorded, never when nothing ticks, at most hourly", () => {
    expect(refreshDelay(["2026-12-07T07:59:59Z"], NOW)).toBe(RETRY_MS);
    expect(refreshDelay([], NOW)).toBeNull();
    expect(refreshDelay([null, "garbage"], NOW)).toBeNull();
    expect(refreshDelay(["2027-12-07T08:00:00Z"], NOW)).toBe(MAX_WAIT_MS);
  });
});

describe("afterNextTick", () => {
  function fakeClock() {
    const timers: { fn: () => void; at: number }[] = [];
    const clock: Clock & { hiddenNow: boolean; advance: (ms: number) => void; t: number } = {
      t: NOW,
      hiddenNow: false,
      now: () => clock.t,
      hidden: () => clock.hiddenNow,
      setTimeout: (fn, ms) => {
        const timer = { fn, at: clock.t + ms };
        timers.push(timer);
        return timer;
      },
      clearTimeout: (t) => timers.splice(timers.indexOf(t as never), 1),
      advance: (ms) => {
        clock.t += ms;
        for (const timer of timers.filter((x) => x.at <= clock.t)) {
          timers.splice(timers.indexOf(timer), 1);
          timer.fn();
        }
      },
    };
    return clock;
  }

  it("re-reads once the tick has passed, not before", () => {
    const clock = fakeClock();
    let reads = 0;
    afterNextTick(["2026-12-07T08:01:00Z"], clock, () => reads++);
    clock.advance(60_000);
    expect(reads).toBe(0);
    clock.advance(AFTER_TICK_MS);
    expect(reads).toBe(1);
  });

  it("holds the re-read while the page is hidden and does it when shown", () => {
    const clock = fakeClock();
    let reads = 0;
    const t = afterNextTick(["2026-12-07T08:01:00Z"], clock, () => reads++);
    clock.hiddenNow = true;
    clock.advance(120_000);
    expect(reads).toBe(0);
    t.shown(); // still hidden
    expect(reads).toBe(0);
    clock.hiddenNow = false;
    t.shown();
    t.shown();
    expect(reads).toBe(1);
  });

  it("does nothing once cancelled (the schedules were read again)", () => {
    const clock = fakeClock();
    let reads = 0;
    afterNextTick(["2026-12-07T08:01:00Z"], clock, () => reads++).cancel();
    clock.advance(120_000);
    expect(reads).toBe(0);
  });
});
