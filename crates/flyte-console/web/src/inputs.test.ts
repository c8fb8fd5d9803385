import { describe, expect, it } from "vitest";
import { controlFor, datasetOf, inputText, parseDuration, parseInput, withDatasetFormat } from "./inputs";
import type { LiteralType } from "./types";

const INT: LiteralType = { simple: "INTEGER" };
const STR: LiteralType = { simple: "STRING" };
const OPT_INT: LiteralType = {
  union_type: { variants: [{ simple: "INTEGER", structure: { tag: "int" } }, { simple: "NONE", structure: { tag: "none" } }] },
};
const value = (t: LiteralType, text: string) => {
  const r = parseInput(t, text);
  if (!r.ok) throw new Error(r.error);
  return r.literal;
};
const error = (t: LiteralType, text: string) => {
  const r = parseInput(t, text);
  if (r.ok) throw new Error(`accepted ${JSON.stringify(r.literal)}`);
  return r.error;
};

describe("parseInput", () => {
  it("parses scalars into the gateway's literal JSON", () => {
    expect(value(INT, " 42 ")).toEqual({ scalar: { primitive: { integer: "42" } } });
    expect(value(INT, "-9007199254740993")).toEqual({ scalar: { primitive: { integer: "-9007199254740993" } } });
    expect(value({ simple: "FLOAT" }, "0.5")).toEqual({ scalar: { primitive: { float_value: 0.5 } } });
    expect(value(STR, "  keep spaces ")).toEqual({ scalar: { primitive: { string_value: "  keep spaces " } } });
    expect(value(STR, "")).toEqual({ scalar: { primitive: { string_value: "" } } });
    expect(value({ simple: "BOOLEAN" }, "true")).toEqual({ scalar: { primitive: { boolean: true } } });
    expect(value({ simple: "DATETIME" }, "2024-01-01T00:00:00Z")).toEqual({
      scalar: { primitive: { datetime: "2024-01-01T00:00:00.000Z" } },
    });
    expect(value({ simple: "DURATION" }, "1h30m")).toEqual({ scalar: { primitive: { duration: "5400s" } } });
  });

  it("names what it expected when the text does not fit", () => {
    expect(error(INT, "4.5")).toContain("whole number");
    expect(error(INT, "")).toContain("required");
    expect(error({ simple: "FLOAT" }, "abc")).toContain("number");
    expect(error({ simple: "BOOLEAN" }, "maybe")).toContain("true or false");
    expect(error({ simple: "DATETIME" }, "yesterday")).toContain("date");
    expect(error({ simple: "DURATION" }, "5 minutes")).toContain("duration");
    expect(error({ enum_type: { values: ["RED", "GREEN"] } }, "BLUE")).toContain("RED, GREEN");
  });

  it("wraps optional values in the union with their variant; empty is None", () => {
    expect(value(OPT_INT, "3")).toEqual({
      scalar: { union: { value: { scalar: { primitive: { integer: "3" } } }, type: OPT_INT.union_type!.variants[0] } },
    });
    expect(value(OPT_INT, "")).toEqual({
      scalar: { union: { value: { scalar: { none_type: {} } }, type: OPT_INT.union_type!.variants[1] } },
    });
    expect(error({ union_type: { variants: [INT] } }, "")).toContain("required");
  });

  it("reads lists, dicts and structs as JSON, checking element types", () => {
    const lt: LiteralType = { collection_type: { map_value_type: INT } };
    expect(value(lt, '[{"a": 1}, {}]')).toEqual({
      collection: {
        literals: [{ map: { literals: { a: { scalar: { primitive: { integer: "1" } } } } } }, { map: { literals: {} } }],
      },
    });
    expect(error(lt, '[{"a": "x"}]')).toContain("at [0].a");
    expect(error(lt, "[1,")).toContain("JSON");
    expect(value({ simple: "STRUCT" }, '{"x": [1, 2]}')).toEqual({ scalar: { generic: { x: [1, 2] } } });
    expect(error({ simple: "STRUCT" }, "[1]")).toContain("object");
  });

  it("takes files and directories as URIs", () => {
    expect(value({ blob: { format: "", dimensionality: "SINGLE" } }, "s3://b/k")).toEqual({
      scalar: { blob: { uri: "s3://b/k", metadata: { type: { format: "", dimensionality: "SINGLE" } } } },
    });
  });
});

describe("form text", () => {
  it("picks a control per type", () => {
    expect(controlFor(INT)).toBe("int");
    expect(controlFor(OPT_INT)).toBe("int");
    expect(controlFor({ simple: "BOOLEAN" })).toBe("bool");
    expect(controlFor({ enum_type: { values: ["A"] } })).toBe("enum");
    expect(controlFor({ collection_type: INT })).toBe("json");
    expect(controlFor({ blob: {} })).toBe("uri");
  });

  it("round-trips defaults and earlier inputs into the fields", () => {
    expect(inputText(INT, { scalar: { primitive: { integer: "7" } } })).toBe("7");
    expect(inputText(OPT_INT, { scalar: { union: { value: { scalar: { none_type: {} } } } } })).toBe("");
    const list = { collection: { literals: [{ scalar: { primitive: { string_value: "a b" } } }] } };
    expect(inputText({ collection_type: STR }, list)).toBe('["a b"]');
    expect(value({ collection_type: STR }, inputText({ collection_type: STR }, list))).toEqual(list);
    expect(parseDuration("250ms")).toBe(0.25);
    expect(parseDuration("90")).toBe(90);
  });
});

describe("structured datasets", () => {
  const SD: LiteralType = { structured_dataset_type: { format: "", columns: [] } };
  it("builds the literal flytekit reads: the URI and the format in its metadata", () => {
    expect(value(withDatasetFormat(SD, " csv "), "s3://b/uploads/p/d/r/rows")).toEqual({
      scalar: { structured_dataset: { uri: "s3://b/uploads/p/d/r/rows", metadata: { structured_dataset_type: { format: "csv", columns: [] } } } },
    });
    expect(value(withDatasetFormat(SD, ""), "file:///x.parquet")).toEqual({
      scalar: { structured_dataset: { uri: "file:///x.parquet", metadata: { structured_dataset_type: { format: "", columns: [] } } } },
    });
    expect(error(SD, " ")).toContain("required");
    expect(controlFor(SD)).toBe("uri");
  });

  it("finds the dataset inside an optional and sets its format there", () => {
    const OPT_SD: LiteralType = { union_type: { variants: [SD, { simple: "NONE" }] } };
    expect(datasetOf(OPT_SD)).toEqual({ format: "", columns: [] });
    expect(datasetOf(INT)).toBeUndefined();
    const lit = value(withDatasetFormat(OPT_SD, "parquet"), "s3://b/k");
    expect(lit.scalar?.union?.value.scalar?.structured_dataset?.metadata?.structured_dataset_type?.format).toBe("parquet");
    expect(value(OPT_SD, "").scalar?.union?.value).toEqual({ scalar: { none_type: {} } });
  });
});
