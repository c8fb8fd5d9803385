// Files and directories for the launch form, uploaded through the data proxy
// (CreateUploadLocation, then a PUT to the signed URL), as `pyflyte run --remote` does.
import { api } from "./api";

/** The directory a set of files forms: the native URL of one of them less its relative path,
 * plus the top folder (`file:///…/uploads/p/d/r/` + `data` for `data/a/b.txt`). */
export function directoryUri(nativeUrl: string, relativePath: string): string {
  const top = relativePath.split("/")[0] ?? "";
  if (!nativeUrl.endsWith(relativePath)) return nativeUrl.replace(/\/[^/]*$/, "");
  return nativeUrl.slice(0, nativeUrl.length - relativePath.length) + top;
}

/** A fresh folder name for one upload (files of one directory share it). */
export function uploadRoot(): string {
  const bytes = new Uint8Array(10);
  crypto.getRandomValues(bytes);
  return `console-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

async function put(project: string, domain: string, root: string, name: string, file: Blob): Promise<string> {
  const loc = await api.uploadLocation(project, domain, root, name);
  const res = await fetch(loc.signed_url, { method: "PUT", body: file, headers: loc.headers ?? {} });
  if (!res.ok) throw new Error(`The upload of ${name} failed: ${res.status} ${(await res.text()).trim()}`);
  return loc.native_url;
}

/** Uploads one file, or a directory's files (their `webkitRelativePath`s), and returns the URI
 * to pass as the input. */
export async function upload(project: string, domain: string, files: File[], directory: boolean): Promise<string> {
  if (files.length === 0) throw new Error("No file was chosen.");
  const root = uploadRoot();
  if (!directory) return put(project, domain, root, files[0].name, files[0]);
  let first = "";
  let firstPath = "";
  for (const f of files) {
    const path = f.webkitRelativePath || f.name;
    const url = await put(project, domain, root, path, f);
    if (!first) {
      first = url;
      firstPath = path;
    }
  }
  return directoryUri(first, firstPath);
}

/** How a file becomes a structured dataset, laid out as flytekit's pandas encoders write one
 * (and its decoders read it): a CSV is a folder holding `.csv`, the dataset's URI that folder;
 * a Parquet file (or any other) is read as it is. The format goes into the literal, where
 * flytekit picks its decoder by it; an unknown extension keeps the type's format. */
export function datasetPlan(fileName: string, typeFormat: string): { path: string; format: string; folder: boolean } {
  const dot = fileName.lastIndexOf(".");
  const ext = dot > 0 ? fileName.slice(dot + 1).toLowerCase() : "";
  const stem = (dot > 0 ? fileName.slice(0, dot) : fileName).replace(/[^A-Za-z0-9._-]/g, "_") || "data";
  if (ext === "csv") return { path: `${stem}/.csv`, format: "csv", folder: true };
  if (ext === "parquet" || ext === "pq") return { path: fileName, format: "parquet", folder: false };
  return { path: fileName, format: typeFormat, folder: false };
}

/** Uploads a file as a structured dataset: its URI and format for the literal. */
export async function uploadDataset(
  project: string,
  domain: string,
  file: File,
  typeFormat: string,
): Promise<{ uri: string; format: string }> {
  const plan = datasetPlan(file.name, typeFormat);
  const url = await put(project, domain, uploadRoot(), plan.path, file);
  return { uri: plan.folder ? url.slice(0, url.length - "/.csv".length) : url, format: plan.format };
}
