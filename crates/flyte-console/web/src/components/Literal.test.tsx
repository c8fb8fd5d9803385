import { render } from "preact-render-to-string";
import { describe, expect, it } from "vitest";
import { LiteralTable } from "./Literal";

describe("LiteralTable", () => {
  it("renders one row per name with its type and value", () => {
    const html = render(
      <LiteralTable
        label="Outputs"
        empty="No outputs."
        vars={{ total: { type: { simple: "INTEGER" } } }}
        map={{
          literals: {
            total: { scalar: { primitive: { integer: "17" } } },
            files: { collection: { literals: [{ scalar: { blob: { uri: "file:///a" } } }] } },
          },
        }}
      />,
    );
    expect(html).toContain('data-name="total"');
    expect(html).toContain("int");
    expect(html).toContain("<code class=\"lit-value\">17</code>");
    expect(html).toContain("file:///a");
    // Sorted by name: files before total.
    expect(html.indexOf("files")).toBeLessThan(html.indexOf("total"));
  });

  it("says so when there is nothing", () => {
    expect(render(<LiteralTable label="Inputs" empty="No inputs." map={{ literals: {} }} />)).toContain("No inputs.");
    expect(render(<LiteralTable label="Inputs" empty="No inputs." map={null} />)).toContain("No inputs.");
  });
});
