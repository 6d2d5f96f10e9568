//! [`SignalingHttpClient`]: downloads that report their stages and progress as signals.

use crate::Operation;

/// A [`reqwest::Client`] whose [`download`](Self::download) emits stage and progress signals
/// on an [`Operation`], so a coordinator's window, sink and `on_signal` handlers follow
/// every download (cargo feature `http-client`).
///
/// ```
/// use ephemeral::patterns::SignalingHttpClient;
/// use ephemeral::{Operation, Options, SignalSource, WorkCoordinator};
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() {
///     // A local server to download from.
///     let app = axum::Router::new().route("/file", axum::routing::get(|| async { "x".repeat(1000) }));
///     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
///     let url = format!("http://{}/file", listener.local_addr().unwrap());
///     tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
///
///     let client = SignalingHttpClient::new(reqwest::Client::new());
///     let downloads = WorkCoordinator::new(
///         move |url: String, op: Operation| {
///             let client = client.clone();
///             async move {
///                 let request = reqwest::Request::new(reqwest::Method::GET, url.parse().unwrap());
///                 let body = client.download(request, &op).await?;
///                 println!("{url}: {} bytes", body.len());
///                 Ok::<_, reqwest::Error>(())
///             }
///         },
///         Options::default().on_signal(|e| println!("signal {}", e.signal())),
///     );
///     downloads.enqueue(url).await.unwrap();
///     downloads.complete();
///     downloads.drain().await;
///     assert!(downloads.has_signal("stage.completed"));
///     assert_eq!(downloads.count_signals("stage.failed"), 0);
/// }
/// ```
#[derive(Clone, Debug)]
pub struct SignalingHttpClient {
    client: reqwest::Client,
}

impl SignalingHttpClient {
    /// Wraps `client` (cheap to clone: clones share its connection pool).
    #[must_use]
    pub fn new(client: reqwest::Client) -> Self {
        SignalingHttpClient { client }
    }

    /// The wrapped client.
    #[must_use]
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `request` and reads the whole body, emitting on `op`, in order:
    /// `stage.starting`, `progress:0`, `stage.request`, `stage.headers`, `stage.reading`,
    /// `progress:NN` as the body streams in (only with a content length; each percentage
    /// once, rising, below 100), `progress:100`, `stage.completed`.
    ///
    /// A status that is not a success (4xx, 5xx) is an error
    /// ([`reqwest::Response::error_for_status`]).
    ///
    /// # Errors
    ///
    /// Any [`reqwest::Error`] (connecting, status, reading): `stage.failed` is emitted and the
    /// error is returned.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future aborts the request; the signals emitted so far stay on
    /// the operation (no `stage.failed` is emitted).
    pub async fn download(
        &self,
        request: reqwest::Request,
        op: &Operation,
    ) -> Result<bytes::Bytes, reqwest::Error> {
        op.emit("stage.starting");
        op.emit("progress:0");
        let result = self.fetch(request, op).await;
        if result.is_err() {
            op.emit("stage.failed");
        }
        result
    }

    async fn fetch(
        &self,
        request: reqwest::Request,
        op: &Operation,
    ) -> Result<bytes::Bytes, reqwest::Error> {
        op.emit("stage.request");
        let response = self.client.execute(request).await?;
        op.emit("stage.headers");
        let mut response = response.error_for_status()?;
        op.emit("stage.reading");
        let total = response.content_length().filter(|&n| n > 0);
        let mut body = Vec::with_capacity(total.map_or(0, |n| n.min(1 << 20) as usize));
        let mut reported = 0u64;
        while let Some(chunk) = response.chunk().await? {
            body.extend_from_slice(&chunk);
            if let Some(total) = total {
                let percent = (body.len() as u64).saturating_mul(100) / total;
                if percent > reported && percent < 100 {
                    reported = percent;
                    op.emit(format!("progress:{percent}"));
                }
            }
        }
        op.emit("progress:100");
        op.emit("stage.completed");
        Ok(bytes::Bytes::from(body))
    }
}
