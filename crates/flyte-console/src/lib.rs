//! The web console, served by the one binary under `/console` (docs/console.md).
//!
//! `build.rs` builds the single-page app in `web/` into `$OUT_DIR/dist`; every file of it is
//! embedded here, so the binary needs no Node.js, no CDN and no files at run time. The app
//! talks to the REST gateway under `/api/v1/` like any other client.
//!
//! Routing: a file of the build is served as itself; any other `/console/*` path gets
//! `index.html`, so the deep links flytekit prints
//! (`/console/projects/{p}/domains/{d}/executions/{name}`,
//! `…/{tasks|workflows|launch_plans}/{name}/version/{version}`) open the app, which routes in
//! the browser. `/` redirects to `/console/`.

use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};
use include_dir::{Dir, include_dir};

static DIST: Dir<'static> = include_dir!("$OUT_DIR/dist");

/// Where the console lives.
pub const BASE: &str = "/console";

/// Vite's output folder for content-hashed files (`/console/assets/index-<hash>.js`).
const HASHED_DIR: &str = "assets/";

/// The console's routes: `/`, `/console`, `/console/` and `/console/{*path}`. It has no
/// fallback, so it merges into the admin router (which has one).
pub fn router() -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/console/") }))
        .route(BASE, get(index))
        .route("/console/", get(index))
        .route("/console/{*path}", get(file_or_index))
}

async fn index() -> Response {
    serve("index.html")
}

async fn file_or_index(Path(path): Path<String>) -> Response {
    if path != "index.html" && DIST.get_file(&path).is_some() {
        return serve(&path);
    }
    if path.starts_with(HASHED_DIR) {
        // A missing asset is a 404, not the app: a stale page asking for an old bundle must
        // fail visibly rather than parse HTML as JavaScript.
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such console asset\n",
        )
            .into_response();
    }
    serve("index.html")
}

fn serve(path: &str) -> Response {
    let Some(file) = DIST.get_file(path) else {
        // build.rs checks that index.html exists, so this is only a missing asset.
        return StatusCode::NOT_FOUND.into_response();
    };
    // Hashed names change with their content: cache them for good. index.html names the
    // current hashes, so browsers revalidate it every time.
    let cache = if path.starts_with(HASHED_DIR) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(path)),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        file.contents(),
    )
        .into_response()
}

/// The media type of the file kinds a Vite build emits.
fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Every embedded file's path (tests and diagnostics).
pub fn files() -> Vec<&'static str> {
    let mut out = Vec::new();
    collect(&DIST, &mut out);
    out.sort_unstable();
    out
}

fn collect(dir: &'static Dir<'static>, out: &mut Vec<&'static str>) {
    for f in dir.files() {
        if let Some(p) = f.path().to_str() {
            out.push(p);
        }
    }
    for d in dir.dirs() {
        collect(d, out);
    }
}
