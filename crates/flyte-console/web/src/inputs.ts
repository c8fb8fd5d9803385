// Launch-form text -> Flyte literals (the gateway's JSON), per the interface's types; and
// literals -> form text for defaults and relaunches. Pure functions: inputs.test.ts.
import type { Literal, LiteralType } from "./types";
import { literalView, viewText } from "./literals";

export type Parsed = { ok: true; literal: Literal } | { ok: false; error: string };

const ok = (literal: Literal): Parsed => ({ ok: true, literal });
const bad = (error: string): Parsed => ({ ok: false, error });
const prim = (p: object): Literal => ({ scalar: { primitive: p } });
const NONE: Literal = { scalar: { none_type: {} } };

/** What kind of control a type gets in the form. */
export type Control = "int" | "float" | "str" | "bool" | "datetime" | "duration" | "enum" | "uri" | "json" | "none";

export function controlFor(t: LiteralType): Control {
  if (t.enum_type) return "enum";
  if (t.blob || t.structured_dataset_type || t.schema) return "uri";
  if (t.union_type) {
    const others = t.union_type.variants.filter((v) => v.simple !== "NONE");
    // Optional[X] of a simple X is X's control, empty meaning None.
    if (others.length === 1 && others[0].simple && others[0].simple !== "STRUCT") return controlFor(others[0]);
    return "json";
  }
  switch (t.simple) {
    case "INTEGER":
      return "int";
    case "FLOAT":
      return "float";
    case "STRING":
      return "str";
    case "BOOLEAN":
      return "bool";
    case "DATETIME":
      return "datetime";
    case "DURATION":
      return "duration";
    case "NONE":
      return "none";
    default:
      return "json";
  }
}

/** A structured dataset input's type (also inside an optional). */
export function datasetOf(t: LiteralType): NonNullable<LiteralType["structured_dataset_type"]> | undefined {
  return t.structured_dataset_type ?? t.union_type?.variants.find((v) => v.structured_dataset_type)?.structured_dataset_type ?? undefined;
}

/** `t` with its structured dataset's format set (the form's format field; flytekit reads a
 * dataset with the decoder for the literal's format, "" meaning its default, Parquet). */
export function withDatasetFormat(t: LiteralType, format: string): LiteralType {
  if (t.structured_dataset_type) return { ...t, structured_dataset_type: { ...t.structured_dataset_type, format: format.trim() } };
  if (t.union_type) return { ...t, union_type: { variants: t.union_type.variants.map((v) => withDatasetFormat(v, format)) } };
  return t;
}

export const isOptional = (t: LiteralType) => !!t.union_type?.variants.some((v) => v.simple === "NONE");

/** Parses one form field. Empty text is None for optional types and an error otherwise. */
export function parseInput(t: LiteralType, text: string): Parsed {
  const trimmed = text.trim();
  if (t.union_type) {
    if (trimmed === "" || trimmed === "null") {
      const none = t.union_type.variants.find((v) => v.simple === "NONE");
      return none ? ok(union(NONE, none)) : bad("a value is required");
    }
    const errors: string[] = [];
    for (const v of t.union_type.variants.filter((x) => x.simple !== "NONE")) {
      const r = parseInput(v, text);
      if (r.ok) return ok(union(r.literal, v));
      errors.push(r.error);
    }
    return bad(errors[0] ?? "no variant of the union accepts this value");
  }
  if (t.simple === "NONE") return ok(NONE);
  if (t.simple === "STRING") return ok(prim({ string_value: text }));
  if (trimmed === "") return bad("a value is required");
  if (t.enum_type) {
    return t.enum_type.values.includes(trimmed)
      ? ok(prim({ string_value: trimmed }))
      : bad(`one of ${t.enum_type.values.join(", ")}`);
  }
  if (t.blob) return ok({ scalar: { blob: { uri: trimmed, metadata: { type: t.blob } } } });
  if (t.structured_dataset_type)
    return ok({
      scalar: { structured_dataset: { uri: trimmed, metadata: { structured_dataset_type: t.structured_dataset_type } } },
    });
  switch (t.simple) {
    case "INTEGER":
      return /^[-+]?\d+$/.test(trimmed) ? ok(prim({ integer: String(BigInt(trimmed)) })) : bad("a whole number, like 42");
    case "FLOAT": {
      const n = Number(trimmed);
      return Number.isFinite(n) ? ok(prim({ float_value: n })) : bad("a number, like 0.5");
    }
    case "BOOLEAN":
      if (/^(true|1|yes)$/i.test(trimmed)) return ok(prim({ boolean: true }));
      if (/^(false|0|no)$/i.test(trimmed)) return ok(prim({ boolean: false }));
      return bad("true or false");
    case "DATETIME": {
      const ms = Date.parse(trimmed);
      return Number.isFinite(ms) ? ok(prim({ datetime: new Date(ms).toISOString() })) : bad("a date and time, like 2024-01-01T00:00:00Z");
    }
    case "DURATION": {
      const s = parseDuration(trimmed);
      return s === null ? bad("a duration, like 90s, 1.5m, 2h or 1h30m") : ok(prim({ duration: `${s}s` }));
    }
  }
  // Lists, dicts, structs (dataclasses, dicts of anything): JSON.
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch (e) {
    return bad(`JSON: ${(e as Error).message}`);
  }
  return fromJson(t, value, "");
}

