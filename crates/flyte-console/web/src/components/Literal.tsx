import type { LiteralMap, Variable } from "../types";
import { literalView, typeText, type View } from "../literals";

/** One decoded literal: scalars as text, collections as lists, maps as definitions. */
export function ViewNode({ v }: { v: View }) {
  switch (v.kind) {
    case "value":
      return <code class="lit-value">{v.text}</code>;
    case "none":
      return <code class="lit-none">None</code>;
    case "link":
      return (
        <span class="lit-link">
          <span class="tag">{v.type}</span> <code>{v.uri}</code>
          {v.detail ? <span class="muted"> ({v.detail})</span> : null}
        </span>
      );
    case "error":
      return <span class="lit-error">{v.message}</span>;
    case "json":
      return <pre class="lit-json">{JSON.stringify(v.value, null, 2)}</pre>;
    case "list":
      return v.items.length === 0 ? (
        <code>[]</code>
      ) : (
        <ol class="lit-list" start={0}>
          {v.items.map((x, i) => (
            <li key={i}>
              <ViewNode v={x} />
            </li>
          ))}
        </ol>
      );
    case "map":
      return v.entries.length === 0 ? (
        <code>{"{}"}</code>
      ) : (
        <dl class="lit-map">
          {v.entries.map(([k, x]) => [
            <dt key={`k${k}`}>{k}</dt>,
            <dd key={`v${k}`}>
              <ViewNode v={x} />
            </dd>,
          ])}
        </dl>
      );
  }
}

/** The inputs or outputs of an execution or node, one row per name. */
export function LiteralTable({
  map,
  vars,
  empty,
  label,
}: {
  map: LiteralMap | null | undefined;
  vars?: Record<string, Variable>;
  empty: string;
  label: string;
}) {
  const entries = Object.entries(map?.literals ?? {}).sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return <p class="empty">{empty}</p>;
  return (
    <table class="literals" aria-label={label}>
      <tbody>
        {entries.map(([name, lit]) => (
          <tr key={name} data-name={name}>
            <th scope="row">
              {name}
              {vars?.[name] ? <span class="type"> {typeText(vars[name].type)}</span> : null}
            </th>
            <td>
              <ViewNode v={literalView(lit)} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** An interface's variables with their types. */
export function VariableTable({ vars, empty, label }: { vars: Record<string, Variable> | undefined; empty: string; label: string }) {
  const entries = Object.entries(vars ?? {}).sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return <p class="empty">{empty}</p>;
  return (
    <table class="literals" aria-label={label}>
      <tbody>
        {entries.map(([name, v]) => (
          <tr key={name}>
            <th scope="row">{name}</th>
            <td>
              <code>{typeText(v.type)}</code>
              <VarDescription name={name} v={v} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** A variable's description (its docstring's `:param x:` / `:return:`); flytekit sends the
 * variable's own name when there is none, which says nothing. */
export function VarDescription({ name, v }: { name: string; v: Variable }) {
  const d = v.description?.trim();
  return d && d !== name ? <span class="var-desc"> {d}</span> : null;
}
