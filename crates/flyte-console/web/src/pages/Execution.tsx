import { useMemo, useState } from "preact/hooks";
import { api } from "../api";
import { Graph } from "../components/Graph";
import { LiteralTable } from "../components/Literal";
import { ErrorBox, Loading, Phase, Section, useAsync } from "../components/common";
import { elapsed, formatTime, isTerminal } from "../format";
import { workflowGraph } from "../graph";
import { navigate, paths } from "../router";
import type { ExecutionError, ExecutionId, NodeExecution, TaskExecution } from "../types";

const POLL_MS = 2000;

export function ExecutionPage({ id, node }: { id: ExecutionId; node: string | null }) {
  const ex = useAsync(() => api.execution(id), [id.project, id.domain, id.name], POLL_MS, (e) => !isTerminal(e.closure.phase));
  const phase = ex.data?.closure.phase;
  const running = !!phase && !isTerminal(phase);
  const nodes = useAsync(
    () => api.nodeExecutions(id),
    [id.project, id.domain, id.name, running],
    POLL_MS,
    () => running,
  );
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
          <Actions id={id} running={running} onChanged={ex.reload} />
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
      </header>

      <Section title="Graph" id="graph-h">
        {wf.error ? <ErrorBox error={wf.error} what="the workflow" /> : null}
        {wf.data ? (
          <RunGraph wf={wf.data.closure?.compiled_workflow?.primary} byNode={byNode} selected={node} onSelect={select} />
        ) : wf.loading ? (
          <Loading what="graph" />
        ) : null}
      </Section>

      {node ? <NodePanel id={id} nodeId={node} ne={byNode[node]} onClose={() => select(null)} /> : null}

      <Section title="Nodes" id="nodes-h">
        {nodes.error && !nodes.data ? <ErrorBox error={nodes.error} what="node executions" /> : null}
        <NodeTable id={id} nodes={nodes.data?.node_executions ?? []} onSelect={select} selected={node} />
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

function Actions({ id, running, onChanged }: { id: ExecutionId; running: boolean; onChanged: () => void }) {
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

function RunGraph({
  wf,
  byNode,
  selected,
  onSelect,
}: {
  wf: Parameters<typeof workflowGraph>[0] | undefined;
  byNode: Record<string, NodeExecution>;
  selected: string | null;
  onSelect: (id: string) => void;
}) {
  const g = useMemo(() => (wf ? workflowGraph(wf) : null), [wf]);
  if (!g) return <p class="empty">This workflow has no compiled graph.</p>;
  const phases: Record<string, string> = {};
  for (const [k, v] of Object.entries(byNode)) phases[k] = v.closure.phase;
  return <Graph ids={g.ids} labels={g.labels} edges={g.edges} phases={phases} selected={selected} onSelect={onSelect} />;
}

const CACHE: Record<string, string> = {
  CACHE_DISABLED: "–",
  CACHE_MISS: "miss",
  CACHE_HIT: "hit",
  CACHE_POPULATED: "populated",
  CACHE_LOOKUP_FAILURE: "lookup failed",
  CACHE_PUT_FAILURE: "put failed",
  CACHE_SKIPPED: "skipped",
  CACHE_EVICTED: "evicted",
};

function NodeTable({
  id,
  nodes,
  onSelect,
  selected,
}: {
  id: ExecutionId;
  nodes: NodeExecution[];
  onSelect: (n: string) => void;
  selected: string | null;
}) {
  const shown = nodes
    .filter((n) => n.id.node_id !== "start-node" && n.id.node_id !== "end-node")
    .sort((a, b) => (a.closure.started_at ?? a.closure.created_at ?? "").localeCompare(b.closure.started_at ?? b.closure.created_at ?? ""));
  // Attempts come from each task node's task executions; re-read when any phase changes.
  const signature = shown.map((n) => `${n.id.node_id}:${n.closure.phase}`).join(",");
  const attempts = useAsync(async () => {
    const out: Record<string, number> = {};
    await Promise.all(
      shown
        .filter((n) => n.closure.task_node_metadata)
        .slice(0, 200)
        .map(async (n) => {
          try {
            out[n.id.node_id] = (await api.taskExecutions(id, n.id.node_id)).task_executions.length;
          } catch {
            // Shown as unknown.
          }
        }),
    );
    return out;
  }, [id.name, signature]);
  if (shown.length === 0) return <p class="empty">No node has started yet.</p>;
  return (
    <table class="grid" aria-label="Nodes">
      <thead>
        <tr>
          <th scope="col">Node</th>
          <th scope="col">Phase</th>
          <th scope="col">Started</th>
          <th scope="col">Duration</th>
          <th scope="col">Attempts</th>
          <th scope="col">Cache</th>
        </tr>
      </thead>
      <tbody>
        {shown.map((n) => (
          <tr key={n.id.node_id} data-node={n.id.node_id} class={selected === n.id.node_id ? "selected" : ""}>
            <td>
              <button type="button" class="link" onClick={() => onSelect(n.id.node_id)}>
                {n.id.node_id}
              </button>
            </td>
            <td>
              <Phase phase={n.closure.phase} />
            </td>
            <td>{formatTime(n.closure.started_at)}</td>
            <td>{elapsed(n.closure.phase, n.closure.started_at, n.closure.duration)}</td>
            <td>{attempts.data?.[n.id.node_id] ?? (n.closure.task_node_metadata ? "…" : "–")}</td>
            <td>{CACHE[n.closure.task_node_metadata?.cache_status ?? ""] ?? n.closure.task_node_metadata?.cache_status ?? "–"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function NodePanel({
  id,
  nodeId,
  ne,
  onClose,
}: {
  id: ExecutionId;
  nodeId: string;
  ne: NodeExecution | undefined;
  onClose: () => void;
}) {
  const phase = ne?.closure.phase;
  const data = useAsync(() => api.nodeData(id, nodeId), [id.name, nodeId, phase]);
  const tasks = useAsync(() => api.taskExecutions(id, nodeId), [id.name, nodeId, phase]);
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
      {!ne ? <p class="empty">This node has not started.</p> : null}
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
      {tasks.data && tasks.data.task_executions.length > 0 ? <Attempts list={tasks.data.task_executions} /> : null}
    </section>
  );
}

function Attempts({ list }: { list: TaskExecution[] }) {
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
                {t.closure.error?.message ? <pre class="attempt-error">{t.closure.error.message}</pre> : null}
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
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