function union(value: Literal, type: LiteralType): Literal {
  return { scalar: { union: { value, type } } };
}

/** A JSON value as a literal of type `t`; `at` names the place for errors. */
export function fromJson(t: LiteralType, v: unknown, at: string): Parsed {
  const where = at ? ` at ${at}` : "";
  if (t.union_type) {
    if (v === null) {
      const none = t.union_type.variants.find((x) => x.simple === "NONE");
      return none ? ok(union(NONE, none)) : bad(`null is not allowed${where}`);
    }
    for (const variant of t.union_type.variants.filter((x) => x.simple !== "NONE")) {
      const r = fromJson(variant, v, at);
      if (r.ok) return ok(union(r.literal, variant));
    }
    return bad(`no variant of the union accepts the value${where}`);
  }
  if (t.collection_type) {
    if (!Array.isArray(v)) return bad(`a JSON list${where}`);
    const literals: Literal[] = [];
    for (let i = 0; i < v.length; i++) {
      const r = fromJson(t.collection_type, v[i], `${at}[${i}]`);
      if (!r.ok) return r;
      literals.push(r.literal);
    }
    return ok({ collection: { literals } });
  }
  if (t.map_value_type) {
    if (!v || typeof v !== "object" || Array.isArray(v)) return bad(`a JSON object${where}`);
    const literals: Record<string, Literal> = {};
    for (const [k, x] of Object.entries(v)) {
      const r = fromJson(t.map_value_type, x, `${at}.${k}`);
      if (!r.ok) return r;
      literals[k] = r.literal;
    }
    return ok({ map: { literals } });
  }
  if (t.simple === "STRUCT") {
    if (!v || typeof v !== "object" || Array.isArray(v)) return bad(`a JSON object${where}`);
    return ok({ scalar: { generic: v } });
  }
  if (t.simple === "NONE") return v === null ? ok(NONE) : bad(`null${where}`);
  // Scalars inside JSON: numbers and booleans as JSON, the rest as strings.
  if (t.simple === "STRING") return typeof v === "string" ? ok(prim({ string_value: v })) : bad(`a string${where}`);
  const r = parseInput(t, typeof v === "string" ? v : JSON.stringify(v));
  return r.ok ? r : bad(`${r.error}${where}`);
}

/** 90, "90s", "1.5m", "2h", "1h30m", "250ms" -> seconds. */
export function parseDuration(text: string): number | null {
  const s = text.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
  const unit: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };
  let total = 0;
  let consumed = 0;
  for (const m of s.matchAll(re)) {
    total += Number(m[1]) * unit[m[2]];
    consumed += m[0].length;
  }
  return consumed === s.length && consumed > 0 ? Math.round(total * 1e9) / 1e9 : null;
}

/** A literal as the text its form field starts with (defaults, relaunch). */
export function inputText(t: LiteralType, lit: Literal | null | undefined): string {
  if (!lit) return "";
  const inner = lit.scalar?.union ? lit.scalar.union.value : lit;
  const c = controlFor(t);
  const v = literalView(inner);
  if (v.kind === "none") return "";
  if (c === "json") return JSON.stringify(toJson(inner), null, 0);
  return viewText(v);
}

/** A literal as plain JSON (for the JSON fields). */
export function toJson(lit: Literal | null | undefined): unknown {
  if (!lit) return null;
  if (lit.collection) return lit.collection.literals.map(toJson);
  if (lit.map) return Object.fromEntries(Object.entries(lit.map.literals).map(([k, x]) => [k, toJson(x)]));
  const s = lit.scalar;
  if (s?.union) return toJson(s.union.value);
  const p = s?.primitive;
  if (p) {
    if (p.integer !== undefined) return Number(p.integer);
    if (p.float_value !== undefined) return Number(p.float_value);
    if (p.string_value !== undefined) return p.string_value;
    if (p.boolean !== undefined) return p.boolean;
    if (p.datetime !== undefined) return p.datetime;
    if (p.duration !== undefined) return p.duration;
  }
  const v = literalView(lit);
  if (v.kind === "json") return v.value;
  if (v.kind === "link") return v.uri;
  if (v.kind === "none") return null;
  return viewText(v);
}
