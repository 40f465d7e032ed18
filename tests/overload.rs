//! Overload, end to end (issue 13 point 3): the real server with a policy that
//! takes milliseconds of CPU per evaluation and few evaluation slots, driven first
//! at what it sustains, then at twice that for a bounded time, then gently again.
//! Every request must be answered before its deadline (`--request-timeout-ms`) plus
//! a margin, with the policy's verdict or, when it could not be evaluated in time,
//! its failure outcome (failurePolicy Fail: denied, saying why), never after waiting
//! in an unbounded queue; after the overload, requests get verdicts again. The
//! figures (throughput, p50/p99, share of failure outcomes, RSS) are printed, not
//! asserted; `bench/overload.sh` runs this with a release build and longer phases.

mod support;

use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::Hostile;
use support::https::{Connection, client_config};
use support::process::Server;

/// The server's deadline for one request.
const DEADLINE: Duration = Duration::from_millis(500);
/// What an answer may take beyond the deadline: the TLS and HTTP work around the
/// evaluation, on a busy machine. A queue that waits instead takes seconds.
const MARGIN: Duration = Duration::from_millis(500);
const SLOTS: u32 = 2;

fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

fn review(uid: &str) -> Vec<u8> {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "name": "x", "namespace": "plate-prod", "operation": "CREATE",
            "userInfo": {"username": "test"},
            "object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
        }
    })
    .to_string()
    .into_bytes()
}

/// What one request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The policy ran and allowed.
    Verdict,
    /// The policy's failure outcome: it did not run (or finish) before the deadline.
    Failure,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    latency: Duration,
    outcome: Outcome,
}

/// Sends one review and classifies the answer; panics on anything else.
fn exchange(conn: &mut Connection, uid: &str) -> Sample {
    let start = Instant::now();
    let answer = conn
        .review(&review(uid))
        .unwrap_or_else(|e| panic!("{uid}: no answer: {e}"));
    let latency = start.elapsed();
    assert_eq!(answer.status, 200, "{uid}");
    let response: Value = answer.json()["response"].clone();
    assert_eq!(response["uid"], uid);
    let outcome = if response["allowed"] == true {
        assert!(response.get("warnings").is_none(), "{response}");
        Outcome::Verdict
    } else {
        let message = response["status"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("[busy] policy \"busy\" ")
                && (message.contains("did not run before the request's deadline")
                    || message.contains("exceeded its time limit"))
                && message.ends_with("the request is denied because its failurePolicy is Fail"),
            "{uid}: not the failure outcome: {message}"
        );
        Outcome::Failure
    };
    Sample { latency, outcome }
}

fn percentile(samples: &[Sample], p: f64) -> Duration {
    let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    latencies.sort();
    let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
    latencies.get(index).copied().unwrap_or_default()
}

fn report(phase: &str, samples: &[Sample], elapsed: Duration) {
    let failed = samples
        .iter()
        .filter(|s| s.outcome == Outcome::Failure)
        .count();
    println!(
        "overload {phase}: {} requests in {:.1} s ({:.1}/s), p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms, failure outcome {failed} ({:.1}%)",
        samples.len(),
        elapsed.as_secs_f64(),
        samples.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        percentile(samples, 0.5).as_secs_f64() * 1e3,
        percentile(samples, 0.99).as_secs_f64() * 1e3,
        percentile(samples, 1.0).as_secs_f64() * 1e3,
        100.0 * failed as f64 / samples.len().max(1) as f64,
    );
}

