//! A status API, a live dashboard and Prometheus metrics for
//! [`ephemeral`] coordinators, as an [`axum`] router you mount in your own app.
//!
//! Put the coordinators and signal sinks to show in a [`Registry`], build a [`router`] over it
//! and nest it anywhere. The router has its state applied (`Router<()>`), and every URL in the
//! dashboard is relative, so it works under any prefix and behind a proxy.
//!
//! ```no_run
//! use axum::Router;
//! use ephemeral::{Options, SignalSink, WorkCoordinator};
//! use ephemeral_http::Registry;
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let alerts = SignalSink::default();
//!     let emails = WorkCoordinator::new(
//!         |_to: String, _op| async {},
//!         Options::default().name("emails"),
//!     );
//!
//!     let registry = Registry::new();
//!     registry.register("emails", emails.clone());
//!     registry.register_sink("alerts", &alerts);
//!
//!     // The dashboard at http://127.0.0.1:3000/ephemeral/
//!     let app = Router::new().nest_service("/ephemeral", ephemeral_http::router(registry));
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, app).await
//! }
//! ```
//!
//! # Mounting under a prefix
//!
//! Mount with [`Router::nest_service`](axum::Router::nest_service): it serves `/ephemeral`,
//! `/ephemeral/` and everything below. The page must be loaded at `/ephemeral/` (with the
//! slash) for its relative URLs to resolve, so `GET /ephemeral` answers a `308` redirect to
//! `./ephemeral/`, keeping the query. [`Router::nest`](axum::Router::nest) works for the API,
//! but axum 0.8's `nest("/ephemeral", ..)` does not route `/ephemeral/` at all (a 404 from your
//! app), so the dashboard is unreachable that way. At the root, use `merge` or serve the router
//! as it is.
//!
//! # Endpoints
//!
//! Relative to the mount point; every answer but `/` and `metrics` is `application/json`.
//! Timestamps are RFC 3339 strings in UTC with milliseconds (`2024-05-01T12:00:00.000Z`); ids
//! are the hex display of [`OperationId`](ephemeral::OperationId). Errors are
//! `{"error": "..."}` with a 4xx status; no input makes a handler panic.
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /` | the dashboard page, with a status document and the 200 newest signals embedded |
//! | `GET api/status` | `{"coordinators": [..], "sinks": [{"name", "len"}], "time", "controls"}` |
//! | `GET api/coordinators/{name}/operations` | the window's operations, running first, then newest finished first; unknown name: 404 naming the known ones |
//! | `GET api/signals?pattern=&key=&since=&limit=` | signals of every coordinator and sink, newest first; `pattern` is a glob, `since` RFC 3339, `limit` 0 to 10 000 (default 200); bad `since` or `limit`: 400 |
//! | `GET api/events` | server-sent events: `stats` (the status document) at once and every second, `signal` for each new signal |
//! | `GET metrics` | Prometheus text format |
//! | `POST api/coordinators/{name}/pause`, `.../resume`, `.../limit` | only with [`router_with_controls`] |
//!
//! A coordinator in `api/status` is `{"name", "max_concurrency", "paused", "closed",
//! "pending", "active", "enqueued", "completed", "failed", "cancelled", "deferred", "dynamic",
//! "p50_ms", "p95_ms"}`, where the percentiles are over the durations of the finished
//! operations in the window (`null` when there are none). An operation is `{"id", "key",
//! "label", "state" ("running" | "completed" | "failed"), "started", "completed",
//! "duration_ms", "error", "signals": [names], "pinned"}`; a running operation's
//! `duration_ms` is how long it has run so far. A signal is `{"signal", "key",
//! "operation_id", "timestamp", "source"}`, `source` being the registered name; an event a
//! coordinator also raised into a registered sink is listed once, under the coordinator.
//!
//! The event stream follows the coordinators registered at any time (polled every 250 ms) and
//! the sinks registered when it was opened: a sink registered later shows up in new
//! connections only. Each event is sent once, even when both a coordinator and a sink hold it.
//!
//! # Metrics
//!
//! `GET metrics` renders, per coordinator (label `coordinator`, the registered name), the
//! counters `ephemeral_enqueued_total`, `ephemeral_finished_total` (label `outcome`:
//! `completed` or `failed`) and `ephemeral_cancelled_total` and the gauges `ephemeral_pending`, `ephemeral_active`,
//! `ephemeral_max_concurrency` and `ephemeral_deferred`; per sink (label `sink`),
//! `ephemeral_sink_signals`. They go through a `metrics-exporter-prometheus` recorder that
//! each router owns and sets at each scrape: nothing is installed as the global recorder, so
//! your own recorder, if any, is left alone. Labels never carry ids or keys. The names match
//! what the core's `metrics` feature records into your own recorder.
//!
//! # Authentication
//!
//! The router checks no credentials: protect it with your own tower layers, as for any other
//! route of your app. For instance with a bearer token:
//!
//! ```no_run
//! use axum::extract::Request;
//! use axum::http::{header, StatusCode};
//! use axum::middleware::{self, Next};
//! use axum::response::Response;
//! use axum::Router;
//! use ephemeral_http::Registry;
//!
//! async fn require_token(request: Request, next: Next) -> Result<Response, StatusCode> {
//!     let authorized = request
//!         .headers()
//!         .get(header::AUTHORIZATION)
//!         .and_then(|value| value.to_str().ok())
//!         == Some("Bearer let-me-in");
//!     if authorized {
//!         Ok(next.run(request).await)
//!     } else {
//!         Err(StatusCode::UNAUTHORIZED)
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let registry = Registry::new();
//!     let status = ephemeral_http::router_with_controls(registry)
//!         .layer(middleware::from_fn(require_token));
//!     let app = Router::new().nest_service("/ephemeral", status);
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, app).await
//! }
//! ```
//!
//! A browser's `EventSource` cannot send an `Authorization` header: for the dashboard, prefer
//! a cookie or your proxy's authentication.
#![doc(test(attr(deny(warnings))))]

