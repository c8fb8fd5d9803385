// A task's or workflow's description in full: the short one as a lead, the long one as
// headings, paragraphs, lists and code (description.ts), built as elements so that markup in
// the text (HTML included) shows as text and can never run.
import { api } from "../api";
import { parseDescription, type Block, type Span } from "../description";
import type { DescriptionEntity, Identifier } from "../types";
import { ErrorBox, useAsync } from "./common";

function Spans({ spans }: { spans: Span[] }) {
  return (
    <>
      {spans.map((s, i) => {
        switch (s.kind) {
          case "text":
            return s.text;
          case "code":
            return <code key={i}>{s.text}</code>;
          case "strong":
            return <strong key={i}>{s.text}</strong>;
          case "em":
            return <em key={i}>{s.text}</em>;
          case "link":
            return (
              <a key={i} href={s.href} rel="noopener noreferrer" target="_blank">
                {s.text}
              </a>
            );
        }
      })}
    </>
  );
}

function BlockView({ b }: { b: Block }) {
  switch (b.kind) {
    case "heading":
      return (
        <h3>
          <Spans spans={b.spans} />
        </h3>
      );
    case "para":
      return (
        <p>
          <Spans spans={b.spans} />
        </p>
      );
    case "code":
      return <pre class="desc-code">{b.text}</pre>;
    case "list": {
      const items = b.items.map((it, i) => (
        <li key={i}>
          <Spans spans={it} />
        </li>
      ));
      return b.ordered ? <ol>{items}</ol> : <ul>{items}</ul>;
    }
  }
}

/** What a description entity shows; nothing when it says nothing. `of`: whose it is, when
 * not the page's own entity (a launch plan shows its workflow's). */
export function DescriptionView({ d, of }: { d: DescriptionEntity | null | undefined; of?: string }) {
  const long = d?.long_description;
  const short = d?.short_description?.trim();
  const value = long?.value?.trim();
  if (!short && !value && !long?.uri) return null;
  // HTML is shown as its source text: rendering it would run whatever it holds.
  const blocks = value ? (long?.format === "DESCRIPTION_FORMAT_HTML" ? [{ kind: "code", text: value } as Block] : parseDescription(value)) : [];
  return (
    <section class="card description" aria-labelledby="desc-h">
      <h2 id="desc-h">Description{of ? <span class="muted"> of {of}</span> : null}</h2>
      {short ? <p class="lead">{short}</p> : null}
      {blocks.map((b, i) => (
        <BlockView key={i} b={b} />
      ))}
      {!value && long?.uri ? (
        <p class="muted">
          The full description is stored at <code>{long.uri}</code>.
        </p>
      ) : null}
      {d?.source_code?.link && /^https?:\/\//.test(d.source_code.link) ? (
        <p>
          <a href={d.source_code.link} rel="noopener noreferrer" target="_blank">
            Source code
          </a>
        </p>
      ) : null}
    </section>
  );
}

/** Reads and shows the description of a task or workflow version. */
export function Description({ kind, id, of }: { kind: "workflows" | "tasks"; id: Identifier; of?: string }) {
  const r = useAsync(() => api.description(kind, id), [kind, id.project, id.domain, id.name, id.version]);
  if (r.error) return <ErrorBox error={r.error} what="the description" />;
  return <DescriptionView d={r.data} of={of} />;
}
