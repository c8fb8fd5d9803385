import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { appendTail, eventPhase, throttle, watchPaths } from "./live";

describe("throttle", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("runs at once, folds a burst into one trailing call, then rests", () => {
    const fn = vi.fn();
    const t = throttle(fn, 500);
    t.call();
    expect(fn).toHaveBeenCalledTimes(1);
    t.call();
    t.call();
    t.call();
    expect(fn).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(500);
    expect(fn).toHaveBeenCalledTimes(2);
    vi.advanceTimersByTime(2000);
    expect(fn).toHaveBeenCalledTimes(2);
    t.call();
    expect(fn).toHaveBeenCalledTimes(3);
  });

  it("cancel drops a pending call", () => {
    const fn = vi.fn();
    const t = throttle(fn, 500);
    t.call();
    t.call();
    t.cancel();
    vi.advanceTimersByTime(1000);
    expect(fn).toHaveBeenCalledTimes(1);
  });
});

describe("events", () => {
  it("reads the phase an event carries", () => {
    expect(eventPhase('{"phase":"SUCCEEDED","nodes":[]}')).toBe("SUCCEEDED");
    expect(eventPhase('{"nodes":[{"nodeId":"n0","phase":"RUNNING"}]}')).toBeUndefined();
    expect(eventPhase("{}")).toBeUndefined();
    expect(eventPhase("not json")).toBeUndefined();
  });

  it("builds watch paths with escaped segments", () => {
    expect(watchPaths.execution({ project: "p", domain: "d", name: "a b" })).toBe("/api/v1/watch/executions/p/d/a%20b");
    expect(watchPaths.executions("p", "d")).toBe("/api/v1/watch/executions/p/d");
  });
});

describe("log tail", () => {
  it("keeps the end and counts what it dropped", () => {
    let t = { text: "", dropped: 0 };
    t = appendTail(t, "abc\n", 6);
    expect(t).toEqual({ text: "abc\n", dropped: 0 });
    t = appendTail(t, "defg\n", 6);
    expect(t).toEqual({ text: "\ndefg\n", dropped: 3 });
    t = appendTail(t, "h", 6);
    expect(t).toEqual({ text: "defg\nh", dropped: 4 });
  });
});
