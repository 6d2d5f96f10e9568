//! The router and its request handlers.

use crate::doc::{self, SignalFilter};
use crate::events;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::time::parse_rfc3339;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ephemeral::pattern::Pattern;
use ephemeral::{AnyCoordinator, ConcurrencyError};
use serde::Deserialize;
use std::sync::Arc;

const DASHBOARD: &str = include_str!("../assets/dashboard.html");
const PLACEHOLDER: &str = "/*__EPHEMERAL_INITIAL__*/null";
const CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; \
                   style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:";
/// Signals embedded in the page and answered by `api/signals` without a `limit`.
const DEFAULT_SIGNALS: usize = 200;
const MAX_SIGNALS: usize = 10_000;

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) registry: Registry,
    pub(crate) controls: bool,
    metrics: Arc<Metrics>,
}

pub(crate) fn build(registry: Registry, controls: bool) -> Router {
    let state = AppState {
        registry,
        controls,
        metrics: Arc::new(Metrics::new()),
    };
    let mut router = Router::new()
        .route("/", get(index))
        .route("/api/status", get(status))
        .route("/api/coordinators/{name}/operations", get(operations))
        .route("/api/signals", get(signals))
        .route("/api/events", get(events::events))
        .route("/metrics", get(metrics));
    if controls {
        router = router
            .route("/api/coordinators/{name}/pause", post(pause))
            .route("/api/coordinators/{name}/resume", post(resume))
            .route("/api/coordinators/{name}/limit", post(limit));
    }
    router.with_state(state)
}

/// An error answered as `{"error": "..."}`.
pub(crate) struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn find(registry: &Registry, name: &str) -> Result<Arc<dyn AnyCoordinator>, ApiError> {
    registry.coordinator(name).ok_or_else(|| {
        let known = registry.coordinator_names().join(", ");
        ApiError(
            StatusCode::NOT_FOUND,
            format!("unknown coordinator `{name}`; known: {known}"),
        )
    })
}

async fn index(OriginalUri(uri): OriginalUri, State(state): State<AppState>) -> Response {
    let path = uri.path();
    if !path.ends_with('/') {
        // Relative URLs in the page need the trailing slash. The redirect is relative too
        // (`./name/`), so it stays right behind a proxy that rewrites the path prefix.
        let last = path.rsplit('/').next().unwrap_or_default();
        let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        let location = format!("./{last}/{query}");
        return match HeaderValue::from_str(&location) {
            Ok(location) => (
                StatusCode::PERMANENT_REDIRECT,
                [(header::LOCATION, location)],
            )
                .into_response(),
            Err(_) => StatusCode::BAD_REQUEST.into_response(),
        };
    }
    let initial = serde_json::json!({
        "status": doc::status(&state.registry, state.controls),
        "signals": doc::signals(
            &state.registry,
            &SignalFilter { limit: DEFAULT_SIGNALS, ..SignalFilter::default() },
        ),
    });
    // Inside a <script>: nothing in the data may close it, open a comment, or end a line
    // for JavaScript (U+2028/U+2029); the escapes are still the same JSON.
    let initial = initial
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    let page = DASHBOARD.replacen(PLACEHOLDER, &initial, 1);
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page,
    )
        .into_response()
}

async fn status(State(state): State<AppState>) -> Response {
    Json(doc::status(&state.registry, state.controls)).into_response()
}

async fn operations(
    Path(name): Path<String>,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let c = find(&state.registry, &name)?;
    Ok(Json(doc::operations(&*c)).into_response())
}

#[derive(Deserialize)]
pub(crate) struct SignalsQuery {
    pattern: Option<String>,
    key: Option<String>,
    since: Option<String>,
    limit: Option<String>,
}

fn bad_request(message: String) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message)
}

async fn signals(
    State(state): State<AppState>,
    query: Result<Query<SignalsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| bad_request(format!("bad query: {}", e.body_text())))?;
    let since = match q.since.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(parse_rfc3339(s).map_err(|e| bad_request(format!("bad `since`: {e}")))?),
        None => None,
    };
    let limit = match q.limit.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n <= MAX_SIGNALS => n,
            _ => {
                return Err(bad_request(format!(
                    "bad `limit`: `{s}` is not a number from 0 to {MAX_SIGNALS}"
                )))
            }
        },
        None => DEFAULT_SIGNALS,
    };
    let filter = SignalFilter {
        pattern: q
            .pattern
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(Pattern::new),
        key: q.key.filter(|k| !k.is_empty()),
        since,
        limit,
    };
    Ok(Json(doc::signals(&state.registry, &filter)).into_response())
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&state.registry),
    )
        .into_response()
}

async fn pause(
    Path(name): Path<String>,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let c = find(&state.registry, &name)?;
    c.pause();
    Ok(Json(doc::coordinator_status(&name, &*c)).into_response())
}

async fn resume(
    Path(name): Path<String>,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let c = find(&state.registry, &name)?;
    c.resume();
    Ok(Json(doc::coordinator_status(&name, &*c)).into_response())
}

#[derive(Deserialize)]
struct LimitBody {
    max_concurrency: usize,
}

async fn limit(
    Path(name): Path<String>,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let c = find(&state.registry, &name)?;
    let body: LimitBody = serde_json::from_slice(&body).map_err(|e| {
        bad_request(format!(
            "bad body: {e}; expected {{\"max_concurrency\": <positive integer>}}"
        ))
    })?;
    if !c.is_dynamic() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!(
                "coordinator `{name}` was built without dynamic concurrency: its limit is fixed"
            ),
        ));
    }
    c.set_max_concurrency(body.max_concurrency).map_err(|e| {
        let status = match e {
            ConcurrencyError::Zero => StatusCode::BAD_REQUEST,
            _ => StatusCode::CONFLICT,
        };
        ApiError(status, e.to_string())
    })?;
    Ok(Json(doc::coordinator_status(&name, &*c)).into_response())
}
