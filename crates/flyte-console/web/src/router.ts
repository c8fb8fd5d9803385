// A tiny history router: the URL is the state. Paths are the ones flytekit and flyteconsole
// print (/console/projects/{p}/domains/{d}/executions/{name}, …/{kind}/{name}/version/{v}).
import { useEffect, useState } from "preact/hooks";

export const BASE = "/console";

export type Route =
  | { page: "home" }
  | { page: "executions"; project: string; domain: string }
  | { page: "schedules"; project: string; domain: string }
  | { page: "execution"; project: string; domain: string; name: string }
  | { page: "entities"; project: string; domain: string; kind: "workflows" | "tasks" | "launch_plans" }
  | { page: "versions"; project: string; domain: string; kind: "workflows" | "tasks" | "launch_plans"; name: string }
  | {
      page: "entity";
      project: string;
      domain: string;
      kind: "workflows" | "tasks" | "launch_plans";
      name: string;
      version: string;
    }
  | { page: "notfound"; path: string };

const KINDS = new Set(["workflows", "tasks", "launch_plans"]);

export function parse(pathname: string): Route {
  const rest = pathname.startsWith(BASE) ? pathname.slice(BASE.length) : pathname;
  const s = rest
    .split("/")
    .filter(Boolean)
    .map((x) => {
      try {
        return decodeURIComponent(x);
      } catch {
        return x;
      }
    });
  if (s.length === 0) return { page: "home" };
  if (s[0] === "projects" && s.length >= 2) {
    const project = s[1];
    // /console/projects/{p}[/domains/{d}…]; without a domain, the first one is used.
    if (s.length === 2) return { page: "executions", project, domain: "development" };
    if (s[2] === "domains" && s.length >= 4) {
      const domain = s[3];
      const tail = s.slice(4);
      if (tail.length === 0 || (tail.length === 1 && tail[0] === "executions"))
        return { page: "executions", project, domain };
      if (tail.length === 1 && tail[0] === "schedules") return { page: "schedules", project, domain };
      if (tail[0] === "executions" && tail.length === 2) return { page: "execution", project, domain, name: tail[1] };
      if (KINDS.has(tail[0])) {
        const kind = tail[0] as "workflows" | "tasks" | "launch_plans";
        if (tail.length === 1) return { page: "entities", project, domain, kind };
        if (tail.length === 2) return { page: "versions", project, domain, kind, name: tail[1] };
        if (tail.length === 4 && tail[2] === "version")
          return { page: "entity", project, domain, kind, name: tail[1], version: tail[3] };
      }
    }
  }
  return { page: "notfound", path: pathname };
}

const enc = encodeURIComponent;
export const paths = {
  home: () => `${BASE}/`,
  executions: (p: string, d: string) => `${BASE}/projects/${enc(p)}/domains/${enc(d)}/executions`,
  schedules: (p: string, d: string) => `${BASE}/projects/${enc(p)}/domains/${enc(d)}/schedules`,
  execution: (p: string, d: string, name: string) => `${BASE}/projects/${enc(p)}/domains/${enc(d)}/executions/${enc(name)}`,
  entities: (p: string, d: string, kind: string) => `${BASE}/projects/${enc(p)}/domains/${enc(d)}/${kind}`,
  versions: (p: string, d: string, kind: string, name: string) =>
    `${BASE}/projects/${enc(p)}/domains/${enc(d)}/${kind}/${enc(name)}`,
  entity: (p: string, d: string, kind: string, name: string, version: string) =>
    `${BASE}/projects/${enc(p)}/domains/${enc(d)}/${kind}/${enc(name)}/version/${enc(version)}`,
};

export function navigate(to: string) {
  if (to === location.pathname + location.search) return;
  history.pushState(null, "", to);
  dispatchEvent(new PopStateEvent("popstate"));
  window.scrollTo(0, 0);
}

/** The current location (path + query), re-rendering on navigation. */
export function useLocation(): { pathname: string; search: URLSearchParams } {
  const [loc, setLoc] = useState(() => ({ pathname: location.pathname, search: location.search }));
  useEffect(() => {
    const on = () => setLoc({ pathname: location.pathname, search: location.search });
    addEventListener("popstate", on);
    return () => removeEventListener("popstate", on);
  }, []);
  return { pathname: loc.pathname, search: new URLSearchParams(loc.search) };
}

/** Client-side navigation for plain left clicks on internal links; others act as links do. */
export function onLinkClick(e: MouseEvent) {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = (e.target as Element | null)?.closest?.("a");
  if (!a || a.target || a.hasAttribute("download")) return;
  const href = a.getAttribute("href");
  if (!href || !href.startsWith(`${BASE}/`)) return;
  e.preventDefault();
  navigate(href);
}
