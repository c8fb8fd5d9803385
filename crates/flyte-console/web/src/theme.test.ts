import { describe, expect, it } from "vitest";
import { applyTheme, storedTheme } from "./theme";

function memory() {
  const m = new Map<string, string>();
  return {
    getItem: (k: string) => m.get(k) ?? null,
    setItem: (k: string, v: string) => void m.set(k, v),
    removeItem: (k: string) => void m.delete(k),
  };
}

function element() {
  const attrs = new Map<string, string>();
  return {
    setAttribute: (k: string, v: string) => void attrs.set(k, v),
    removeAttribute: (k: string) => void attrs.delete(k),
    attrs,
  };
}

describe("theme", () => {
  it("keeps a chosen theme and forgets it for the system's", () => {
    const store = memory();
    const root = element();
    expect(storedTheme(store)).toBe("system");
    applyTheme("dark", root as unknown as HTMLElement, store);
    expect(root.attrs.get("data-theme")).toBe("dark");
    expect(storedTheme(store)).toBe("dark");
    applyTheme("system", root as unknown as HTMLElement, store);
    expect(root.attrs.has("data-theme")).toBe(false);
    expect(storedTheme(store)).toBe("system");
  });

  it("ignores what it does not know and storage that refuses", () => {
    expect(storedTheme({ getItem: () => "sepia" })).toBe("system");
    expect(
      storedTheme({
        getItem: () => {
          throw new Error("denied");
        },
      }),
    ).toBe("system");
  });
});
