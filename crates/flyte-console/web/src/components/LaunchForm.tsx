import { useState } from "preact/hooks";
import { api } from "../api";
import { controlFor, datasetOf, inputText, isOptional, parseInput, withDatasetFormat } from "../inputs";
import { typeText } from "../literals";
import { navigate, paths } from "../router";
import type { LaunchPlan, Literal, LiteralMap, LiteralType, Parameter, Task } from "../types";
import { upload, uploadDataset } from "../upload";
import { ErrorBox } from "./common";
import { VarDescription } from "./Literal";

const PLACEHOLDER: Record<string, string> = {
  int: "42",
  float: "0.5",
  datetime: "2024-01-01T00:00:00Z",
  duration: "90s, 1.5m, 1h30m",
  uri: "s3://bucket/key or file:///path",
  json: "JSON",
};

/** The form's fields: a launch plan's parameters (with defaults), or a task's inputs. */
function paramsOf(lp?: LaunchPlan, task?: Task): [string, Parameter][] {
  const list: [string, Parameter][] = lp
    ? Object.entries(lp.spec?.default_inputs?.parameters ?? {})
    : Object.entries(task?.closure?.compiled_task?.template?.interface?.inputs?.variables ?? {}).map(([name, v]) => [
        name,
        { var: v, required: !isOptional(v.type) },
      ]);
  return list.sort(([a], [b]) => a.localeCompare(b));
}

/** A file or directory input's blob type (also inside an optional). */
function blobOf(t: LiteralType): { dimensionality?: string } | undefined {
  return t.blob ?? t.union_type?.variants.find((v) => v.blob)?.blob;
}

/** A form generated from the launch plan's inputs (defaults filled in) or a task's, or from
 * the inputs of the execution being relaunched (`initial`); launching opens the new
 * execution. Files and directories can be uploaded through the data proxy. */
export function LaunchForm({ lp, task, initial }: { lp?: LaunchPlan; task?: Task; initial?: LiteralMap | null }) {
  const target = (lp?.id ?? task?.id)!;
  const params = paramsOf(lp, task);
  const [uploading, setUploading] = useState<string | null>(null);
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
  // A structured dataset's format (the literal's metadata): the given value's, else the type's.
  const [formats, setFormats] = useState<Record<string, string>>(() =>
    Object.fromEntries(
      params.flatMap(([name, p]) => {
        const sd = datasetOf(p.var.type);
        if (!sd) return [];
        const given = initial?.literals?.[name];
        const lit = given?.scalar?.union ? given.scalar.union.value : given;
        return [[name, lit?.scalar?.structured_dataset?.metadata?.structured_dataset_type?.format ?? sd.format ?? ""]];
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
      const t = name in formats ? withDatasetFormat(p.var.type, formats[name]) : p.var.type;
      const r = parseInput(t, text);
      if (r.ok) literals[name] = r.literal;
      else errs[name] = r.error;
    }
    setErrors(errs);
    if (Object.keys(errs).length) return;
    setBusy(true);
    setFailure(null);
    try {
      const r = await api.launch(target, { literals }, lp ? "LAUNCH_PLAN" : "TASK");
      navigate(paths.execution(r.id.project, r.id.domain, r.id.name));
    } catch (err) {
      setFailure(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="launch-form" onSubmit={submit} aria-label="Launch" noValidate>
      {params.length === 0 ? <p class="empty">This {lp ? "launch plan" : "task"} takes no inputs.</p> : null}
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
              <VarDescription name={name} v={p.var} />
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
            {datasetOf(t) ? (
              <>
                <input
                  type="text"
                  class="format"
                  id={`${id}-format`}
                  aria-label={`Format of ${name}`}
                  placeholder="format: parquet"
                  value={formats[name] ?? ""}
                  onInput={(e) => setFormats({ ...formats, [name]: (e.target as HTMLInputElement).value })}
                />
                <UploadButton
                  name={name}
                  directory={false}
                  busy={uploading === name}
                  label="Upload a CSV or Parquet file"
                  onFiles={async (files) => {
                    setUploading(name);
                    try {
                      const r = await uploadDataset(target.project, target.domain, files[0], datasetOf(t)?.format ?? "");
                      set(r.uri);
                      setFormats((f) => ({ ...f, [name]: r.format }));
                      setErrors({ ...errors, [name]: "" });
                    } catch (e) {
                      setErrors({ ...errors, [name]: (e as Error).message });
                    } finally {
                      setUploading(null);
                    }
                  }}
                />
              </>
            ) : null}
            {blobOf(t) ? (
              <UploadButton
                name={name}
                directory={blobOf(t)?.dimensionality === "MULTIPART"}
                busy={uploading === name}
                onFiles={async (files, directory) => {
                  setUploading(name);
                  try {
                    set(await upload(target.project, target.domain, files, directory));
                    setErrors({ ...errors, [name]: "" });
                  } catch (e) {
                    setErrors({ ...errors, [name]: (e as Error).message });
                  } finally {
                    setUploading(null);
                  }
                }}
              />
            ) : null}
            {err ? (
              <span class="field-error" id={`${id}-err`} role="alert">
                {err}
              </span>
            ) : null}
          </div>
        );
      })}
      <div class="form-actions">
        <button type="submit" class="primary" disabled={busy || uploading !== null}>
          {busy ? "Launching…" : "Launch"}
        </button>
      </div>
      {failure ? <ErrorBox error={failure} what="the execution" /> : null}
    </form>
  );
}

/** Chooses a file (or a directory's files) and hands them over for upload. */
function UploadButton({
  name,
  directory,
  busy,
  label,
  onFiles,
}: {
  name: string;
  directory: boolean;
  busy: boolean;
  label?: string;
  onFiles: (files: File[], directory: boolean) => void;
}) {
  // `webkitdirectory` (every current browser): the files of a chosen folder, with their paths.
  const dirProps = directory ? { webkitdirectory: true, multiple: true } : {};
  return (
    <label class="upload">
      {busy ? "Uploading…" : (label ?? (directory ? "Upload a directory" : "Upload a file"))}
      <input
        type="file"
        aria-label={`Upload ${name}`}
        disabled={busy}
        {...dirProps}
        onChange={(e) => {
          const files = Array.from((e.target as HTMLInputElement).files ?? []);
          if (files.length) onFiles(files, directory);
        }}
      />
    </label>
  );
}
