//! The demo, run as a user would: headless, on any free port, for a few seconds.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_short_headless_run_serves_the_dashboard_and_ends_with_a_summary() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ephemeral-demo"))
        .args(["--duration", "5", "--headless", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the demo starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("a first line");
    let address = first
        .trim()
        .strip_prefix("dashboard: ")
        .unwrap_or_else(|| panic!("the first line names the dashboard: {first:?}"))
        .to_string();
    assert!(address.starts_with("http://127.0.0.1:"), "{address}");

    // The dashboard answers while the demo runs (plain HTTP/1.1 over loopback).
    let status = http_get(&address, "api/status");
    assert!(status.contains("\"translator\""), "{status}");

    let started = Instant::now();
    let mut rest = String::new();
    stdout
        .read_to_string(&mut rest)
        .expect("the rest of the output");
    let code = child.wait().expect("the demo exits");
    assert!(code.success(), "exit {code:?}\n{rest}");
    assert!(started.elapsed() < Duration::from_secs(60));
    let lines: Vec<&str> = rest.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("[")),
        "a status line per second:\n{rest}"
    );
    let summary = rest
        .split("summary after")
        .nth(1)
        .unwrap_or_else(|| panic!("a summary at the end:\n{rest}"));
    for name in ["translator", "commands", "payments", "emails"] {
        let row = summary
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("a row for {name}:\n{summary}"));
        let completed: u64 = row.split_whitespace().nth(4).unwrap().parse().unwrap();
        assert!(completed > 0, "{name} completed work: {row}");
    }
}

/// GET `path` relative to `base` (`http://127.0.0.1:port/prefix/`), with std only.
fn http_get(base: &str, path: &str) -> String {
    use std::io::Write;
    let rest = base.strip_prefix("http://").unwrap();
    let (host, prefix) = rest.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(host).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /{prefix}{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("a response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// `--cluster`: two instances find each other through a seed and share their signals.
#[test]
fn two_instances_in_cluster_mode_find_each_other() {
    let secret = "the demo test's cluster secret";
    let start = |extra: &[&str]| {
        let mut args = vec!["--duration", "5", "--headless", "--port", "0", "--cluster"];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_ephemeral-demo"))
            .args(&args)
            .env("EPHEMERAL_CLUSTER_SECRET", secret)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the demo starts")
    };
    let mut first = start(&[]);
    let mut out = BufReader::new(first.stdout.take().expect("piped"));
    let mut line = String::new();
    let mut gossip = None;
    for _ in 0..3 {
        line.clear();
        out.read_line(&mut line).expect("a line");
        if let Some(rest) = line.trim().strip_prefix("cluster: node ") {
            gossip = rest.split(" gossiping on ").nth(1).map(str::to_owned);
            break;
        }
    }
    let gossip = gossip.unwrap_or_else(|| panic!("a line names the gossip address: {line:?}"));
    let second = start(&["--cluster-seed", &gossip]);
    let second_out = second
        .wait_with_output()
        .expect("the second instance exits");
    let mut rest = String::new();
    out.read_to_string(&mut rest).expect("the first's output");
    assert!(first.wait().expect("exits").success(), "{rest}");
    assert!(second_out.status.success());
    let second_text = String::from_utf8_lossy(&second_out.stdout);
    for text in [rest.as_str(), &*second_text] {
        assert!(
            text.lines().any(|l| l.contains("cluster: 2 members")),
            "each instance saw the other:\n{text}"
        );
    }
}
