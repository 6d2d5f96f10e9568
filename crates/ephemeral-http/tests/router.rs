//! The router, exercised without a socket through `tower::ServiceExt::oneshot`.

use axum::body::{Body, Bytes};
use axum::http::{header, Request, StatusCode};
use axum::Router;
use ephemeral::{KeyedWorkCoordinator, Operation, Options, SignalSink, WorkCoordinator};
use ephemeral_http::{router, router_with_controls, Registry};
use http_body_util::BodyExt;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tower::ServiceExt;

const PATIENCE: Duration = Duration::from_secs(10);

struct Fixture {
    registry: Registry,
    sink: SignalSink,
    slow_gate: Arc<Notify>,
    fixed: WorkCoordinator<u32>,
    dynamic: KeyedWorkCoordinator<String, (String, u32)>,
}

/// `work`: 3 finished operations (one failed); `slow`: one running; `dynamic`: keyed, dynamic
/// concurrency, one finished operation with a keyed signal; a sink `alerts` with two signals.
async fn fixture() -> Fixture {
    let registry = Registry::new();
    let sink = SignalSink::default();

    let work = WorkCoordinator::new(
        |n: u32, op: Operation| async move {
            op.set_label(format!("item-{n}"));
            if n == 2 {
                op.emit("http.error.503");
                Err("upstream said 503")
            } else {
                op.emit("http.ok");
                Ok(())
            }
        },
        Options::default().name("work"),
    );
    for n in 0..3 {
        let _outcome = work.enqueue_with_handle(n).await.unwrap().await;
    }

    let slow_gate = Arc::new(Notify::new());
    let gate = slow_gate.clone();
    let slow = WorkCoordinator::new(
        move |_n: u32, _op: Operation| {
            let gate = gate.clone();
            async move { gate.notified().await }
        },
        Options::default().name("slow"),
    );
    slow.enqueue(1).await.unwrap();
    tokio::time::timeout(PATIENCE, async {
        while slow.stats().active == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the slow operation starts");

    let dynamic = KeyedWorkCoordinator::new(
        |item: &(String, u32)| item.0.clone(),
        |_item, op: Operation| async move {
            op.emit("cache.miss");
        },
        Options::default()
            .name("dynamic")
            .dynamic_concurrency(true)
            .max_concurrency(2),
    );
    let _outcome = dynamic
        .enqueue_with_handle(("user-7".to_owned(), 1))
        .await
        .unwrap()
        .await;

    sink.raise("alert.disk");
    sink.raise_with_key("cache-hit", "user-1");

    registry.register("work", work.clone());
    registry.register("slow", slow);
    registry.register("dynamic", dynamic.clone());
    registry.register_sink("alerts", &sink);
    Fixture {
        registry,
        sink,
        slow_gate,
        fixed: work,
        dynamic,
    }
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Bytes) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body)
}

async fn get(app: &Router, path: &str) -> (StatusCode, axum::http::HeaderMap, Bytes) {
    send(app, Request::get(path).body(Body::empty()).unwrap()).await
}

async fn get_json(app: &Router, path: &str) -> (StatusCode, Value) {
    let (status, headers, body) = get(app, path).await;
    assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{path}");
    (status, serde_json::from_slice(&body).unwrap())
}

