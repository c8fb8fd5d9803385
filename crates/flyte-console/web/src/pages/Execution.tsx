import { useRef, useState } from "preact/hooks";
import { api } from "../api";
import { RunGraph } from "../components/RunGraph";
import { LiteralTable } from "../components/Literal";
import { LogView, inlineLogPath } from "../components/LogView";
import { Signals } from "../components/Signals";
import { ErrorBox, Loading, Phase, Section, useAsync } from "../components/common";
import { durationSeconds, elapsed, formatSeconds, formatTime, isTerminal, phaseClass } from "../format";
import { attemptBars, isStartOrEnd } from "../rows";
import { NodeTable } from "../components/NodeTable";
import { type LiveStatus, useLive, watchPaths } from "../live";
import { navigate, paths } from "../router";
import type { ExecutionError, ExecutionId, Identifier, NodeExecution, TaskExecution } from "../types";

export function ExecutionPage({ id, node }: { id: ExecutionId; node: string | null }) {
  // What changed comes as server-sent events; each re-reads the execution and its nodes.
  // The server ends the stream once the execution has ended.
  const live = useLive(watchPaths.execution(id));
  const ex = useAsync(() => api.execution(id), [id.project, id.domain, id.name, live.version]);
  const phase = ex.data?.closure.phase;
  const running = !!phase && !isTerminal(phase);
  const nodes = useAsync(() => api.nodeExecutions(id), [id.project, id.domain, id.name, live.version]);
  // Attempts of the top-level task nodes (table: how many; timeline: one bar each).
  const topTasks = (nodes.data?.node_executions ?? []).filter(
    (n) => n.closure.task_node_metadata && !n.metadata?.is_array && !isStartOrEnd(n.id.node_id),
  );
  const attemptSig = topTasks.map((n) => `${n.id.node_id}:${n.closure.phase}`).join(",");
  const attempts = useAsync(async () => {
    const out: Record<string, TaskExecution[]> = {};
    await Promise.all(
      topTasks.slice(0, 200).map(async (n) => {
        try {
          out[n.id.node_id] = (await api.taskExecutions(id, n.id.node_id)).task_executions;
        } catch {
          // Shown as unknown.
        }
      }),
    );
    return out;
  }, [id.name, attemptSig]);
  const data = useAsync(() => api.executionData(id), [id.project, id.domain, id.name, phase]);
  const wfId = ex.data?.closure.workflow_id;
  const wf = useAsync(
    () => (wfId ? api.entity("workflows", wfId.project, wfId.domain, wfId.name, wfId.version) : Promise.resolve(null)),
    [wfId?.project, wfId?.domain, wfId?.name, wfId?.version],
  );

  if (ex.error && !ex.data) {
    return (
      <main id="main">
        <h1>Execution {id.name}</h1>
        <ErrorBox error={ex.error} what="execution" />
        <p>
          <a href={paths.executions(id.project, id.domain)}>All executions of {id.project}/{id.domain}</a>
        </p>
      </main>
    );
  }
  if (!ex.data) return <Loading what="execution" />;
  const e = ex.data;
  const lp = e.spec.launch_plan;
  const iface = wf.data?.closure?.compiled_workflow?.primary.template.interface;
  const byNode: Record<string, NodeExecution> = {};
  for (const n of nodes.data?.node_executions ?? []) byNode[n.id.node_id] = n;
  const select = (n: string | null) =>
    navigate(paths.execution(id.project, id.domain, id.name) + (n ? `?node=${encodeURIComponent(n)}` : ""));

  return (
    <main id="main">
      <header class="exec-header card">
        <div class="title-row">
          <h1>
            Execution <span class="mono">{e.id.name}</span>
          </h1>
          <Phase phase={e.closure.phase} />
          <Actions
            id={id}
            running={running}
            failed={e.closure.phase === "FAILED" || e.closure.phase === "TIMED_OUT"}
            onChanged={ex.reload}
            launchPlan={lp}
          />
        </div>
        <dl class="facts">
          <dt>Launch plan</dt>
          <dd>
            {lp ? (
              <a href={paths.entity(lp.project, lp.domain, "launch_plans", lp.name, lp.version)}>
                {lp.name} <span class="muted">@ {lp.version}</span>
              </a>
            ) : (
              "–"
            )}
          </dd>
          {wfId ? (
            <>
              <dt>Workflow</dt>
              <dd>
                <a href={paths.entity(wfId.project, wfId.domain, "workflows", wfId.name, wfId.version)}>{wfId.name}</a>
              </dd>
            </>
          ) : null}
          <dt>Started</dt>
          <dd>{formatTime(e.closure.started_at ?? e.closure.created_at)}</dd>
          <dt>Duration</dt>
          <dd data-testid="duration">{elapsed(e.closure.phase, e.closure.started_at, e.closure.duration)}</dd>
          <dt>Launched by</dt>
          <dd>
            {(e.spec.metadata?.mode ?? "MANUAL").toLowerCase()}
            {e.spec.metadata?.principal ? ` · ${e.spec.metadata.principal}` : ""}
            {e.spec.metadata?.reference_execution ? (
              <>
                {" · from "}
                <a
                  href={paths.execution(
                    e.spec.metadata.reference_execution.project,
                    e.spec.metadata.reference_execution.domain,
                    e.spec.metadata.reference_execution.name,
                  )}
                >
                  {e.spec.metadata.reference_execution.name}
                </a>
              </>
            ) : null}
            {e.spec.metadata?.parent_node_execution ? (
              <>
                {" · child of "}
                <a
                  href={paths.execution(
                    e.spec.metadata.parent_node_execution.execution_id.project,
                    e.spec.metadata.parent_node_execution.execution_id.domain,
                    e.spec.metadata.parent_node_execution.execution_id.name,
                  )}
                >
                  {e.spec.metadata.parent_node_execution.execution_id.name}
                </a>
              </>
            ) : null}
          </dd>
          {e.spec.tags?.length ? (
            <>
              <dt>Tags</dt>
              <dd>{e.spec.tags.join(", ")}</dd>
            </>
          ) : null}
          {e.closure.abort_metadata?.cause ? (
            <>
              <dt>Terminated</dt>
              <dd>
                {e.closure.abort_metadata.cause}
                {e.closure.abort_metadata.principal ? ` (by ${e.closure.abort_metadata.principal})` : ""}
              </dd>
            </>
          ) : null}
        </dl>
        {e.closure.error ? <ErrorDetail error={e.closure.error} /> : null}
        {ex.error ? <ErrorBox error={ex.error} what="the latest state (showing the last one loaded)" /> : null}
        {running ? <LiveBadge status={live.status} /> : null}
      </header>

      <Section title="Graph" id="graph-h">
        {wf.error ? <ErrorBox error={wf.error} what="the workflow" /> : null}
        {wf.data ? (
          <RunGraph
            id={id}
            closure={wf.data.closure?.compiled_workflow}
            nodes={nodes.data?.node_executions ?? []}
            version={live.version}
            selected={node}
            onSelect={(n, exec) =>
              exec ? navigate(`${paths.execution(exec.project, exec.domain, exec.name)}?node=${encodeURIComponent(n)}`) : select(n)
            }
          />
        ) : wf.loading ? (
          <Loading what="graph" />
        ) : null}
      </Section>

      <Signals
        id={id}
        phase={e.closure.phase}
        signature={(nodes.data?.node_executions ?? []).map((n) => n.closure.phase).join(",")}
      />

      {node ? (
        <NodePanel id={id} nodeId={node} ne={byNode[node]} version={live.version} onClose={() => select(null)} />
      ) : null}

      <Section title="Timeline" id="timeline-h">
        <Timeline nodes={nodes.data?.node_executions ?? []} attempts={attempts.data ?? {}} onSelect={select} />
      </Section>

      <Section title="Nodes" id="nodes-h">
        {nodes.error && !nodes.data ? <ErrorBox error={nodes.error} what="node executions" /> : null}
        <NodeTable
          key={`${id.project}/${id.domain}/${id.name}`}
          attempts={attempts.data}
          id={id}
          nodes={nodes.data?.node_executions ?? []} version={live.version} onSelect={select} selected={node} />
      </Section>

      <div class="two-col">
        <Section title="Inputs" id="inputs-h">
          {data.error ? <ErrorBox error={data.error} what="inputs" /> : null}
          <LiteralTable map={data.data?.full_inputs} vars={iface?.inputs?.variables} empty="No inputs." label="Inputs" />
        </Section>
        <Section title="Outputs" id="outputs-h">
          {data.data ? (
            <LiteralTable
              map={data.data.full_outputs}
              vars={iface?.outputs?.variables}
              empty={running ? "Not yet: the execution is still running." : e.closure.error ? "None: the execution failed." : "No outputs."}
              label="Outputs"
            />
          ) : null}
        </Section>
      </div>
    </main>
  );
}

