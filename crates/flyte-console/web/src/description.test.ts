import { describe, expect, it } from "vitest";
import { inline, parseDescription } from "./description";

describe("parseDescription", () => {
  it("reads a flytekit docstring's long description: paragraphs, lists, literal blocks, titles", () => {
    const text = [
      "Trains the model on **all** rows, see `train()`.",
      "It is long,",
      "and wraps.",
      "",
      "Steps",
      "-----",
      "",
      "- read the data",
      "- fit, then",
      "  score",
      "",
      "1. one",
      "2. two",
      "",
      "Example::",
      "",
      "    model = train(df)",
      "      indented = True",
      "",
      "After.",
    ].join("\n");
    expect(parseDescription(text)).toEqual([
      {
        kind: "para",
        spans: [
          { kind: "text", text: "Trains the model on " },
          { kind: "strong", text: "all" },
          { kind: "text", text: " rows, see " },
          { kind: "code", text: "train()" },
          { kind: "text", text: ". It is long, and wraps." },
        ],
      },
      { kind: "heading", spans: [{ kind: "text", text: "Steps" }] },
      {
        kind: "list",
        ordered: false,
        items: [[{ kind: "text", text: "read the data" }], [{ kind: "text", text: "fit, then score" }]],
      },
      { kind: "list", ordered: true, items: [[{ kind: "text", text: "one" }], [{ kind: "text", text: "two" }]] },
      { kind: "para", spans: [{ kind: "text", text: "Example:" }] },
      { kind: "code", text: "model = train(df)\n  indented = True" },
      { kind: "para", spans: [{ kind: "text", text: "After." }] },
    ]);
  });

  it("reads Markdown headings and fenced code, and code directives", () => {
    const blocks = parseDescription("# Title\n\n```python\nx = 1\n```\n\n.. code-block:: python\n\n   y = 2\n");
    expect(blocks).toEqual([
      { kind: "heading", spans: [{ kind: "text", text: "Title" }] },
      { kind: "code", text: "x = 1" },
      { kind: "code", text: "y = 2" },
    ]);
  });
});

describe("inline", () => {
  it("links only http(s) URLs, in RST, Markdown and bare forms", () => {
    expect(inline("See `the docs <https://docs.flyte.org/x>`_ or [here](https://a.b/c) or https://e.f/g.")).toEqual([
      { kind: "text", text: "See " },
      { kind: "link", text: "the docs", href: "https://docs.flyte.org/x" },
      { kind: "text", text: " or " },
      { kind: "link", text: "here", href: "https://a.b/c" },
      { kind: "text", text: " or " },
      { kind: "link", text: "https://e.f/g", href: "https://e.f/g" },
      { kind: "text", text: "." },
    ]);
    expect(inline("[click](javascript:alert(1))").every((s) => s.kind !== "link")).toBe(true);
    expect(inline("*emphasis* and ``literal``")).toEqual([
      { kind: "em", text: "emphasis" },
      { kind: "text", text: " and " },
      { kind: "code", text: "literal" },
    ]);
  });
});
