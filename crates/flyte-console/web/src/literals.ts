// Flyte literals -> a small display model, kept free of any UI so it is unit-tested
// (literals.test.ts) and rendered by components/Literal.tsx.
import { decode as decodeMsgpack } from "@msgpack/msgpack";
import type { Literal, LiteralType, Scalar } from "./types";

export type View =
  | { kind: "value"; text: string; type: string }
  | { kind: "link"; uri: string; type: string; detail?: string }
  | { kind: "none" }
  | { kind: "list"; items: View[] }
  | { kind: "map"; entries: [string, View][] }
  | { kind: "json"; value: unknown; type: string }
  | { kind: "error"; message: string };

export function literalView(lit: Literal | null | undefined): View {
  if (!lit) return { kind: "none" };
  if (lit.collection) return { kind: "list", items: (lit.collection.literals ?? []).map(literalView) };
  if (lit.map) {
    const entries = Object.entries(lit.map.literals ?? {}).sort(([a], [b]) => a.localeCompare(b));
    return { kind: "map", entries: entries.map(([k, v]) => [k, literalView(v)]) };
  }
  if (lit.offloaded_metadata) {
    return {
      kind: "link",
      uri: lit.offloaded_metadata.uri,
      type: "offloaded literal",
      detail: lit.offloaded_metadata.size_bytes ? `${lit.offloaded_metadata.size_bytes} bytes` : undefined,
    };
  }
  if (lit.scalar) return scalarView(lit.scalar);
  return { kind: "none" };
}

function scalarView(s: Scalar): View {
  const p = s.primitive;
  if (p) {
    if (p.integer !== undefined) return { kind: "value", text: String(p.integer), type: "int" };
    if (p.float_value !== undefined) return { kind: "value", text: formatFloat(p.float_value), type: "float" };
    if (p.string_value !== undefined) return { kind: "value", text: p.string_value, type: "str" };
    if (p.boolean !== undefined) return { kind: "value", text: p.boolean ? "true" : "false", type: "bool" };
    if (p.datetime !== undefined) return { kind: "value", text: p.datetime, type: "datetime" };
    if (p.duration !== undefined) return { kind: "value", text: p.duration, type: "timedelta" };
    return { kind: "none" };
  }
  if (s.blob) {
    const multipart = s.blob.metadata?.type?.dimensionality === "MULTIPART";
    const format = s.blob.metadata?.type?.format;
    return {
      kind: "link",
      uri: s.blob.uri,
      type: multipart ? "directory" : "file",
      detail: format ? `format ${format}` : undefined,
    };
  }
  if (s.structured_dataset) {
    const t = s.structured_dataset.metadata?.structured_dataset_type;
    const cols = (t?.columns ?? []).map((c) => c.name).join(", ");
    const detail = [t?.format ? `format ${t.format}` : "", cols ? `columns ${cols}` : ""].filter(Boolean).join("; ");
    return { kind: "link", uri: s.structured_dataset.uri, type: "structured dataset", detail: detail || undefined };
  }
  if (s.schema) return { kind: "link", uri: s.schema.uri, type: "schema" };
  if (s.union) return literalView(s.union.value);
  if (s.error) return { kind: "error", message: s.error.message ?? `node ${s.error.failed_node_id ?? "?"} failed` };
  if (s.generic !== undefined && s.generic !== null) return { kind: "json", value: s.generic, type: "struct" };
  if (s.binary) return binaryView(s.binary.value, s.binary.tag);
  if (s.none_type !== undefined) return { kind: "none" };
  return { kind: "none" };
}

function binaryView(base64: string, tag: string): View {
  const bytes = fromBase64(base64);
  if (tag === "msgpack" && bytes) {
    try {
      return { kind: "json", value: normalise(decodeMsgpack(bytes)), type: "msgpack" };
    } catch {
      // Not valid msgpack after all: fall through to the byte count.
    }
  }
  return { kind: "value", text: `${bytes ? bytes.length : "?"} bytes${tag ? ` (${tag})` : ""}`, type: "binary" };
}

// msgpack maps may decode to Map / bigint / Uint8Array: make them JSON-printable.
function normalise(v: unknown): unknown {
  if (typeof v === "bigint") return v.toString();
  if (v instanceof Uint8Array) return `<${v.length} bytes>`;
  if (v instanceof Map) return Object.fromEntries([...v.entries()].map(([k, x]) => [String(k), normalise(x)]));
  if (Array.isArray(v)) return v.map(normalise);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalise(x)]));
  return v;
}

function fromBase64(s: string): Uint8Array | null {
  try {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}

function formatFloat(v: number | string): string {
  // proto3 JSON writes NaN/Infinity as strings; plain numbers print as JavaScript does.
  return typeof v === "string" ? v : String(v);
}

/** One line of text for a literal: tables and tests use it. */
export function viewText(v: View): string {
  switch (v.kind) {
    case "value":
      return v.text;
    case "link":
      return v.uri;
    case "none":
      return "None";
    case "list":
      return `[${v.items.map(viewText).join(", ")}]`;
    case "map":
      return `{${v.entries.map(([k, x]) => `${k}: ${viewText(x)}`).join(", ")}}`;
    case "json":
      return JSON.stringify(v.value);
    case "error":
      return `error: ${v.message}`;
  }
}

const SIMPLE: Record<string, string> = {
  NONE: "None",
  INTEGER: "int",
  FLOAT: "float",
  STRING: "str",
  BOOLEAN: "bool",
  DATETIME: "datetime",
  DURATION: "timedelta",
  BINARY: "bytes",
  ERROR: "error",
  STRUCT: "struct",
};

/** A Python-like spelling of a Flyte type, as a flytekit user wrote it. */
export function typeText(t: LiteralType | null | undefined): string {
  if (!t) return "?";
  if (t.simple !== undefined && t.simple !== null) {
    const tag = t.structure?.tag;
    if (t.simple === "STRUCT" && tag) return tag;
    return SIMPLE[t.simple] ?? t.simple.toLowerCase();
  }
  if (t.collection_type) return `list[${typeText(t.collection_type)}]`;
  if (t.map_value_type) return `dict[str, ${typeText(t.map_value_type)}]`;
  if (t.blob) return t.blob.dimensionality === "MULTIPART" ? "FlyteDirectory" : "FlyteFile";
  if (t.enum_type) return `enum(${t.enum_type.values.join(" | ")})`;
  if (t.structured_dataset_type) return "StructuredDataset";
  if (t.schema) return "FlyteSchema";
  if (t.union_type) return t.union_type.variants.map(typeText).join(" | ");
  return "?";
}
