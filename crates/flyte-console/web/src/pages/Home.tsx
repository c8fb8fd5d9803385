import { api } from "../api";
import { ErrorBox, Loading, useAsync } from "../components/common";
import { paths } from "../router";

export function Home() {
  const r = useAsync(() => api.projects(), []);
  return (
    <main id="main">
      <h1>Projects</h1>
      {r.error ? <ErrorBox error={r.error} what="projects" /> : null}
      {r.loading && !r.data ? <Loading what="projects" /> : null}
      {r.data && r.data.projects.length === 0 ? (
        <p class="empty">
          No projects yet. Register one with <code>pyflyte register</code> or <code>flytectl create project</code>.
        </p>
      ) : null}
      <ul class="project-list">
        {(r.data?.projects ?? []).map((p) => (
          <li key={p.id} class="card">
            <h2>{p.name || p.id}</h2>
            {p.description ? <p class="muted">{p.description}</p> : null}
            <ul class="domain-links" aria-label={`Domains of ${p.id}`}>
              {p.domains.map((d) => (
                <li key={d.id}>
                  <a href={paths.executions(p.id, d.id)}>{d.name || d.id}</a>
                </li>
              ))}
            </ul>
          </li>
        ))}
      </ul>
    </main>
  );
}