mod api;
mod doc;
mod events;
mod metrics;
mod registry;
mod time;

pub use registry::Registry;

use axum::Router;

/// The read-only status router over `registry`: the dashboard, the JSON API, the event stream
/// and the metrics (see the [crate docs](crate) for the endpoints).
///
/// The control endpoints do not exist here: a `POST` to them is a 404. Each call builds its
/// own metrics recorder; build the router once.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use axum::body::Body;
/// use axum::http::{Request, StatusCode};
/// use ephemeral::{Options, WorkCoordinator};
/// use ephemeral_http::Registry;
/// use tower::ServiceExt;
///
/// let registry = Registry::new();
/// let jobs = WorkCoordinator::new(|_n: u32, _op| async {}, Options::default());
/// registry.register("jobs", jobs.clone());
///
/// let app = ephemeral_http::router(registry);
/// let request = Request::get("/api/status").body(Body::empty()).unwrap();
/// let response = app.oneshot(request).await.unwrap();
/// assert_eq!(response.status(), StatusCode::OK);
/// # }
/// ```
pub fn router(registry: Registry) -> Router {
    api::build(registry, false)
}

/// [`router`] plus the control endpoints, as `POST` requests answering the coordinator's
/// status object (as in `api/status`):
///
/// - `api/coordinators/{name}/pause` and `.../resume`;
/// - `api/coordinators/{name}/limit` with the JSON body `{"max_concurrency": n}`: a
///   coordinator built without `dynamic_concurrency` answers 409, a bad body or 0 answers 400.
///
/// Anyone who can reach them can stop your work: put them behind authentication (see
/// [Authentication](crate#authentication)).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use axum::body::Body;
/// use axum::http::{Request, StatusCode};
/// use ephemeral::{Options, WorkCoordinator};
/// use ephemeral_http::Registry;
/// use tower::ServiceExt;
///
/// let registry = Registry::new();
/// let jobs = WorkCoordinator::new(|_n: u32, _op| async {}, Options::default());
/// registry.register("jobs", jobs.clone());
///
/// let app = ephemeral_http::router_with_controls(registry);
/// let request = Request::post("/api/coordinators/jobs/pause").body(Body::empty()).unwrap();
/// let response = app.oneshot(request).await.unwrap();
/// assert_eq!(response.status(), StatusCode::OK);
/// assert!(jobs.is_paused());
/// # }
/// ```
pub fn router_with_controls(registry: Registry) -> Router {
    api::build(registry, true)
}
