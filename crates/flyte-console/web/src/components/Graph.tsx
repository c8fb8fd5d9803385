import { useMemo } from "preact/hooks";
import { NODE_H, NODE_W, layout } from "../graph";
import { humanPhase, phaseClass } from "../format";

interface Props {
  ids: string[];
  labels: Record<string, string>;
  edges: { from: string; to: string }[];
  phases?: Record<string, string>;
  selected?: string | null;
  onSelect?: (id: string) => void;
}

/** The DAG as SVG, nodes coloured by phase; nodes are buttons (click, Enter or Space). */
export function Graph({ ids, labels, edges, phases, selected, onSelect }: Props) {
  const g = useMemo(() => layout(ids, edges, labels), [ids, edges, labels]);
  const at = new Map(g.nodes.map((n) => [n.id, n]));
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
        {g.edges.map((e) => {
          const a = at.get(e.from);
          const b = at.get(e.to);
          if (!a || !b) return null;
          const x1 = a.x + NODE_W;
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
        {g.nodes.map((n) => {
          const phase = phases?.[n.id];
          const special = n.id === "start-node" || n.id === "end-node";
          const select = () => onSelect?.(n.id);
          return (
            <g
              key={n.id}
              class={`node ${phaseClass(phase)}${selected === n.id ? " selected" : ""}${special ? " special" : ""}`}
              transform={`translate(${n.x},${n.y})`}
              data-node-id={n.id}
              data-phase={phase ?? ""}
              tabIndex={onSelect && !special ? 0 : undefined}
              role={onSelect && !special ? "button" : undefined}
              aria-label={`${n.label} (${n.id})${phase ? `: ${humanPhase(phase)}` : ""}`}
              onClick={special ? undefined : select}
              onKeyDown={(e) => {
                if (!special && (e.key === "Enter" || e.key === " ")) {
                  e.preventDefault();
                  select();
                }
              }}
            >
              <rect width={NODE_W} height={NODE_H} rx={special ? 22 : 6} />
              <text x={10} y={18} class="node-label">
                {n.label.length > 22 ? `${n.label.slice(0, 21)}…` : n.label}
              </text>
              <text x={10} y={34} class="node-sub">
                {special ? "" : `${n.id}${phase ? ` · ${humanPhase(phase)}` : ""}`}
              </text>
              <title>{`${n.label} (${n.id})${phase ? `: ${phase}` : ""}`}</title>
            </g>
          );
        })}
      </svg>
    </div>
  );
}
