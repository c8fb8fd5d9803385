import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { api } from "../api";
import { ErrorBox, Loading, Phase, useAsync } from "../components/common";
import { useLive, watchPaths } from "../live";
import { elapsed, formatTime } from "../format";
import { navigate, paths } from "../router";

const PHASES = ["RUNNING", "QUEUED", "SUCCEEDED", "FAILED", "ABORTED", "TIMED_OUT"];
const PAGE = 25;

/** The executions page of a project/domain: the phase filter lives in the URL (`?phase=`). */
export function Executions({ project, domain, phase }: { project: string; domain: string; phase: string }) {
  return (
    <main id="main">
      <ExecutionList
        project={project}
        domain={domain}
        phase={phase}
        onPhase={(p) => navigate(paths.executions(project, domain) + (p ? `?phase=${encodeURIComponent(p)}` : ""))}
        heading={<h1>Executions</h1>}
      />
    </main>
  );
}

/** Executions of one workflow or launch plan (all versions), newest first. */
export function ScopedExecutions(props: { project: string; domain: string; filter: string }) {
  const [phase, setPhase] = useState("");
  return <ExecutionList {...props} phase={phase} onPhase={setPhase} heading={<h2>Executions</h2>} />;
}

function ExecutionList({
  project,
  domain,
  phase,
  onPhase,
  heading,
  filter,
}: {
  project: string;
  domain: string;
  phase: string;
  onPhase: (p: string) => void;
  heading: ComponentChildren;
  filter?: string;
}) {
  // tokens[i] is the token of page i (page 0 has none): "Newer" pops, "Older" pushes.
  const [tokens, setTokens] = useState<string[]>([""]);
  const token = tokens[tokens.length - 1];
  const [name, setName] = useState("");
  const [workflow, setWorkflow] = useState("");
  // The window's start is fixed when it is chosen (a moving one would refetch every render).
  const [since, setSince] = useState<{ seconds: string; from: string }>({ seconds: "", from: "" });
  const [sort, setSort] = useState<{ key: string; descending: boolean }>({ key: "created_at", descending: true });
  // The gateway's filter language: several expressions joined with '+' must all hold.
  const filters = [
    filter,
    phase ? `eq(phase,${phase})` : "",
    name ? `contains(name,${name})` : "",
    workflow ? `contains(workflow.name,${workflow})` : "",
    since.from ? `gte(created_at,${since.from})` : "",
  ]
    .filter(Boolean)
    .join("+");
  // Phase changes come as server-sent events; each re-reads the page shown.
  const live = useLive(watchPaths.executions(project, domain), { throttleMs: 1000, endOnTerminal: false });
  const r = useAsync(
    () => api.executions(project, domain, { limit: PAGE, token, filters, sortKey: sort.key, descending: sort.descending }),
    [project, domain, token, filters, sort.key, sort.descending, live.version],
  );
  const setPhase = (p: string) => {
    setTokens([""]);
    onPhase(p);
  };
  const reset = <T,>(set: (v: T) => void) => (v: T) => {
    setTokens([""]);
    set(v);
  };
  const sortBy = (key: string) => {
    setTokens([""]);
    setSort(sort.key === key ? { key, descending: !sort.descending } : { key, descending: key !== "name" });
  };
  const header = (key: string, label: string) => (
    <th scope="col" aria-sort={sort.key === key ? (sort.descending ? "descending" : "ascending") : undefined}>
      <button type="button" class="sort" onClick={() => sortBy(key)}>
        {label}
        {sort.key === key ? (sort.descending ? " ↓" : " ↑") : ""}
      </button>
    </th>
  );
  const list = r.data?.executions ?? [];
  return (
    <div class="execution-list">
      <div class="toolbar">
        {heading}
        <label>
          Phase{" "}
          <select value={phase} onChange={(e) => setPhase((e.target as HTMLSelectElement).value)} aria-label="Filter by phase">
            <option value="">all</option>
            {PHASES.map((p) => (
              <option key={p} value={p}>
                {p.toLowerCase().replace("_", " ")}
              </option>
            ))}
          </select>
        </label>
      </div>
      <div class="filters">
        <TextFilter label="Name contains" value={name} onApply={reset(setName)} />
        <TextFilter label="Workflow contains" value={workflow} onApply={reset(setWorkflow)} />
        <label>
          Started{" "}
          <select
            value={since.seconds}
            onChange={(e) => {
              const seconds = (e.target as HTMLSelectElement).value;
              const from = seconds ? new Date(Date.now() - Number(seconds) * 1000).toISOString() : "";
              reset(setSince)({ seconds, from });
            }}
          >
            <option value="">any time</option>
            <option value="3600">in the last hour</option>
            <option value="86400">in the last 24 hours</option>
            <option value="604800">in the last 7 days</option>
          </select>
        </label>
      </div>
      {r.error ? <ErrorBox error={r.error} what="executions" /> : null}
      {r.loading && !r.data ? <Loading what="executions" /> : null}
      {r.data && list.length === 0 ? (
        <p class="empty">
          {phase || name || workflow || since.from
            ? "No executions match these filters."
            : filter
              ? "No executions of this yet."
              : "No executions in this project and domain yet."}{" "}
          Start one with <code>pyflyte run --remote</code>{filter ? " or the form above" : ""}.
        </p>
      ) : null}
      {list.length > 0 ? (
        <table class="grid" aria-label="Executions">
          <thead>
            <tr>
              {header("name", "Name")}
              {header("phase", "Phase")}
              <th scope="col">Launch plan</th>
              {header("created_at", "Started")}
              <th scope="col">Duration</th>
            </tr>
          </thead>
          <tbody>
            {list.map((e) => (
              <tr key={e.id.name} data-execution={e.id.name}>
                <td>
                  <a href={paths.execution(e.id.project, e.id.domain, e.id.name)}>{e.id.name}</a>
                  {(e.spec.tags ?? []).map((t) => (
                    <span key={t} class="tag">
                      {t}
                    </span>
                  ))}
                </td>
                <td>
                  <Phase phase={e.closure.phase} />
                </td>
                <td class="wrap">
                  {e.spec.launch_plan ? (
                    <a
                      href={paths.entity(project, domain, "launch_plans", e.spec.launch_plan.name, e.spec.launch_plan.version)}
                    >
                      {e.spec.launch_plan.name}
                    </a>
                  ) : (
                    "–"
                  )}
                </td>
                <td>{formatTime(e.closure.started_at ?? e.closure.created_at)}</td>
                <td>{elapsed(e.closure.phase, e.closure.started_at, e.closure.duration)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled={tokens.length <= 1} onClick={() => setTokens(tokens.slice(0, -1))}>
          ← Newer
        </button>
        <span class="muted">Page {tokens.length}</span>
        <button type="button" disabled={!r.data?.token} onClick={() => r.data?.token && setTokens([...tokens, r.data.token])}>
          Older →
        </button>
      </nav>
    </div>
  );
}

/** A text filter applied on Enter or when the field is left (not on every key stroke). The
 * filter language has no quoting: characters it uses are dropped. */
function TextFilter({ label, value, onApply }: { label: string; value: string; onApply: (v: string) => void }) {
  const [text, setText] = useState(value);
  const apply = () => {
    const clean = text.replace(/[(),+]/g, "").trim();
    if (clean !== value) onApply(clean);
  };
  return (
    <label>
      {label}{" "}
      <input
        type="search"
        value={text}
        onInput={(e) => setText((e.target as HTMLInputElement).value)}
        onKeyDown={(e) => e.key === "Enter" && apply()}
        onBlur={apply}
      />
    </label>
  );
}