/** Whether what the page shows follows the server; says so when the connection is lost. */
function LiveBadge({ status }: { status: LiveStatus }) {
  if (status === "live") {
    return (
      <p class="live-badge muted" data-testid="live">
        ● Live
      </p>
    );
  }
  if (status === "connecting") return null;
  return (
    <p class="live-badge warn" role="status" data-testid="live">
      {status === "reconnecting"
        ? "The server cannot be reached: reconnecting… (what is shown may be out of date)"
        : "Live updates are not available: reload the page to see changes."}
    </p>
  );
}

function ErrorDetail({ error }: { error: ExecutionError }) {
  return (
    <div class="error-box exec-error" role="alert" data-testid="execution-error">
      <strong>
        {error.kind ? `${error.kind.toLowerCase()} error` : "error"}
        {error.code ? <span class="mono"> {error.code}</span> : null}
      </strong>
      <pre>{error.message}</pre>
    </div>
  );
}

function Actions({
  id,
  running,
  failed,
  onChanged,
  launchPlan,
}: {
  id: ExecutionId;
  running: boolean;
  failed: boolean;
  onChanged: () => void;
  launchPlan: Identifier | null | undefined;
}) {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const act = async (f: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await f();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
      setConfirming(false);
    }
  };
  return (
    <div class="actions">
      {running && !confirming ? (
        <button type="button" class="danger" disabled={busy} onClick={() => setConfirming(true)}>
          Terminate
        </button>
      ) : null}
      {running && confirming ? (
        <>
          <button
            type="button"
            class="danger"
            disabled={busy}
            onClick={() =>
              act(async () => {
                await api.terminate(id, "terminated from the console");
                onChanged();
              })
            }
          >
            Confirm terminate
          </button>
          <button type="button" onClick={() => setConfirming(false)}>
            Cancel
          </button>
        </>
      ) : null}
      {failed ? (
        <button
          type="button"
          disabled={busy}
          title="Run again, reusing the outputs of the nodes that succeeded"
          onClick={() =>
            act(async () => {
              const r = await api.recover(id);
              navigate(paths.execution(r.id.project, r.id.domain, r.id.name));
            })
          }
        >
          Recover
        </button>
      ) : null}
      {launchPlan ? (
        <a class="button" href={`${paths.entity(launchPlan.project, launchPlan.domain, "launch_plans", launchPlan.name, launchPlan.version)}?from=${encodeURIComponent(id.name)}`}>
          Relaunch with changes…
        </a>
      ) : null}
      <button
        type="button"
        disabled={busy}
        onClick={() =>
          act(async () => {
            const r = await api.relaunch(id);
            navigate(paths.execution(r.id.project, r.id.domain, r.id.name));
          })
        }
      >
        Relaunch
      </button>
      {error ? <ErrorBox error={error} what="the action" /> : null}
    </div>
  );
}

