import { useEffect, useState } from "preact/hooks";
import { api, type EntityKind } from "./api";
import { useAsync } from "./components/common";
import { EntityList, EntityPage, KIND_LABEL, Versions } from "./pages/Entities";
import { ExecutionPage } from "./pages/Execution";
import { Executions } from "./pages/Executions";
import { Home } from "./pages/Home";
import { Schedules } from "./pages/Schedules";
import { navigate, onLinkClick, parse, paths, useLocation } from "./router";
import { type Theme, applyTheme, storedTheme } from "./theme";

export function App() {
  const loc = useLocation();
  const route = parse(loc.pathname);
  useEffect(() => {
    document.addEventListener("click", onLinkClick);
    return () => document.removeEventListener("click", onLinkClick);
  }, []);
  const scope = "project" in route ? { project: route.project, domain: route.domain } : null;
  useEffect(() => {
    document.title =
      route.page === "execution" ? `${route.name} · Flyte-RS` : scope ? `${scope.project}/${scope.domain} · Flyte-RS` : "Flyte-RS console";
  }, [loc.pathname]);

  let page;
  switch (route.page) {
    case "home":
      page = <Home />;
      break;
    case "executions":
      page = <Executions project={route.project} domain={route.domain} phase={loc.search.get("phase") ?? ""} />;
      break;
    case "execution":
      page = (
        <ExecutionPage
          key={route.name}
          id={{ project: route.project, domain: route.domain, name: route.name }}
          node={loc.search.get("node")}
        />
      );
      break;
    case "schedules":
      page = <Schedules project={route.project} domain={route.domain} />;
      break;
    case "entities":
      page = <EntityList {...route} />;
      break;
    case "versions":
      page = <Versions {...route} />;
      break;
    case "entity":
      page = <EntityPage {...route} from={loc.search.get("from")} />;
      break;
    default:
      page = (
        <main id="main">
          <h1>Page not found</h1>
          <p>
            Nothing lives at <code>{loc.pathname}</code>. <a href={paths.home()}>Go to the projects.</a>
          </p>
        </main>
      );
  }
  const active =
    route.page === "entities" || route.page === "versions" || route.page === "entity"
      ? route.kind
      : route.page === "schedules"
        ? "schedules"
        : "executions";
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={paths.home()}>
          Flyte-RS
        </a>
        {scope ? <ScopePicker project={scope.project} domain={scope.domain} /> : null}
        {scope ? (
          <nav aria-label="Sections" class="tabs">
            <a href={paths.executions(scope.project, scope.domain)} aria-current={active === "executions" ? "page" : undefined}>
              Executions
            </a>
            {(Object.keys(KIND_LABEL) as EntityKind[]).map((k) => (
              <a key={k} href={paths.entities(scope.project, scope.domain, k)} aria-current={active === k ? "page" : undefined}>
                {KIND_LABEL[k]}
              </a>
            ))}
            <a href={paths.schedules(scope.project, scope.domain)} aria-current={active === "schedules" ? "page" : undefined}>
              Schedules
            </a>
          </nav>
        ) : null}
        <ThemePick />
        <User />
      </header>
      {page}
    </>
  );
}

/** Who is signed in, and a way out (authentication on; nothing when it is off). */
function User() {
  const [name, setName] = useState<string | null>(null);
  useEffect(() => {
    fetch("/me", { headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : null))
      .then((me) => me && setName(me.name || me.preferredUsername || me.email || me.subject || null))
      .catch(() => undefined);
  }, []);
  if (!name) return null;
  return (
    <span class="user">
      <span aria-label="Signed in as">{name}</span> <a href="/logout">Sign out</a>
    </span>
  );
}

/** Light, dark or the system's theme. */
function ThemePick() {
  const [theme, setTheme] = useState<Theme>(storedTheme());
  return (
    <label class="theme-pick">
      Theme{" "}
      <select
        aria-label="Theme"
        value={theme}
        onChange={(e) => {
          const t = (e.target as HTMLSelectElement).value as Theme;
          applyTheme(t);
          setTheme(t);
        }}
      >
        <option value="system">system</option>
        <option value="light">light</option>
        <option value="dark">dark</option>
      </select>
    </label>
  );
}

/** Project and domain selects: changing either goes to that scope's executions. */
function ScopePicker({ project, domain }: { project: string; domain: string }) {
  const r = useAsync(() => api.projects(), []);
  const projects = r.data?.projects ?? [];
  const current = projects.find((p) => p.id === project);
  const domains = current?.domains ?? [{ id: domain, name: domain }];
  return (
    <div class="scope">
      <label>
        <span class="sr-only">Project</span>
        <select
          aria-label="Project"
          value={project}
          onChange={(e) => navigate(paths.executions((e.target as HTMLSelectElement).value, domain))}
        >
          {(projects.length ? projects : [{ id: project, name: project, domains: [] }]).map((p) => (
            <option key={p.id} value={p.id}>
              {p.name || p.id}
            </option>
          ))}
        </select>
      </label>
      <label>
        <span class="sr-only">Domain</span>
        <select
          aria-label="Domain"
          value={domain}
          onChange={(e) => navigate(paths.executions(project, (e.target as HTMLSelectElement).value))}
        >
          {domains.map((d) => (
            <option key={d.id} value={d.id}>
              {d.name || d.id}
            </option>
          ))}
        </select>
      </label>
    </div>
  );
}
