//! The web page at `/`: the service graph of the last 15 minutes, the outlier monitor's
//! latest pods, a trace lookup and the API's entry points. One static file, no
//! external resources; it reads the same JSON API as every other client.

use axum::response::Html;

/// The page, compiled into the binary.
const INDEX_HTML: &str = include_str!("../page/index.html");

/// `GET /`
pub(crate) async fn index() -> Html<&'static str> {
    Html(INDEX_HTML)
}
