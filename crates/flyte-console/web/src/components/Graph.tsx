import { NODE_H, NODE_W } from "../graph";
import { humanPhase, phaseClass } from "../format";
import { type Box, CHIP_H, CHIP_W, HEAD, INSET, LINE, type Placed, type VNode } from "../runGraph";

export interface PlacedProps {
  g: Placed;
  /** The selected node of the page's execution. */
  selected: string | null;
  onSelect?: (v: Pick<VNode, "nodeId" | "exec">) => void;
  onToggle?: (key: string) => void;
  /** A workflow's definition: nodes have no run to be "not started" in. */
  definition?: boolean;
}

/** The DAG as SVG, nodes coloured by phase; nodes are buttons (click, Enter or Space); an
 * expandable node has a +/− button that opens its inside in place. */
export function PlacedGraph({ g, ...p }: PlacedProps) {
  return (
    <div class="graph-wrap">
      <svg
        class="graph"
        role="group"
        aria-label="Workflow graph"
        width={g.width}
        height={g.height}
        // Small graphs shrink to fit the page; big ones keep readable text and scroll.
        style={{ maxWidth: "100%", height: "auto", minWidth: `${Math.round(g.width * 0.6)}px` }}
        viewBox={`0 0 ${g.width} ${g.height}`}
      >
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
            <path d="M0,0 L10,5 L0,10 z" class="edge-head" />
          </marker>
        </defs>
        <Level g={g} {...p} />
      </svg>
    </div>
  );
}

function Level({ g, ...p }: PlacedProps) {
  const at = new Map(g.boxes.map((b) => [b.v.key, b]));
  return (
    <>
      {g.edges.map((e) => {
        const a = at.get(e.from);
        const b = at.get(e.to);
        if (!a || !b) return null;
        const x1 = a.x + a.w;
        const y1 = a.y + NODE_H / 2;
        const x2 = b.x;
        const y2 = b.y + NODE_H / 2;
        const mx = (x1 + x2) / 2;
        return (
          <path
            key={`${e.from}->${e.to}`}
            class="edge"
            d={`M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2 - 2},${y2}`}
            marker-end="url(#arrow)"
          />
        );
      })}
      {g.boxes.map((b) => (
        <BoxView key={b.v.key} b={b} {...p} />
      ))}
    </>
  );
}

const onKeys = (f: () => void) => (e: KeyboardEvent) => {
  if (e.key === "Enter" || e.key === " ") {
    e.preventDefault();
    f();
  }
};

function BoxView({ b, selected, onSelect, onToggle, definition }: { b: Box } & Omit<PlacedProps, "g">) {
  const v = b.v;
  const canSelect = !!onSelect && !v.special && v.started;
  const select = () => onSelect?.(v);
  const title = `${v.label} (${v.nodeId})${v.what ? `, ${v.what}` : ""}${v.phase ? `: ${humanPhase(v.phase)}` : ""}`;
  const node = (
    <g
      class={`node ${phaseClass(v.phase)}${selected === v.nodeId && !v.exec ? " selected" : ""}${v.special ? " special" : ""}`}
      data-node-id={v.key}
      data-phase={v.phase ?? ""}
      tabIndex={canSelect ? 0 : undefined}
      role={canSelect ? "button" : undefined}
      aria-label={title}
      onClick={canSelect ? select : undefined}
      onKeyDown={canSelect ? onKeys(select) : undefined}
    >
      <rect width={v.open ? b.w : NODE_W} height={NODE_H} rx={v.special ? 22 : 6} />
      <text x={10} y={18} class="node-label">
        {clip(v.label, v.expandable && !v.open ? 17 : 20)}
      </text>
      <text x={10} y={34} class="node-sub">
        {v.special ? "" : subLine(v, !!definition)}
      </text>
      <title>{title}</title>
    </g>
  );
  const expander =
    v.expandable && onToggle ? (
      <g
        class="expander-g"
        role="button"
        tabIndex={0}
        aria-expanded={v.open}
        aria-label={`${v.open ? "Collapse" : "Expand"} ${v.nodeId} in the graph`}
        transform={`translate(${(v.open ? b.w : NODE_W) - 24},4)`}
        onClick={() => onToggle(v.key)}
        onKeyDown={onKeys(() => onToggle(v.key))}
      >
        <rect width={20} height={20} rx={4} />
        <text x={10} y={15} text-anchor="middle">
          {v.open ? "−" : "+"}
        </text>
        <title>{`${v.open ? "Collapse" : "Expand"} ${v.what ?? "node"}`}</title>
      </g>
    ) : null;
  return (
    <g transform={`translate(${b.x},${b.y})`} class={v.open ? "cluster" : undefined} data-cluster={v.open ? v.key : undefined}>
      {v.open ? <rect class="cluster-bg" width={b.w} height={b.h} rx={8} /> : null}
      {node}
      {expander}
      {v.open && b.inner ? (
        <InnerView b={b} selected={selected} onSelect={onSelect} onToggle={onToggle} definition={definition} />
      ) : null}
    </g>
  );
}

const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** Id and phase in a node's width (~24 characters); a long unique id (`n1-0-n0-0-dn12`) keeps
 * its end, which tells siblings apart. */
function subLine(v: VNode, definition: boolean): string {
  const state = v.phase ? humanPhase(v.phase) : v.started || definition ? "" : "not started";
  const room = Math.max(6, 24 - (state ? state.length + 3 : 0));
  const id = v.nodeId.length > room ? `…${v.nodeId.slice(-(room - 1))}` : v.nodeId;
  return state ? `${id} · ${state}` : id;
}

function InnerView({ b, ...p }: { b: Box } & Omit<PlacedProps, "g">) {
  const i = b.inner!;
  if (i.kind === "graph") {
    return (
      <g transform={`translate(${INSET},${HEAD})`}>
        <Level g={i.g} {...p} />
      </g>
    );
  }
  if (i.kind === "note") {
    return (
      <text x={INSET} y={HEAD + LINE} class={`inner-note${i.error ? " warn" : ""}`}>
        {i.text}
      </text>
    );
  }
  return (
    <g class="summary" data-summary={b.v.key}>
      {i.lines.map((l, n) => (
        <text key={n} x={INSET} y={HEAD + (n + 1) * LINE - 4} class={n === 0 ? "summary-head" : "summary-line"}>
          {l}
        </text>
      ))}
      {i.chips.map(({ c, x, y }) => {
        const can = c.selectable && !!p.onSelect;
        const select = () => p.onSelect?.(c);
        const label = `${c.label}${c.phase ? `: ${humanPhase(c.phase)}` : ""}`;
        return (
          <g
            key={c.key}
            class={`chip node ${phaseClass(c.phase)}`}
            transform={`translate(${x},${y})`}
            data-node-id={c.key}
            data-phase={c.phase ?? ""}
            role={can ? "button" : "img"}
            tabIndex={can ? 0 : undefined}
            aria-label={label}
            onClick={can ? select : undefined}
            onKeyDown={can ? onKeys(select) : undefined}
          >
            <rect width={CHIP_W} height={CHIP_H} rx={4} />
            <text x={6} y={16} class="chip-label">
              {c.label.length > 8 ? `${c.label.slice(0, 7)}…` : c.label}
            </text>
            <title>{label}</title>
          </g>
        );
      })}
      {i.rest ? (
        <text x={INSET} y={b.h - INSET - 2} class="summary-line muted">
          {i.rest}
        </text>
      ) : null}
    </g>
  );
}
