import { render } from "preact-render-to-string";
import { afterEach, describe, expect, it, vi } from "vitest";
import { api } from "../api";
import { DescriptionView } from "./Description";
import { VariableTable } from "./Literal";

describe("DescriptionView", () => {
  it("shows the short and long descriptions, with markup in the text as text", () => {
    const html = render(
      <DescriptionView
        d={{
          short_description: "Adds two numbers.",
          long_description: {
            format: "DESCRIPTION_FORMAT_RST",
            value: 'A **longer** <script>alert(1)</script> text <img src=x onerror="alert(2)">:\n\n- one\n- two',
          },
        }}
      />,
    );
    expect(html).toContain('<p class="lead">Adds two numbers.</p>');
    expect(html).toContain("<strong>longer</strong>");
    expect(html).toContain("&lt;script>alert(1)&lt;/script>");
    expect(html).not.toContain("<script");
    expect(html).not.toContain("<img");
    expect(html).toContain("<ul><li>one</li><li>two</li></ul>");
  });

  it("shows HTML as its source, a stored description's URI, and nothing when there is none", () => {
    const html = render(<DescriptionView d={{ long_description: { format: "DESCRIPTION_FORMAT_HTML", value: "<b>hi</b>" } }} />);
    expect(html).toContain('<pre class="desc-code">&lt;b>hi&lt;/b></pre>');
    expect(render(<DescriptionView d={{ long_description: { uri: "s3://b/desc.md" } }} />)).toContain("<code>s3://b/desc.md</code>");
    expect(render(<DescriptionView d={null} />)).toBe("");
    expect(render(<DescriptionView d={{ short_description: "", long_description: { value: "" } }} />)).toBe("");
  });
});

describe("variable descriptions", () => {
  it("shows a variable's docstring description, not its bare name", () => {
    const html = render(
      <VariableTable
        vars={{ a: { type: { simple: "INTEGER" }, description: "the first addend" }, b: { type: { simple: "INTEGER" }, description: "b" } }}
        empty=""
        label="Interface inputs"
      />,
    );
    expect(html).toContain("the first addend");
    expect(html.match(/var-desc/g)).toHaveLength(1);
  });
});

describe("api.description", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("reads DescriptionEntityService's REST route, and a 404 is no description", async () => {
    const id = { project: "p", domain: "d", name: "wf.x", version: "v 1" };
    vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify({ short_description: "s" }), { status: 200 })));
    await expect(api.description("workflows", id)).resolves.toEqual({ short_description: "s" });
    expect(vi.mocked(fetch).mock.calls[0][0]).toBe("/api/v1/description_entities/WORKFLOW/p/d/wf.x/v%201");
    vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify({ code: 5, message: "no" }), { status: 404 })));
    await expect(api.description("tasks", id)).resolves.toBeNull();
    expect(vi.mocked(fetch).mock.calls[0][0]).toBe("/api/v1/description_entities/TASK/p/d/wf.x/v%201");
  });
});
