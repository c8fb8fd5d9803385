import { encode } from "@msgpack/msgpack";
import { describe, expect, it } from "vitest";
import { literalView, typeText, viewText } from "./literals";
import type { Literal } from "./types";

const prim = (p: object): Literal => ({ scalar: { primitive: p } });
const text = (l: Literal) => viewText(literalView(l));

describe("literalView", () => {
  it("renders primitives as the gateway sends them", () => {
    expect(text(prim({ integer: "17" }))).toBe("17");
    expect(text(prim({ float_value: 4.25 }))).toBe("4.25");
    expect(text(prim({ float_value: "NaN" }))).toBe("NaN");
    expect(text(prim({ string_value: "hello world" }))).toBe("hello world");
    expect(text(prim({ string_value: "" }))).toBe("");
    expect(text(prim({ boolean: false }))).toBe("false");
    expect(text(prim({ datetime: "2026-12-07T03:23:19Z" }))).toBe("2026-12-07T03:23:19Z");
    expect(text(prim({ duration: "4.5s" }))).toBe("4.5s");
    expect(literalView(prim({ integer: "0" }))).toEqual({ kind: "value", text: "0", type: "int" });
  });

  it("renders collections and maps, maps sorted by key", () => {
    const lit: Literal = {
      map: {
        literals: {
          b: { collection: { literals: [prim({ integer: "1" }), prim({ integer: "2" })] } },
          a: { collection: { literals: [] } },
        },
      },
    };
    expect(text(lit)).toBe("{a: [], b: [1, 2]}");
  });

  it("renders blobs, structured datasets and offloaded literals as their URIs", () => {
    const file: Literal = { scalar: { blob: { uri: "s3://b/f.csv", metadata: { type: { format: "csv", dimensionality: "SINGLE" } } } } };
    expect(literalView(file)).toEqual({ kind: "link", uri: "s3://b/f.csv", type: "file", detail: "format csv" });
    const dir: Literal = { scalar: { blob: { uri: "file:///d", metadata: { type: { dimensionality: "MULTIPART" } } } } };
    expect(literalView(dir)).toMatchObject({ kind: "link", type: "directory", uri: "file:///d" });
    const sd: Literal = {
      scalar: {
        structured_dataset: {
          uri: "file:///sd",
          metadata: { structured_dataset_type: { format: "parquet", columns: [{ name: "x" }, { name: "y" }] } },
        },
      },
    };
    expect(literalView(sd)).toEqual({
      kind: "link",
      uri: "file:///sd",
      type: "structured dataset",
      detail: "format parquet; columns x, y",
    });
    expect(text({ offloaded_metadata: { uri: "file:///big.pb", size_bytes: "123" } })).toBe("file:///big.pb");
  });

  it("renders none, unions, generic structs and errors", () => {
    expect(text({ scalar: { none_type: {} } })).toBe("None");
    expect(text({ scalar: { union: { value: prim({ integer: "3" }) } } })).toBe("3");
    expect(literalView({ scalar: { generic: { a: 1, b: [true] } } })).toEqual({
      kind: "json",
      value: { a: 1, b: [true] },
      type: "struct",
    });
    expect(text({ scalar: { error: { message: "boom", failed_node_id: "n0" } } })).toBe("error: boom");
    expect(text({})).toBe("None");
    expect(text(null as unknown as Literal)).toBe("None");
  });

  it("decodes flytekit's msgpack dataclasses; other binaries show their size", () => {
    const bytes = encode({ name: "x", values: [1, 2], nested: { ok: true } });
    const b64 = btoa(String.fromCharCode(...bytes));
    expect(literalView({ scalar: { binary: { value: b64, tag: "msgpack" } } })).toEqual({
      kind: "json",
      value: { name: "x", values: [1, 2], nested: { ok: true } },
      type: "msgpack",
    });
    expect(text({ scalar: { binary: { value: btoa("abc"), tag: "raw" } } })).toBe("3 bytes (raw)");
    // Bytes tagged msgpack that are not msgpack do not break the page.
    expect(literalView({ scalar: { binary: { value: btoa("\xc1"), tag: "msgpack" } } }).kind).toBe("value");
  });
});

describe("typeText", () => {
  it("spells types the way a flytekit user wrote them", () => {
    expect(typeText({ simple: "INTEGER" })).toBe("int");
    expect(typeText({ collection_type: { map_value_type: { simple: "FLOAT" } } })).toBe("list[dict[str, float]]");
    expect(typeText({ blob: { dimensionality: "MULTIPART" } })).toBe("FlyteDirectory");
    expect(typeText({ blob: { dimensionality: "SINGLE" } })).toBe("FlyteFile");
    expect(typeText({ enum_type: { values: ["red", "blue"] } })).toBe("enum(red | blue)");
    expect(typeText({ union_type: { variants: [{ simple: "INTEGER" }, { simple: "NONE" }] } })).toBe("int | None");
    expect(typeText({ simple: "STRUCT", structure: { tag: "Stats" } })).toBe("Stats");
    expect(typeText(undefined)).toBe("?");
  });
});