/// `connections` clients, each sending back to back for `duration`.
fn closed_loop(
    server: &Server,
    config: &Arc<rustls::ClientConfig>,
    phase: &str,
    connections: usize,
    duration: Duration,
) -> Vec<Sample> {
    let end = Instant::now() + duration;
    let threads: Vec<_> = (0..connections)
        .map(|c| {
            let mut conn =
                Connection::open(server.addr, config).unwrap_or_else(|e| panic!("connect: {e}"));
            let phase = phase.to_string();
            std::thread::spawn(move || {
                let mut samples = Vec::new();
                let mut i = 0;
                while Instant::now() < end {
                    samples.push(exchange(&mut conn, &format!("{phase}-{c}-{i}")));
                    i += 1;
                }
                samples
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().unwrap_or_else(|_| panic!("a client failed")))
        .collect()
}

/// Requests at `rate` per second for `duration`, each on the next free connection
/// of a pool large enough that the client never waits for one (an open loop: the
/// arrival rate does not slow down when the server does).
fn open_loop(
    server: &Server,
    config: &Arc<rustls::ClientConfig>,
    rate: f64,
    duration: Duration,
) -> (Vec<Sample>, Duration) {
    let pool = ((rate * (DEADLINE + MARGIN).as_secs_f64()).ceil() as usize + 4).max(8);
    let (jobs, queue) = mpsc::channel::<(String, Instant)>();
    let queue = Arc::new(Mutex::new(queue));
    let late = Arc::new(Mutex::new(Duration::ZERO));
    let workers: Vec<_> = (0..pool)
        .map(|_| {
            let mut conn =
                Connection::open(server.addr, config).unwrap_or_else(|e| panic!("connect: {e}"));
            let queue = Arc::clone(&queue);
            let late = Arc::clone(&late);
            std::thread::spawn(move || {
                let mut samples = Vec::new();
                loop {
                    let job = queue.lock().map(|q| q.recv()).unwrap_or_else(|_| panic!());
                    let Ok((uid, due)) = job else {
                        return samples;
                    };
                    if let Ok(mut late) = late.lock() {
                        *late = (*late).max(due.elapsed());
                    }
                    samples.push(exchange(&mut conn, &uid));
                }
            })
        })
        .collect();
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut next = start;
    let mut i = 0u64;
    while next < start + duration {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        jobs.send((format!("over-{i}"), next))
            .unwrap_or_else(|e| panic!("{e}"));
        i += 1;
        next += interval;
    }
    drop(jobs);
    let samples: Vec<Sample> = workers
        .into_iter()
        .flat_map(|t| t.join().unwrap_or_else(|_| panic!("a client failed")))
        .collect();
    let late = late.lock().map(|l| *l).unwrap_or_default();
    (samples, late)
}

#[test]
fn at_twice_the_sustainable_rate_every_request_is_answered_before_its_deadline() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("busy.wasm"), Hostile::Busy.wasm())
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.path().join("policies.yaml"),
        "apiVersion: policy.plate.dev/v1alpha1\nkind: PolicySet\nmetadata: {name: overload}\nspec:\n  policies:\n    - name: busy\n      module: busy.wasm\n      failurePolicy: Fail\n      match: {kinds: [ConfigMap]}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let deadline_ms = DEADLINE.as_millis().to_string();
    let slots = SLOTS.to_string();
    let server = Server::dev_with_policies(
        dir.path(),
        &[
            "--request-timeout-ms",
            &deadline_ms,
            "--max-concurrent-evaluations",
            &slots,
        ],
    );
    let config = client_config(&dir.path().join("certs/ca.crt"), None);

    // What it sustains: more clients than slots, back to back, so that a slot is
    // never idle (the few waiting are well within the deadline).
    let calibrate = env_secs("OVERLOAD_CALIBRATE_SECONDS", 3);
    let clients = 3 * SLOTS as usize;
    let warm = closed_loop(&server, &config, "sustained", clients, calibrate);
    report("sustained", &warm, calibrate);
    // What the slots can do: their number over the time one evaluation takes, as
    // the server measured it (on a shared machine that is what the CPU gives).
    let metrics = support::https::http_get(server.health, "/metrics")
        .unwrap_or_else(|e| panic!("{e}"))
        .1;
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in {metrics}"))
    };
    let evaluation = value("plate_policy_policy_evaluation_duration_seconds_sum{policy=\"busy\"}")
        / value("plate_policy_policy_evaluation_duration_seconds_count{policy=\"busy\"}");
    let sustained = f64::from(SLOTS) / evaluation;
    println!(
        "overload capacity: {SLOTS} slots / {:.1} ms per evaluation = {sustained:.1}/s",
        evaluation * 1e3
    );
    let before = closed_loop(&server, &config, "before", 1, Duration::from_secs(2));
    report("before (1 client)", &before, Duration::from_secs(2));
    let rss_before = server.rss_kib();

    // Twice that, arriving whatever the server does, with RSS sampled meanwhile.
    let duration = env_secs("OVERLOAD_SECONDS", 8);
    let sampling = AtomicBool::new(true);
    let pid = server.pid();
    let (over, late, rss_peak) = std::thread::scope(|scope| {
        let peak = scope.spawn(|| {
            let mut peak = 0;
            while sampling.load(Ordering::Relaxed) {
                peak = peak.max(support::process::rss_kib(pid));
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        });
        let (over, late) = open_loop(&server, &config, 2.0 * sustained, duration);
        sampling.store(false, Ordering::Relaxed);
        (over, late, peak.join().unwrap_or(0))
    });
    report(
        &format!("at {:.1}/s (2x)", 2.0 * sustained),
        &over,
        duration,
    );
    let evaluated = over
        .iter()
        .filter(|s| s.outcome == Outcome::Verdict)
        .count();
    println!(
        "overload goodput: {evaluated} verdicts in {:.0} s = {:.1}/s ({:.0}% of capacity)",
        duration.as_secs_f64(),
        evaluated as f64 / duration.as_secs_f64(),
        100.0 * evaluated as f64 / duration.as_secs_f64() / sustained
    );
    println!(
        "overload RSS: {} KiB before, {rss_peak} KiB peak; client lateness at most {:.0} ms",
        rss_before,
        late.as_secs_f64() * 1e3
    );

    // After: requests get verdicts again (the queue is gone, not worked off).
    let after = closed_loop(&server, &config, "after", 1, Duration::from_secs(2));
    report("after (1 client)", &after, Duration::from_secs(2));

    let bound = DEADLINE + MARGIN;
    for (phase, samples) in [
        ("sustained", &warm),
        ("before", &before),
        ("overload", &over),
        ("after", &after),
    ] {
        let slow: Vec<&Sample> = samples.iter().filter(|s| s.latency > bound).collect();
        assert!(
            slow.is_empty(),
            "{phase}: {} of {} answers took longer than the deadline plus margin ({bound:?}), the slowest {:?}",
            slow.len(),
            samples.len(),
            slow.iter().map(|s| s.latency).max()
        );
    }
    let failures = over
        .iter()
        .filter(|s| s.outcome == Outcome::Failure)
        .count();
    assert!(
        failures > 0,
        "at twice the sustainable rate no request got the failure outcome: the server was not overloaded"
    );
    assert!(
        over.iter().any(|s| s.outcome == Outcome::Verdict),
        "under overload no request was evaluated at all"
    );
    assert!(
        after.iter().all(|s| s.outcome == Outcome::Verdict),
        "after the overload, requests still get the failure outcome"
    );
    // The answers counted as errors are exactly the failure outcomes sent.
    let (_, metrics) =
        support::https::http_get(server.health, "/metrics").unwrap_or_else(|e| panic!("{e}"));
    let errors: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("plate_policy_admission_requests_total{")
                && l.contains("decision=\"error\"")
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum();
    let failed_all = [&warm, &before, &over, &after]
        .iter()
        .flat_map(|s| s.iter())
        .filter(|s| s.outcome == Outcome::Failure)
        .count();
    assert_eq!(errors as usize, failed_all, "{metrics}");
}