function NodePanel({
  id,
  nodeId,
  ne: listed,
  version,
  onClose,
}: {
  id: ExecutionId;
  nodeId: string;
  ne: NodeExecution | undefined;
  version: number;
  onClose: () => void;
}) {
  // Nodes inside subworkflows and dynamic nodes are not in the top-level list: read them
  // (again whenever the server says something changed while it runs).
  const ownPhase = useRef<string | undefined>(undefined);
  const own = useAsync(
    () => (listed ? Promise.resolve(listed) : api.nodeExecution(id, nodeId)),
    [id.name, nodeId, listed?.closure.phase, listed || isTerminal(ownPhase.current ?? "") ? 0 : version],
  );
  const ne = listed ?? own.data;
  const phase = ne?.closure.phase;
  ownPhase.current = phase;
  const data = useAsync(() => api.nodeData(id, nodeId), [id.name, nodeId, phase]);
  // Attempts (a retry keeps the node's phase): re-read on every change while it runs.
  const tasks = useAsync(() => api.taskExecutions(id, nodeId), [id.name, nodeId, phase, phase && isTerminal(phase) ? 0 : version]);
  return (
    <section class="card node-panel" aria-labelledby="node-h" data-testid="node-panel">
      <div class="title-row">
        <h2 id="node-h">
          Node <span class="mono">{nodeId}</span>
        </h2>
        <Phase phase={phase} />
        <button type="button" onClick={onClose} aria-label="Close the node panel">
          Close
        </button>
      </div>
      {!ne && own.error ? <ErrorBox error={own.error} what="the node" /> : null}
      {!ne && !own.error && !own.loading ? <p class="empty">This node has not started.</p> : null}
      {ne?.closure.error ? <ErrorDetail error={ne.closure.error} /> : null}
      {ne ? (
        <div class="two-col">
          <div>
            <h3>Inputs</h3>
            {data.error ? <ErrorBox error={data.error} what="node inputs" /> : null}
            <LiteralTable map={data.data?.full_inputs} empty="No inputs." label="Node inputs" />
          </div>
          <div>
            <h3>Outputs</h3>
            <LiteralTable
              map={data.data?.full_outputs}
              empty={phase && !isTerminal(phase) ? "Not yet." : "No outputs."}
              label="Node outputs"
            />
          </div>
        </div>
      ) : null}
      {ne?.closure.deck_uri ? <DeckLink id={id} nodeId={nodeId} /> : null}
      {tasks.data && tasks.data.task_executions.length > 0 ? <Attempts list={tasks.data.task_executions} /> : null}
    </section>
  );
}