async fn post_json(app: &Router, path: &str, body: &str) -> (StatusCode, Value) {
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let (status, _, body) = send(app, request).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn is_rfc3339_millis(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    let b = s.as_bytes();
    s.len() == 24 && b[10] == b'T' && b[19] == b'.' && s.ends_with('Z')
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

fn assert_error(v: &Value) -> &str {
    assert_eq!(keys(v), ["error"]);
    v["error"].as_str().unwrap()
}

fn assert_status_shape(doc: &Value, controls: bool) {
    assert_eq!(keys(doc), ["controls", "coordinators", "sinks", "time"]);
    assert_eq!(doc["controls"], controls);
    assert!(is_rfc3339_millis(&doc["time"]), "{}", doc["time"]);
    let coordinators = doc["coordinators"].as_array().unwrap();
    let names: Vec<&str> = coordinators
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["work", "slow", "dynamic"], "registration order");
    for c in coordinators {
        assert_eq!(
            keys(c),
            [
                "active",
                "cancelled",
                "closed",
                "completed",
                "deferred",
                "dynamic",
                "enqueued",
                "failed",
                "max_concurrency",
                "name",
                "p50_ms",
                "p95_ms",
                "paused",
                "pending"
            ]
        );
        for k in [
            "active",
            "cancelled",
            "completed",
            "deferred",
            "enqueued",
            "failed",
        ] {
            assert!(c[k].is_u64(), "{k}: {c}");
        }
        for k in ["max_concurrency", "pending"] {
            assert!(c[k].is_u64(), "{k}: {c}");
        }
        for k in ["closed", "dynamic", "paused"] {
            assert!(c[k].is_boolean(), "{k}: {c}");
        }
        for k in ["p50_ms", "p95_ms"] {
            assert!(c[k].is_null() || c[k].is_f64(), "{k}: {c}");
        }
    }
    let work = &coordinators[0];
    assert_eq!(work["enqueued"], 3);
    assert_eq!(work["completed"], 2);
    assert_eq!(work["failed"], 1);
    assert_eq!(work["dynamic"], false);
    assert!(work["p50_ms"].is_f64() && work["p95_ms"].is_f64());
    let slow = &coordinators[1];
    assert_eq!(slow["active"], 1);
    assert!(slow["p50_ms"].is_null(), "no finished operation");
    assert_eq!(coordinators[2]["dynamic"], true);
    assert_eq!(keys(&doc["sinks"][0]), ["len", "name"]);
    assert_eq!(doc["sinks"][0]["name"], "alerts");
    assert!(doc["sinks"][0]["len"].is_u64());
}

#[tokio::test]
async fn status_document() {
    let f = fixture().await;
    let (status, doc) = get_json(&router(f.registry.clone()), "/api/status").await;
    assert_eq!(status, StatusCode::OK);
    assert_status_shape(&doc, false);
    assert_eq!(
        doc["sinks"],
        serde_json::json!([{ "name": "alerts", "len": 2 }])
    );
    let (_, doc) = get_json(&router_with_controls(f.registry), "/api/status").await;
    assert_eq!(doc["controls"], true);
    f.slow_gate.notify_one();
}

#[tokio::test]
async fn operations_running_first_then_newest_finished() {
    let f = fixture().await;
    let app = router(f.registry.clone());
    let (status, ops) = get_json(&app, "/api/coordinators/work/operations").await;
    assert_eq!(status, StatusCode::OK);
    let ops = ops.as_array().unwrap();
    assert_eq!(ops.len(), 3);
    for op in ops {
        assert_eq!(
            keys(op),
            [
                "completed",
                "duration_ms",
                "error",
                "id",
                "key",
                "label",
                "pinned",
                "signals",
                "started",
                "state"
            ]
        );
        let id = op["id"].as_str().unwrap();
        assert!(
            !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit()),
            "{id}"
        );
        assert!(is_rfc3339_millis(&op["started"]));
        assert!(is_rfc3339_millis(&op["completed"]));
        assert!(op["duration_ms"].is_f64());
        assert!(op["key"].is_null());
        assert_eq!(op["pinned"], false);
    }
    // Newest finished first.
    let labels: Vec<&str> = ops.iter().map(|o| o["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["item-2", "item-1", "item-0"]);
    assert_eq!(ops[0]["state"], "failed");
    assert_eq!(ops[0]["error"], "upstream said 503");
    assert_eq!(ops[0]["signals"], serde_json::json!(["http.error.503"]));
    assert_eq!(ops[1]["state"], "completed");
    assert!(ops[1]["error"].is_null());

    let (_, slow) = get_json(&app, "/api/coordinators/slow/operations").await;
    assert_eq!(slow[0]["state"], "running");
    assert!(slow[0]["completed"].is_null());
    assert!(slow[0]["duration_ms"].is_f64());

    let (_, keyed) = get_json(&app, "/api/coordinators/dynamic/operations").await;
    assert_eq!(keyed[0]["key"], "user-7");
    f.slow_gate.notify_one();
}

#[tokio::test]
async fn unknown_coordinator_is_a_404_naming_the_known_ones() {
    let f = fixture().await;
    let (status, body) = get_json(&router(f.registry), "/api/coordinators/nope/operations").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        assert_error(&body),
        "unknown coordinator `nope`; known: work, slow, dynamic"
    );
    f.slow_gate.notify_one();
}

#[tokio::test]
async fn signals_shape_and_filters() {
    let f = fixture().await;
    let app = router(f.registry.clone());
    let (status, all) = get_json(&app, "/api/signals").await;
    assert_eq!(status, StatusCode::OK);
    let all = all.as_array().unwrap();
    // work: 3, dynamic: 1, alerts: 2.
    assert_eq!(all.len(), 6, "{all:?}");
    for s in all {
        assert_eq!(
            keys(s),
            ["key", "operation_id", "signal", "source", "timestamp"]
        );
        assert!(is_rfc3339_millis(&s["timestamp"]));
        assert!(s["operation_id"]
            .as_str()
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_hexdigit()));
    }
    let stamps: Vec<&str> = all
        .iter()
        .map(|s| s["timestamp"].as_str().unwrap())
        .collect();
    let mut sorted = stamps.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(stamps, sorted, "newest first");
    assert_eq!(all[0]["source"], "alerts");
    assert_eq!(all[0]["signal"], "cache-hit");

    let (_, errors) = get_json(&app, "/api/signals?pattern=http.error.*").await;
    assert_eq!(errors.as_array().unwrap().len(), 1);
    assert_eq!(errors[0]["signal"], "http.error.503");
    assert_eq!(errors[0]["source"], "work");
    assert!(errors[0]["key"].is_null());

    let (_, http) = get_json(&app, "/api/signals?pattern=http.*&limit=1").await;
    assert_eq!(http.as_array().unwrap().len(), 1);

    let (_, user) = get_json(&app, "/api/signals?key=user-7").await;
    assert_eq!(user.as_array().unwrap().len(), 1);
    assert_eq!(user[0]["signal"], "cache.miss");
    assert_eq!(user[0]["source"], "dynamic");

    let (_, past) = get_json(&app, "/api/signals?since=2000-01-01T00:00:00Z").await;
    assert_eq!(past.as_array().unwrap().len(), 6);
    let (_, future) = get_json(&app, "/api/signals?since=2999-01-01T00:00:00%2B01:00").await;
    assert_eq!(future, serde_json::json!([]));
    f.slow_gate.notify_one();
}

