//! Request-rate and throughput limits: the Events API's per data source capacity (requests and
//! bytes per second) and a JWT's own `limits.rps`. Each is a one-second fixed window per key,
//! kept in memory by this gateway process.
//!
//! A handler records its decision in the request's [`Slot`]; the [`headers`] middleware then
//! writes `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (and `Retry-After` on
//! a 429) onto whatever the handler answered, success or error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

const WINDOW: Duration = Duration::from_secs(1);
/// Past this many keys, windows that have ended are forgotten.
const PRUNE_ABOVE: usize = 10_000;

/// What one check decided, for the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may go on.
    pub allowed: bool,
    /// The limit per window.
    pub limit: u64,
    /// What is left of it in this window.
    pub remaining: u64,
    /// Whole seconds until the window ends (at least 1).
    pub reset_secs: u64,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    used: u64,
}

/// Fixed one-second windows per key.
#[derive(Debug, Default)]
pub struct FixedWindow {
    windows: Mutex<HashMap<String, Window>>,
}

impl FixedWindow {
    /// Spends `cost` of `key`'s `limit` for the window that holds `now`. A request costlier than
    /// the whole limit passes alone in an empty window, so a low limit never blocks it forever.
    pub fn check_at(&self, key: &str, limit: u64, cost: u64, now: Instant) -> Decision {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > PRUNE_ABOVE {
            windows.retain(|_, w| now.duration_since(w.started) < WINDOW);
        }
        let window = windows.entry(key.to_string()).or_insert(Window {
            started: now,
            used: 0,
        });
        if now.duration_since(window.started) >= WINDOW {
            *window = Window {
                started: now,
                used: 0,
            };
        }
        let allowed = window.used == 0 || window.used.saturating_add(cost) <= limit;
        if allowed {
            window.used = window.used.saturating_add(cost);
        }
        let left = WINDOW.saturating_sub(now.duration_since(window.started));
        Decision {
            allowed,
            limit,
            remaining: limit.saturating_sub(window.used),
            reset_secs: left.as_secs_f64().ceil().max(1.0) as u64,
        }
    }

    /// [`Self::check_at`] now.
    pub fn check(&self, key: &str, limit: u64, cost: u64) -> Decision {
        self.check_at(key, limit, cost, Instant::now())
    }
}

/// The limiters a gateway holds.
#[derive(Debug, Default)]
pub struct Limiters {
    /// Events API requests per data source.
    pub events_requests: FixedWindow,
    /// Events API bytes per data source.
    pub events_bytes: FixedWindow,
    /// Requests per JWT with `limits.rps`.
    pub jwt_requests: FixedWindow,
}

tokio::task_local! {
    /// The decision whose headers the current request's answer carries.
    static SLOT: Arc<Mutex<Option<Decision>>>;
}

/// Records `decision` for the current request's answer (a no-op outside the middleware).
pub fn record(decision: Decision) {
    let _ = SLOT.try_with(|slot| {
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(decision);
    });
}

/// Middleware: writes the recorded decision's headers onto the answer.
pub async fn headers(request: Request, next: Next) -> Response {
    let slot = Arc::new(Mutex::new(None));
    let mut response = SLOT.scope(slot.clone(), next.run(request)).await;
    let decision = *slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(decision) = decision {
        let headers = response.headers_mut();
        let mut set = |name: &'static str, value: u64| {
            headers.insert(name, HeaderValue::from(value));
        };
        set("x-ratelimit-limit", decision.limit);
        set("x-ratelimit-remaining", decision.remaining);
        set("x-ratelimit-reset", decision.reset_secs);
        if !decision.allowed {
            set("retry-after", decision.reset_secs);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_pass_up_to_the_limit_then_wait_for_the_next_window() {
        let limiter = FixedWindow::default();
        let start = Instant::now();
        for used in 1..=3 {
            let decision = limiter.check_at("ds", 3, 1, start);
            assert!(decision.allowed);
            assert_eq!(decision.remaining, 3 - used);
            assert_eq!(decision.reset_secs, 1);
        }
        let refused = limiter.check_at("ds", 3, 1, start + Duration::from_millis(400));
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.reset_secs, 1);
        let later = limiter.check_at("ds", 3, 1, start + Duration::from_millis(1000));
        assert!(later.allowed);
        assert_eq!(later.remaining, 2);
    }

    #[test]
    fn keys_are_counted_apart() {
        let limiter = FixedWindow::default();
        let now = Instant::now();
        assert!(limiter.check_at("a", 1, 1, now).allowed);
        assert!(!limiter.check_at("a", 1, 1, now).allowed);
        assert!(limiter.check_at("b", 1, 1, now).allowed);
    }

    #[test]
    fn bytes_are_spent_by_size_and_a_large_request_passes_alone() {
        let limiter = FixedWindow::default();
        let now = Instant::now();
        assert!(limiter.check_at("ds", 100, 60, now).allowed);
        let refused = limiter.check_at("ds", 100, 60, now);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 40);
        assert!(limiter.check_at("ds", 100, 40, now).allowed);
        let next = now + WINDOW;
        assert!(
            limiter.check_at("ds", 100, 500, next).allowed,
            "alone in an empty window"
        );
        assert!(!limiter.check_at("ds", 100, 1, next).allowed);
    }

    #[test]
    fn stale_windows_are_pruned_when_there_are_many() {
        let limiter = FixedWindow::default();
        let now = Instant::now();
        for key in 0..=PRUNE_ABOVE {
            limiter.check_at(&key.to_string(), 1, 1, now);
        }
        limiter.check_at("last", 1, 1, now + WINDOW);
        assert_eq!(limiter.windows.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_middleware_writes_the_recorded_decision() {
        use axum::Router;
        use axum::routing::get;
        use tower::ServiceExt;
        let app = Router::new()
            .route(
                "/",
                get(|| async {
                    record(Decision {
                        allowed: false,
                        limit: 5,
                        remaining: 0,
                        reset_secs: 1,
                    });
                    (axum::http::StatusCode::TOO_MANY_REQUESTS, "slow down")
                }),
            )
            .layer(axum::middleware::from_fn(headers));
        let response = app
            .oneshot(
                Request::builder()
                    .uri("/")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let header = |name: &str| response.headers()[name].to_str().unwrap().to_string();
        assert_eq!(header("x-ratelimit-limit"), "5");
        assert_eq!(header("x-ratelimit-remaining"), "0");
        assert_eq!(header("x-ratelimit-reset"), "1");
        assert_eq!(header("retry-after"), "1");
    }
}
