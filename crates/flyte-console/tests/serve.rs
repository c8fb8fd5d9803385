//! The console as the server serves it: deep links open the app, assets come with their
//! media types and cache headers, `/` leads to the console.

use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn get(path: &str) -> (StatusCode, http::HeaderMap, String) {
    let response = flyte_console::router()
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn header(headers: &http::HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(&name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

/// The script the app's index.html loads (`/console/assets/index-<hash>.js`).
fn script_src(html: &str) -> String {
    let start = html
        .find("src=\"/console/assets/")
        .expect("a script under /console/assets/")
        + 5;
    let end = start + html[start..].find('"').expect("closing quote");
    html[start..end].to_string()
}

#[tokio::test]
async fn root_redirects_to_the_console() {
    let (status, headers, _) = get("/").await;
    assert_eq!(status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(header(&headers, header::LOCATION), "/console/");
}

#[tokio::test]
async fn deep_links_serve_the_app() {
    for path in [
        "/console",
        "/console/",
        "/console/projects/flytesnacks/domains/development/executions/abc123",
        "/console/projects/flytesnacks/domains/development/tasks/examples.basics.add/version/v1",
        "/console/projects/p/domains/d/workflows/wf/version/v%201",
        "/console/projects/p/domains/d/launch_plans/lp/version/v",
    ] {
        let (status, headers, body) = get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(
            header(&headers, header::CONTENT_TYPE),
            "text/html; charset=utf-8",
            "{path}"
        );
        assert_eq!(
            header(&headers, header::CACHE_CONTROL),
            "no-cache",
            "{path}"
        );
        assert!(body.contains("<div id=\"app\">"), "{path}: {body}");
    }
}

#[tokio::test]
async fn assets_have_media_types_and_are_cached_for_good() {
    let (_, _, html) = get("/console/").await;
    let src = script_src(&html);
    let (status, headers, body) = get(&src).await;
    assert_eq!(status, StatusCode::OK, "{src}");
    assert_eq!(
        header(&headers, header::CONTENT_TYPE),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        header(&headers, header::CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );
    assert!(
        !body.contains("<div id=\"app\">"),
        "the script, not the page"
    );

    let css = flyte_console::files()
        .into_iter()
        .find(|f| f.ends_with(".css"))
        .expect("a stylesheet is embedded");
    let (status, headers, _) = get(&format!("/console/{css}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, header::CONTENT_TYPE),
        "text/css; charset=utf-8"
    );
}

#[tokio::test]
async fn a_missing_asset_is_404_not_the_app() {
    let (status, _, body) = get("/console/assets/index-doesnotexist.js").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!body.contains("<div id=\"app\">"));
}
