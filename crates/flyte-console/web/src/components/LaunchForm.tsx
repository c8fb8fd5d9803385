import { useState } from "preact/hooks";
import { api } from "../api";
import { controlFor, inputText, isOptional, parseInput } from "../inputs";
import { typeText } from "../literals";
import { navigate, paths } from "../router";
import type { LaunchPlan, Literal, LiteralMap } from "../types";
import { ErrorBox } from "./common";

const PLACEHOLDER: Record<string, string> = {
  int: "42",
  float: "0.5",
  datetime: "2024-01-01T00:00:00Z",
  duration: "90s, 1.5m, 1h30m",
  uri: "s3://bucket/key or file:///path",
  json: "JSON",
};

/** A form generated from the launch plan's inputs: defaults filled in, or the inputs of the
 * execution being relaunched (`initial`); launching opens the new execution. */
export function LaunchForm({ lp, initial }: { lp: LaunchPlan; initial?: LiteralMap | null }) {
  const params = Object.entries(lp.spec?.default_inputs?.parameters ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const [texts, setTexts] = useState<Record<string, string>>(() =>
    Object.fromEntries(
      params.map(([name, p]) => {
        const given = initial?.literals?.[name];
        const t = p.var.type;
        const text = inputText(t, given ?? p.default);
        return [name, controlFor(t) === "bool" && text === "" ? "false" : text];
      }),
    ),
  );
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<unknown>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    const literals: Record<string, Literal> = {};
    const errs: Record<string, string> = {};
    for (const [name, p] of params) {
      const text = texts[name] ?? "";
      // A field left empty that has a default and is not optional: the default applies.
      if (text.trim() === "" && !p.required && p.default && !isOptional(p.var.type) && p.var.type.simple !== "STRING") continue;
      const r = parseInput(p.var.type, text);
      if (r.ok) literals[name] = r.literal;
      else errs[name] = r.error;
    }
    setErrors(errs);
    if (Object.keys(errs).length) return;
    setBusy(true);
    setFailure(null);
    try {
      const r = await api.launch(lp.id, { literals });
      navigate(paths.execution(r.id.project, r.id.domain, r.id.name));
    } catch (err) {
      setFailure(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="launch-form" onSubmit={submit} aria-label="Launch" noValidate>
      {params.length === 0 ? <p class="empty">This launch plan takes no inputs.</p> : null}
      {params.map(([name, p]) => {
        const t = p.var.type;
        const control = controlFor(t);
        const id = `in-${name}`;
        const err = errors[name];
        const set = (v: string) => setTexts({ ...texts, [name]: v });
        const common = {
          id,
          name,
          "aria-invalid": err ? ("true" as const) : undefined,
          "aria-describedby": err ? `${id}-err` : undefined,
        };
        return (
          <div class="field" key={name}>
            <label for={id}>
              {name} <span class="type">{typeText(t)}</span>
              {p.required ? <span class="muted"> required</span> : null}
            </label>
            {control === "bool" ? (
              <input
                type="checkbox"
                {...common}
                checked={texts[name] === "true"}
                onChange={(e) => set((e.target as HTMLInputElement).checked ? "true" : "false")}
              />
            ) : control === "enum" ? (
              <select {...common} value={texts[name]} onChange={(e) => set((e.target as HTMLSelectElement).value)}>
                {isOptional(t) ? <option value="">None</option> : null}
                {(t.enum_type ?? t.union_type?.variants.find((v) => v.enum_type)?.enum_type)?.values.map((v) => (
                  <option key={v} value={v}>
                    {v}
                  </option>
                ))}
              </select>
            ) : control === "json" ? (
              <textarea
                {...common}
                rows={3}
                placeholder={PLACEHOLDER.json}
                value={texts[name]}
                onInput={(e) => set((e.target as HTMLTextAreaElement).value)}
              />
            ) : (
              <input
                type="text"
                {...common}
                inputMode={control === "int" ? "numeric" : control === "float" ? "decimal" : undefined}
                placeholder={isOptional(t) ? "empty for None" : PLACEHOLDER[control]}
                value={texts[name]}
                onInput={(e) => set((e.target as HTMLInputElement).value)}
              />
            )}
            {err ? (
              <span class="field-error" id={`${id}-err`} role="alert">
                {err}
              </span>
            ) : null}
          </div>
        );
      })}
      <div class="form-actions">
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Launching…" : "Launch"}
        </button>
      </div>
      {failure ? <ErrorBox error={failure} what="the execution" /> : null}
    </form>
  );
}
