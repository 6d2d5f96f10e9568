//! `SignalingHttpClient` against a local axum server.
#![cfg(feature = "http-client")]

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ephemeral::patterns::SignalingHttpClient;
use ephemeral::{Operation, Options, WorkCoordinator};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CHUNK: usize = 2500;
const CHUNKS: usize = 4;

async fn file() -> Response {
    let chunks = futures::stream::unfold(0usize, |i| async move {
        if i == CHUNKS {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        Some((Ok::<_, std::io::Error>(vec![b'x'; CHUNK]), i + 1))
    });
    Response::builder()
        .header(header::CONTENT_LENGTH, CHUNK * CHUNKS)
        .body(Body::from_stream(chunks))
        .unwrap()
}

async fn broken() -> impl IntoResponse {
    (StatusCode::INTERNAL_SERVER_ERROR, "boom")
}

async fn serve() -> SocketAddr {
    let app = Router::new()
        .route("/file", get(file))
        .route("/broken", get(broken));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Downloads `url` in a coordinator body; answers the body's result (length or error text)
/// and every signal the operation emitted, in order.
async fn download(url: String) -> (Result<usize, String>, Vec<String>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let result: Arc<Mutex<Option<Result<usize, String>>>> = Arc::default();
    let log = seen.clone();
    let out = result.clone();
    let client = SignalingHttpClient::new(reqwest::Client::new());
    let c = WorkCoordinator::new(
        move |url: String, op: Operation| {
            let (client, out) = (client.clone(), out.clone());
            async move {
                let request = reqwest::Request::new(reqwest::Method::GET, url.parse().unwrap());
                let r = client.download(request, &op).await;
                *out.lock().unwrap() = Some(r.as_ref().map(|b| b.len()).map_err(|e| e.to_string()));
                r.map(|_| ())
            }
        },
        Options::default().on_signal(move |e| log.lock().unwrap().push(e.signal().to_string())),
    );
    c.enqueue(url).await.unwrap();
    c.complete();
    c.drain().await;
    let r = result.lock().unwrap().take().unwrap();
    assert_eq!(c.total_failed(), u64::from(r.is_err()));
    let signals = seen.lock().unwrap().clone();
    (r, signals)
}

#[tokio::test]
async fn a_download_with_a_content_length_emits_every_stage_in_order() {
    let addr = serve().await;
    let (result, signals) = download(format!("http://{addr}/file")).await;
    assert_eq!(result, Ok(CHUNK * CHUNKS));
    assert_eq!(
        signals[..5],
        [
            "stage.starting",
            "progress:0",
            "stage.request",
            "stage.headers",
            "stage.reading"
        ],
        "{signals:?}"
    );
    assert_eq!(
        signals[signals.len() - 2..],
        ["progress:100", "stage.completed"],
        "{signals:?}"
    );
    let middle: Vec<u32> = signals[5..signals.len() - 2]
        .iter()
        .map(|s| {
            s.strip_prefix("progress:")
                .expect("only progress in between")
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        !middle.is_empty(),
        "progress while the body streams: {signals:?}"
    );
    assert!(middle.windows(2).all(|w| w[0] < w[1]), "rising: {middle:?}");
    assert!(middle.iter().all(|p| (1..100).contains(p)), "{middle:?}");
    assert!(!signals.iter().any(|s| s == "stage.failed"));
}

#[tokio::test]
async fn a_server_error_emits_stage_failed_and_returns_the_error() {
    let addr = serve().await;
    let (result, signals) = download(format!("http://{addr}/broken")).await;
    let err = result.unwrap_err();
    assert!(err.contains("500"), "{err}");
    assert_eq!(
        signals,
        [
            "stage.starting",
            "progress:0",
            "stage.request",
            "stage.headers",
            "stage.failed"
        ]
    );
}

#[tokio::test]
async fn a_refused_connection_emits_stage_failed_and_returns_the_error() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }; // dropped: nothing listens there any more
    let (result, signals) = download(format!("http://{closed}/file")).await;
    assert!(result.is_err());
    assert_eq!(
        signals,
        [
            "stage.starting",
            "progress:0",
            "stage.request",
            "stage.failed"
        ]
    );
}
