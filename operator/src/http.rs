//! `/health` and `/metrics` (Prometheus text format).

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// The operator's HTTP endpoints.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.render(),
                    )
                        .into_response()
                }
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    async fn get(router: Router, path: &str) -> (StatusCode, String) {
        let response = router
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn health_and_metrics_answer() {
        let metrics = Arc::new(Metrics::default());
        metrics.failed("Workspace", "catalog");
        let router = router(metrics);
        assert_eq!(
            get(router.clone(), "/health").await,
            (StatusCode::OK, "ok".into())
        );
        let (status, text) = get(router.clone(), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            text.contains(
                r#"roost_operator_reconcile_failures_total{kind="Workspace",error="catalog"} 1"#
            ),
            "{text}"
        );
        assert_eq!(get(router, "/nope").await.0, StatusCode::NOT_FOUND);
    }
}
