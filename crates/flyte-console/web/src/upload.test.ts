import { describe, expect, it, vi } from "vitest";
import { datasetPlan, directoryUri, uploadDataset, uploadRoot } from "./upload";

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

describe("structured dataset uploads", () => {
  it("lays a CSV out as flytekit's pandas encoder does (a folder holding .csv), Parquet as it is", () => {
    expect(datasetPlan("sales 2024.csv", "")).toEqual({ path: "sales_2024/.csv", format: "csv", folder: true });
    expect(datasetPlan("t.parquet", "")).toEqual({ path: "t.parquet", format: "parquet", folder: false });
    expect(datasetPlan("t.PQ", "")).toEqual({ path: "t.PQ", format: "parquet", folder: false });
    expect(datasetPlan("t.arrow", "arrow")).toEqual({ path: "t.arrow", format: "arrow", folder: false });
  });

  it("puts the file through the data proxy and names the dataset's folder", async () => {
    const calls: [string, RequestInit | undefined][] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (url: string, init?: RequestInit) => {
        calls.push([url, init]);
        if (url === "/api/v1/dataproxy/artifact_urn") {
          const body = JSON.parse(String(init?.body));
          return new Response(
            JSON.stringify({ signed_url: `/put/${body.filename}`, native_url: `s3://b/uploads/p/d/${body.filename_root}/${body.filename}` }),
          );
        }
        return new Response("", { status: 201 });
      }),
    );
    try {
      const file = new File(["a\n1\n"], "rows.csv");
      const r = await uploadDataset("p", "d", file, "");
      expect(r.format).toBe("csv");
      expect(r.uri).toMatch(/^s3:\/\/b\/uploads\/p\/d\/console-[0-9a-f]{20}\/rows$/);
      expect(calls[1][0]).toBe("/put/rows/.csv");
      expect(calls[1][1]?.method).toBe("PUT");
    } finally {
      vi.unstubAllGlobals();
    }
  });
});