#[tokio::test]
async fn bad_since_and_limit_are_400_with_a_json_error() {
    let f = fixture().await;
    let app = router(f.registry);
    for query in [
        "since=yesterday",
        "since=2024-13-01T00:00:00Z",
        "since=%FF%FE",
        "limit=abc",
        "limit=-1",
        "limit=10001",
        "limit=1e3",
        "limit=99999999999999999999999",
    ] {
        let (status, body) = get_json(&app, &format!("/api/signals?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        let message = assert_error(&body);
        assert!(
            message.contains("since") || message.contains("limit") || message.contains("query")
        );
    }
    let (status, _) = get_json(&app, "/api/signals?limit=10000&since=").await;
    assert_eq!(status, StatusCode::OK);
    f.slow_gate.notify_one();
}

#[tokio::test]
async fn the_page_embeds_the_initial_json() {
    let f = fixture().await;
    f.sink.raise("</script><script>alert(1)</script>");
    let (status, headers, body) = get(&router(f.registry), "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.starts_with("default-src 'self';") && csp.contains("connect-src 'self'"));
    let page = std::str::from_utf8(&body).unwrap();
    assert!(!page.contains("__EPHEMERAL_INITIAL__"));
    let template = include_str!("../assets/dashboard.html");
    assert_eq!(
        page.matches("</script>").count(),
        template.matches("</script>").count(),
        "the signal cannot close the script"
    );
    let start = page.find("const INITIAL = ").unwrap() + "const INITIAL = ".len();
    let len = page[start..].find(";\n").unwrap();
    let initial: Value = serde_json::from_str(&page[start..start + len]).unwrap();
    assert_eq!(keys(&initial), ["signals", "status"]);
    assert_status_shape(&initial["status"], false);
    assert_eq!(initial["status"]["coordinators"][0]["completed"], 2);
    assert_eq!(initial["signals"].as_array().unwrap().len(), 7);
    assert_eq!(
        initial["signals"][0]["signal"],
        "</script><script>alert(1)</script>"
    );
    f.slow_gate.notify_one();
}

#[tokio::test]
async fn nested_without_the_slash_redirects_to_it() {
    let registry = Registry::new();
    let app = Router::new().nest_service("/x", router(registry));
    let (status, headers, _) = get(&app, "/x").await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(headers[header::LOCATION], "./x/");
    let (status, headers, _) = get(&app, "/x?theme=dark").await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(headers[header::LOCATION], "./x/?theme=dark");
    let (status, headers, _) = get(&app, "/x/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let (status, _) = get_json(&app, "/x/api/status").await;
    assert_eq!(status, StatusCode::OK);

    // Deeper and at the root.
    let app = Router::new().nest_service("/ops/ephemeral", router(Registry::new()));
    let (status, headers, _) = get(&app, "/ops/ephemeral").await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(headers[header::LOCATION], "./ephemeral/");
    let (status, _, _) = get(&router(Registry::new()), "/").await;
    assert_eq!(status, StatusCode::OK);
}

/// Reads server-sent frames until one whose text satisfies `done`; all text read so far.
async fn read_until(body: &mut Body, seen: &mut String, done: impl Fn(&str) -> bool) {
    tokio::time::timeout(PATIENCE, async {
        while !done(seen) {
            let frame = body.frame().await.expect("the stream goes on").unwrap();
            if let Ok(data) = frame.into_data() {
                seen.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    })
    .await
    .expect("the event arrives in time");
}

fn data_of<'a>(text: &'a str, event: &str) -> Vec<&'a str> {
    text.split("\n\n")
        .filter(|frame| frame.lines().any(|l| l == format!("event: {event}")))
        .filter_map(|frame| frame.lines().find_map(|l| l.strip_prefix("data: ")))
        .collect()
}

#[tokio::test]
async fn events_stream_stats_and_new_signals_once() {
    let f = fixture().await;
    // A coordinator that also raises its operations' signals into a registered sink.
    let shared = SignalSink::default();
    let echo = WorkCoordinator::new(
        |_n: u32, op: Operation| async move {
            op.emit("dup");
        },
        Options::default().name("echo").signals(shared.clone()),
    );
    f.registry.register("echo", echo.clone());
    f.registry.register_sink("shared", &shared);

    let response = router(f.registry.clone())
        .oneshot(Request::get("/api/events").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut body = response.into_body();
    let mut seen = String::new();

    read_until(&mut body, &mut seen, |s| s.contains("event: stats")).await;
    let stats: Value = serde_json::from_str(data_of(&seen, "stats")[0]).unwrap();
    assert_eq!(stats["coordinators"][0]["completed"], 2);

    f.sink.raise_with_key("hello", "k1");
    read_until(&mut body, &mut seen, |s| !data_of(s, "signal").is_empty()).await;
    let signal: Value = serde_json::from_str(data_of(&seen, "signal")[0]).unwrap();
    assert_eq!(
        keys(&signal),
        ["key", "operation_id", "signal", "source", "timestamp"]
    );
    assert_eq!(signal["signal"], "hello");
    assert_eq!(signal["key"], "k1");
    assert_eq!(signal["source"], "alerts");

    // Seen through the sink at once and by polling the coordinator: sent once. A later stats
    // event comes after several polls (every 250 ms against every second).
    let _outcome = echo.enqueue_with_handle(1).await.unwrap().await;
    read_until(&mut body, &mut seen, |s| s.contains("\"dup\"")).await;
    let stats_so_far = data_of(&seen, "stats").len();
    read_until(&mut body, &mut seen, |s| {
        data_of(s, "stats").len() > stats_so_far + 1
    })
    .await;
    f.sink.raise("marker");
    read_until(&mut body, &mut seen, |s| s.contains("\"marker\"")).await;
    let dups = data_of(&seen, "signal")
        .iter()
        .filter(|d| d.contains("\"dup\""))
        .count();
    assert_eq!(dups, 1, "{seen}");
    f.slow_gate.notify_one();
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let f = fixture().await;
    let app = router(f.registry);
    let (status, headers, body) = get(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/plain; version=0.0.4");
    let text = std::str::from_utf8(&body).unwrap();
    assert!(
        text.contains("ephemeral_finished_total{coordinator=\"work\",outcome=\"completed\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("ephemeral_finished_total{coordinator=\"work\",outcome=\"failed\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("ephemeral_active{coordinator=\"slow\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("ephemeral_max_concurrency{coordinator=\"dynamic\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("ephemeral_sink_signals{sink=\"alerts\"} 2\n"),
        "{text}"
    );
    assert!(text.contains("# HELP ephemeral_finished_total"), "{text}");
    assert!(
        text.contains("# TYPE ephemeral_finished_total counter"),
        "{text}"
    );
    assert!(!text.contains("user-7"), "no keys in labels");

    let mut samples = 0;
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect(line);
        value.parse::<f64>().expect(line);
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "{line}"
        );
        let labels = &series[name_end..];
        if !labels.is_empty() {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .expect(line);
            for pair in inner.split(',') {
                let (label, quoted) = pair.split_once('=').expect(line);
                assert!(
                    label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{line}"
                );
                assert!(quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'));
            }
        }
        samples += 1;
    }
    assert_eq!(samples, 3 * 8 + 1);
    f.slow_gate.notify_one();
}

#[tokio::test]
async fn controls_are_absent_by_default() {
    let f = fixture().await;
    let app = router(f.registry);
    for action in ["pause", "resume", "limit"] {
        let (status, _) = post_json(
            &app,
            &format!("/api/coordinators/work/{action}"),
            "{\"max_concurrency\": 3}",
        )
        .await;
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED,
            "{action}: {status}"
        );
    }
    assert!(!f.fixed.is_paused());
    f.slow_gate.notify_one();
}

#[tokio::test]
async fn controls_pause_resume_and_limit() {
    let f = fixture().await;
    let app = router_with_controls(f.registry);

    let (status, work) = post_json(&app, "/api/coordinators/work/pause", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(work["name"], "work");
    assert_eq!(work["paused"], true);
    let (_, doc) = get_json(&app, "/api/status").await;
    assert_eq!(doc["coordinators"][0]["paused"], true);
    assert!(f.fixed.is_paused());
    let (status, work) = post_json(&app, "/api/coordinators/work/resume", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(work["paused"], false);

    let (status, body) = post_json(
        &app,
        "/api/coordinators/work/limit",
        "{\"max_concurrency\": 4}",
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(assert_error(&body).contains("dynamic"));

    let (status, dynamic) = post_json(
        &app,
        "/api/coordinators/dynamic/limit",
        "{\"max_concurrency\": 5}",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(dynamic["max_concurrency"], 5);
    assert_eq!(f.dynamic.max_concurrency(), 5);
    let (_, doc) = get_json(&app, "/api/status").await;
    assert_eq!(doc["coordinators"][2]["max_concurrency"], 5);

    for bad in [
        "",
        "{}",
        "{\"max_concurrency\": -1}",
        "{\"max_concurrency\": \"x\"}",
        "[",
        "{\"max_concurrency\": 0}",
    ] {
        let (status, body) = post_json(&app, "/api/coordinators/dynamic/limit", bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_error(&body);
    }
    let (status, body) = post_json(&app, "/api/coordinators/nope/pause", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(assert_error(&body).contains("known: work, slow, dynamic"));
    f.slow_gate.notify_one();
}

#[tokio::test]
async fn registering_a_name_again_replaces_in_place() {
    let f = fixture().await;
    let other = WorkCoordinator::new(|_n: u32, _op| async {}, Options::default());
    f.registry.register("work", other);
    assert_eq!(f.registry.coordinator_names(), ["work", "slow", "dynamic"]);
    let (_, doc) = get_json(&router(f.registry.clone()), "/api/status").await;
    assert_eq!(doc["coordinators"][0]["enqueued"], 0);
    assert!(f.registry.unregister("alerts"));
    assert!(!f.registry.unregister("alerts"));
    assert!(f.registry.sink_names().is_empty());
    assert!(format!("{:?}", f.registry).contains("slow"));
    f.slow_gate.notify_one();
}

#[test]
fn registry_is_a_cheap_shared_handle() {
    fn assert_handle<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    assert_handle::<Registry>();
    let a = Registry::new();
    let b = a.clone();
    b.register_sink("late", &SignalSink::default());
    assert_eq!(a.sink_names(), ["late"], "clones share their entries");
}