/** The node's Flyte Deck: a signed download link asked for when clicked (links expire). */
function DeckLink({ id, nodeId }: { id: ExecutionId; nodeId: string }) {
  const [error, setError] = useState<unknown>(null);
  const open = async () => {
    // Opened first, filled after: a window opened after an await is a blocked pop-up.
    const tab = window.open("", "_blank");
    try {
      const url = (await api.deckLink(id, nodeId)).signed_url?.[0];
      if (!url) throw new Error("The server returned no link for this deck.");
      if (tab) tab.location.href = url;
      else location.href = url;
      setError(null);
    } catch (e) {
      tab?.close();
      setError(e);
    }
  };
  return (
    <p class="deck">
      <button type="button" onClick={open}>
        Open the Flyte Deck
      </button>
      {error ? <ErrorBox error={error} what="the deck" /> : null}
    </p>
  );
}

function Attempts({ list }: { list: TaskExecution[] }) {
  // The latest attempt's log is open; others open on request.
  const latest = list.reduce((m, t) => Math.max(m, t.id.retry_attempt ?? 0), 0);
  const [shown, setShown] = useState<number | null>(null);
  const open = shown ?? latest;
  const current = list.find((t) => (t.id.retry_attempt ?? 0) === open);
  const inline = (current?.closure.logs ?? []).map((l) => inlineLogPath(l.uri)).find((p) => p);
  return (
    <>
      <h3>Attempts</h3>
      <table class="grid" aria-label="Attempts">
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">Phase</th>
            <th scope="col">Started</th>
            <th scope="col">Duration</th>
            <th scope="col">Logs</th>
          </tr>
        </thead>
        <tbody>
          {list.map((t) => (
            <tr key={t.id.retry_attempt ?? 0}>
              <td>{t.id.retry_attempt ?? 0}</td>
              <td>
                <Phase phase={t.closure.phase} />
                {t.closure.error?.message ? (
                  <details class="attempt-error">
                    <summary>{summaryLine(t.closure.error.message)}</summary>
                    <pre>{t.closure.error.message}</pre>
                  </details>
                ) : null}
              </td>
              <td>{formatTime(t.closure.started_at)}</td>
              <td>{elapsed(t.closure.phase, t.closure.started_at, t.closure.duration)}</td>
              <td>
                {(t.closure.logs ?? []).length === 0
                  ? "–"
                  : (t.closure.logs ?? []).map((l) => (
                      <a key={l.uri} href={l.uri} target="_blank" rel="noreferrer">
                        {l.name || "log"}
                      </a>
                    ))}
                {(t.closure.logs ?? []).some((l) => inlineLogPath(l.uri)) && (t.id.retry_attempt ?? 0) !== open ? (
                  <>
                    {" "}
                    <button type="button" class="link" onClick={() => setShown(t.id.retry_attempt ?? 0)}>
                      show
                    </button>
                  </>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {current && inline ? (
        <>
          <h3>Log of attempt {open}</h3>
          <LogView key={inline} path={inline} phase={current.closure.phase} />
        </>
      ) : null}
    </>
  );
}

/** The line of a traceback that says what went wrong (its last non-empty line). */
function summaryLine(message: string): string {
  const lines = message.split("\n").map((l) => l.trim()).filter(Boolean);
  return lines[lines.length - 1] ?? "error";
}

/** Nodes as bars on the execution's time axis (a Gantt chart); running ones grow to now. A
 * node that ran more than once shows one bar per attempt, coloured by the attempt's phase. */
function Timeline({
  nodes,
  attempts,
  onSelect,
}: {
  nodes: NodeExecution[];
  attempts: Record<string, TaskExecution[]>;
  onSelect: (n: string) => void;
}) {
  const now = Date.now();
  const rows = nodes
    .filter((n) => !isStartOrEnd(n.id.node_id) && n.closure.started_at)
    .map((n) => {
      const start = Date.parse(n.closure.started_at!);
      const d = durationSeconds(n.closure.duration);
      const end = d !== null && (d > 0 || isTerminal(n.closure.phase)) ? start + d * 1000 : now;
      return { n, start, end };
    })
    .filter((r) => Number.isFinite(r.start))
    .sort((a, b) => a.start - b.start);
  if (rows.length === 0) return <p class="empty">No node has started yet.</p>;
  const t0 = Math.min(...rows.map((r) => r.start));
  const span = Math.max(1, Math.max(...rows.map((r) => r.end)) - t0);
  return (
    <div class="timeline" role="list" aria-label="Timeline">
      {rows.map(({ n, start, end }) => (
        <div class="tl-row" role="listitem" key={n.id.node_id}>
          <button type="button" class="link tl-label" onClick={() => onSelect(n.id.node_id)}>
            {n.id.node_id}
          </button>
          <div class="tl-track">
            {(attempts[n.id.node_id]?.length ?? 0) > 1 ? (
              attemptBars(attempts[n.id.node_id], now).map((a) => (
                <div
                  key={a.attempt}
                  class={`tl-bar tl-attempt ${phaseClass(a.phase)}`}
                  data-attempt={a.attempt}
                  style={{ left: `${((a.start - t0) / span) * 100}%`, width: `${Math.max(0.5, ((a.end - a.start) / span) * 100)}%` }}
                  title={`${n.id.node_id}, attempt ${a.attempt + 1}: ${a.phase.toLowerCase()}, ${formatSeconds((a.end - a.start) / 1000)}`}
                />
              ))
            ) : (
              <div
                class={`tl-bar ${phaseClass(n.closure.phase)}`}
                style={{ left: `${((start - t0) / span) * 100}%`, width: `${Math.max(0.5, ((end - start) / span) * 100)}%` }}
                title={`${n.id.node_id}: ${formatSeconds((end - start) / 1000)}`}
              />
            )}
          </div>
          <span class="tl-time muted">{formatSeconds((end - start) / 1000)}</span>
        </div>
      ))}
    </div>
  );
}
