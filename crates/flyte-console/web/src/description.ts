// A task's or workflow's long description (its docstring, registered as RST by flytekit;
// Markdown also reads well) as blocks and inline spans. The page renders them as elements
// (components/Description.tsx), never as HTML: whatever the text holds shows as text. Only the
// common constructs are understood; anything else stays a paragraph of plain text.

export type Span =
  | { kind: "text"; text: string }
  | { kind: "code"; text: string }
  | { kind: "strong"; text: string }
  | { kind: "em"; text: string }
  | { kind: "link"; text: string; href: string };

export type Block =
  | { kind: "heading"; spans: Span[] }
  | { kind: "para"; spans: Span[] }
  | { kind: "list"; ordered: boolean; items: Span[][] }
  | { kind: "code"; text: string };

const BULLET = /^\s*(?:[-*+•]|\d+[.)]|#\.)\s+/;
const ORDERED = /^\s*(?:\d+[.)]|#\.)\s+/;
const RST_UNDERLINE = /^([=\-~^"'`#*+])\1{2,}\s*$/;
const MD_HEADING = /^#{1,6}\s+/;
const FENCE = /^\s*(```|~~~)/;
const DIRECTIVE_CODE = /^\s*\.\.\s+(?:code-block|code|sourcecode)::/;
const indentOf = (line: string) => line.length - line.trimStart().length;

/** The text as blocks: headings, paragraphs, lists and literal (code) blocks. */
export function parseDescription(text: string): Block[] {
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  const blocks: Block[] = [];
  let i = 0;
  // An indented block after a line ending in `::` (or a code directive) is literal text.
  const literalAfter = (from: number): number => {
    let j = from;
    while (j < lines.length && lines[j].trim() === "") j++;
    const start = j;
    const base = j < lines.length ? indentOf(lines[j]) : 0;
    if (base === 0) return from;
    while (j < lines.length && (lines[j].trim() === "" || indentOf(lines[j]) >= base)) j++;
    const body = lines.slice(start, j).map((l) => l.slice(base));
    while (body.length && body[body.length - 1].trim() === "") body.pop();
    blocks.push({ kind: "code", text: body.join("\n") });
    return j;
  };
  while (i < lines.length) {
    const line = lines[i];
    if (line.trim() === "") {
      i++;
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence) {
      const body: string[] = [];
      i++;
      while (i < lines.length && !lines[i].trimStart().startsWith(fence[1])) body.push(lines[i++]);
      i++; // the closing fence
      blocks.push({ kind: "code", text: body.join("\n") });
      continue;
    }
    if (DIRECTIVE_CODE.test(line)) {
      i = literalAfter(i + 1);
      continue;
    }
    if (MD_HEADING.test(line)) {
      blocks.push({ kind: "heading", spans: inline(line.replace(MD_HEADING, "").trim()) });
      i++;
      continue;
    }
    // RST: an over- and/or underlined title.
    if (RST_UNDERLINE.test(line) && i + 2 < lines.length && RST_UNDERLINE.test(lines[i + 2]) && lines[i + 1].trim()) {
      blocks.push({ kind: "heading", spans: inline(lines[i + 1].trim()) });
      i += 3;
      continue;
    }
    if (i + 1 < lines.length && RST_UNDERLINE.test(lines[i + 1]) && lines[i + 1].trim().length >= line.trim().length) {
      blocks.push({ kind: "heading", spans: inline(line.trim()) });
      i += 2;
      continue;
    }
    if (BULLET.test(line)) {
      const ordered = ORDERED.test(line);
      const items: string[] = [];
      while (i < lines.length && lines[i].trim() !== "") {
        if (BULLET.test(lines[i])) items.push(lines[i].replace(BULLET, "").trim());
        else items[items.length - 1] += " " + lines[i].trim(); // a wrapped item
        i++;
      }
      blocks.push({ kind: "list", ordered, items: items.map(inline) });
      continue;
    }
    const para: string[] = [];
    while (i < lines.length && lines[i].trim() !== "" && !(para.length && (BULLET.test(lines[i]) || FENCE.test(lines[i])))) {
      para.push(lines[i].trim());
      i++;
    }
    let joined = para.join(" ");
    const literal = joined.endsWith("::");
    // RST: "Example::" keeps one colon; a lone "::" vanishes.
    if (literal) joined = joined === "::" ? "" : joined.replace(/\s*::$/, joined.endsWith(" ::") ? "" : ":");
    if (joined) blocks.push({ kind: "para", spans: inline(joined) });
    if (literal) i = literalAfter(i);
  }
  return blocks;
}

// Inline markup, first match wins: ``code`` / `code`, **strong**, *em*, [text](url),
// `text <url>`_, and bare http(s) URLs.
const INLINE =
  /``([^`]+)``|`([^`<]+?)\s*<(https?:\/\/[^>\s]+)>`__?|\[([^\]]+)\]\((https?:\/\/[^)\s]+)\)|`([^`]+)`|\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*|(https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])/g;

/** One line's spans. Links are only http(s): a `javascript:` URL stays text. */
export function inline(text: string): Span[] {
  const out: Span[] = [];
  let at = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index! > at) out.push({ kind: "text", text: text.slice(at, m.index) });
    if (m[1] !== undefined) out.push({ kind: "code", text: m[1] });
    else if (m[2] !== undefined) out.push({ kind: "link", text: m[2], href: m[3] });
    else if (m[4] !== undefined) out.push({ kind: "link", text: m[4], href: m[5] });
    else if (m[6] !== undefined) out.push({ kind: "code", text: m[6] });
    else if (m[7] !== undefined) out.push({ kind: "strong", text: m[7] });
    else if (m[8] !== undefined) out.push({ kind: "em", text: m[8] });
    else out.push({ kind: "link", text: m[9], href: m[9] });
    at = m.index! + m[0].length;
  }
  if (at < text.length) out.push({ kind: "text", text: text.slice(at) });
  return out;
}
