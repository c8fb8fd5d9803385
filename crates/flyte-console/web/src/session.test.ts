import { afterEach, describe, expect, it, vi } from "vitest";
import { api, get } from "./api";

// With authentication on the console is signed in by a session cookie (docs/auth.md, "The
// console"): state-changing calls echo the readable CSRF cookie, and a 401 means sign in again.
describe("session", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("sends the CSRF cookie's value on state-changing calls only, and goes to the login on 401", async () => {
    const calls: [string, RequestInit | undefined][] = [];
    vi.stubGlobal("document", { cookie: "theme=dark; flyte_csrf=tok-123; other=x" });
    const assign = vi.fn();
    vi.stubGlobal("window", { location: { assign, pathname: "/console/projects/p/domains/d/executions", search: "?phase=FAILED" } });
    vi.stubGlobal(
      "fetch",
      vi.fn(async (url: string, init?: RequestInit) => {
        calls.push([url, init]);
        return url.endsWith("/expired") ? new Response("{}", { status: 401 }) : new Response("{}");
      }),
    );
    await api.relaunch({ project: "p", domain: "d", name: "e" });
    await get("projects");
    const headers = (i: number) => calls[i][1]?.headers as Record<string, string>;
    expect(headers(0)["x-csrf-token"]).toBe("tok-123");
    expect(headers(1)["x-csrf-token"]).toBeUndefined();
    expect(assign).not.toHaveBeenCalled();
    await expect(get("expired")).rejects.toThrow();
    expect(assign).toHaveBeenCalledWith(
      `/login?redirect_url=${encodeURIComponent("/console/projects/p/domains/d/executions?phase=FAILED")}`,
    );
  });
});
