import { describe, expect, it } from "vitest";
import { directoryUri, uploadRoot } from "./upload";

describe("uploads", () => {
  it("names the directory its files were uploaded under", () => {
    expect(directoryUri("file:///data/uploads/p/d/console-1/data/a/b.txt", "data/a/b.txt")).toBe(
      "file:///data/uploads/p/d/console-1/data",
    );
    expect(directoryUri("s3://bucket/uploads/p/d/r/x.csv", "x.csv")).toBe("s3://bucket/uploads/p/d/r/x.csv");
  });

  it("gives each upload its own folder", () => {
    const a = uploadRoot();
    expect(a).toMatch(/^console-[0-9a-f]{20}$/);
    expect(uploadRoot()).not.toBe(a);
  });
});
