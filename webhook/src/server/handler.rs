//! HTTP handlers: `POST /validate` (AdmissionReview in, AdmissionReview out) and the
//! health port's `/healthz` and `/readyz`.

use super::AppState;
use super::answer::{self, Answer};
use super::body::{self, Read};
use crate::review;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

fn json_response(answer: Answer) -> Response {
    (
        answer.status,
        [(header::CONTENT_TYPE, "application/json")],
        answer.body,
    )
        .into_response()
}

pub async fn validate(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return json_response(answer::refused(
            &state,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        ));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let deadline = started + state.request_deadline;
    let body = match body::read(body, state.max_body_bytes, declared, deadline).await {
        Ok(Read::Whole(bytes)) => bytes,
        Ok(Read::TooLarge { start, size }) => {
            return json_response(answer::too_large(&state, &start, size, started));
        }
        Err(e) => {
            return json_response(answer::refused(
                &state,
                StatusCode::BAD_REQUEST,
                &format!("the request body could not be read: {e}"),
            ));
        }
    };
    // The deadline counts from a whole body, as the API server's timeout does not
    // wait for a slow network either.
    let received = Instant::now();
    let review = match review::parse(&body) {
        Ok(review) => review,
        Err(e) => {
            return json_response(answer::refused(
                &state,
                StatusCode::BAD_REQUEST,
                &e.to_string(),
            ));
        }
    };
    let span = tracing::info_span!(
        "admission",
        uid = %review.uid,
        kind = %review.kind,
        namespace = %review.namespace,
        operation = review.operation.as_str(),
        environment = tracing::field::Empty,
        decision = tracing::field::Empty,
    );
    decide_within_deadline(&state, &review, received)
        .instrument(span)
        .await
}

/// Decides a parsed review (inside its span) and answers it.
async fn decide_within_deadline(
    state: &Arc<AppState>,
    review: &review::Review<'_>,
    received: Instant,
) -> Response {
    tracing::debug!("admission request received");
    // With every slot busy, a request waits for one at most half its deadline, then
    // gets its policies' failure outcome; the other half is left for evaluating.
    // Waiting up to the whole deadline let the slots go to requests with too little
    // time left, so under overload almost nothing was evaluated (docs/security.md).
    let wait_until = received + state.request_deadline / 2;
    let slot = tokio::time::timeout_at(wait_until.into(), state.engine.evaluation_slot())
        .await
        .ok()
        .flatten();
    // Decide on this worker thread. Policies are evaluated inside `block_in_place`
    // (tokio moves this worker's other tasks to another thread while guests run; a
    // hand-off to the blocking pool costs two thread wake-ups per request, more than
    // the evaluation itself), and only when some policy matches: the hand-off alone
    // costs a request no policy judges half its time (docs/performance.md).
    let response = answer::decided(
        state,
        review,
        slot.as_ref(),
        received,
        Some(evaluations_in_place),
    );
    drop(slot);
    json_response(Answer {
        status: StatusCode::OK,
        body: response,
    })
}

/// Runs a request's evaluations on this worker, its other tasks handed to another thread.
fn evaluations_in_place(evaluate: &mut dyn FnMut()) {
    tokio::task::block_in_place(evaluate)
}

pub fn health_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .route(
            "/readyz",
            axum::routing::get(|State(state): State<Arc<AppState>>| async move {
                match state.readiness() {
                    Ok(()) => (StatusCode::OK, "ready\n".to_string()),
                    Err(why) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: {why}\n"),
                    ),
                }
            }),
        )
        .route("/metrics", axum::routing::get(metrics))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    if let Some(cluster) = &state.cluster {
        state
            .metrics
            .set_namespace_cache_entries(cluster.count(&crate::objects::ObjectKind::namespace()));
    }
    match state.metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Answers 408 when a request (reading its body included) takes longer than `limit`.
pub async fn time_limit(
    limit: std::time::Duration,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            axum::Json(json!({ "error": format!("the request was not received and answered within {limit:?}") })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{PANIC_TRIGGER_POLICY, PANIC_TRIGGER_UID};
    use crate::engine::{Engine, EngineConfig};
    use crate::metrics::Metrics;
    use crate::objects::NoObjects;
    use crate::policy_set::{Loader, ModuleCache};
    use arc_swap::ArcSwap;
    use axum::body::Bytes;
    use axum::http::HeaderValue;
    use serde_json::Value;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    fn state(policies: &str) -> Arc<AppState> {
        let engine = Arc::new(
            Engine::new(&EngineConfig {
                max_concurrent_instances: 4,
            })
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let cache = ModuleCache::default();
        let text = format!(
            "apiVersion: policy.plate.dev/v1alpha1\nkind: PolicySet\nspec:\n  policies:\n{policies}"
        );
        let set = Loader {
            engine: &engine,
            cache: &cache,
        }
        .load_str("test.yaml", &text, None)
        .unwrap_or_else(|e| panic!("{e}"));
        Arc::new(AppState {
            policy_set: ArcSwap::from_pointee(set),
            engine,
            objects: Arc::new(NoObjects),
            cluster: None,
            request_deadline: Duration::from_secs(2),
            max_body_bytes: 1 << 20,
            shutting_down: AtomicBool::new(false),
            metrics: Metrics::new(false).unwrap_or_else(|e| panic!("{e}")),
        })
    }

    fn pod_review(uid: &str) -> Bytes {
        Bytes::from(
            serde_json::json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
                            "namespace": "plate-prod", "name": "p", "operation": "CREATE",
                            "object": {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
            })
            .to_string(),
        )
    }

    async fn post(state: &Arc<AppState>, content_type: &str, body: Bytes) -> (StatusCode, Value) {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("x")),
        );
        let response = validate(State(Arc::clone(state)), headers, Body::from(body)).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    const NO_LATEST: &str =
        "    - name: nlt\n      module: builtin:no-latest-tag\n      match: {kinds: [Pod]}\n";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_reviews_and_rejects_what_is_not_one() {
        let state = state(NO_LATEST);
        let (status, review) =
            post(&state, "application/json; charset=utf-8", pod_review("u-1")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(review["response"]["uid"], "u-1");
        assert_eq!(review["response"]["allowed"], false);
        let (status, error) = post(&state, "text/plain", pod_review("u-2")).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(
            error["error"]
                .as_str()
                .unwrap_or_default()
                .contains("application/json")
        );
        let (status, error) = post(&state, "application/json", Bytes::from_static(b"{}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            error["error"],
            "kind is missing, expected \"AdmissionReview\""
        );
        let metrics = state.metrics.encode().unwrap_or_default();
        assert!(
            metrics.contains("plate_policy_bad_requests_total{status=\"400\"} 1"),
            "{metrics}"
        );
        assert!(
            metrics.contains("plate_policy_bad_requests_total{status=\"415\"} 1"),
            "{metrics}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_while_deciding_is_answered_not_dropped() {
        // Inside a policy's evaluation: that policy's failure outcome (Ignore here).
        let state = state(&format!(
            "    - name: {PANIC_TRIGGER_POLICY}\n      module: builtin:no-latest-tag\n      failurePolicy: Ignore\n      match: {{kinds: [Pod]}}\n"
        ));
        let (status, review) = post(&state, "application/json", pod_review("u-3")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(review["response"]["allowed"], true, "{review}");
        assert!(
            review["response"]["warnings"]
                .to_string()
                .contains("failed internally"),
            "{review}"
        );
        // Outside any policy: denied, with the cause, still an AdmissionReview.
        let (status, review) =
            post(&state, "application/json", pod_review(PANIC_TRIGGER_UID)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(review["response"]["uid"], PANIC_TRIGGER_UID);
        assert_eq!(review["response"]["allowed"], false);
        let message = review["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(
            message.contains("internal error (test-only trigger: a panic in decide)"),
            "{message}"
        );
        // And the server goes on answering.
        let (_, review) = post(&state, "application/json", pod_review("u-4")).await;
        assert_eq!(review["response"]["uid"], "u-4");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_every_slot_busy_a_request_waits_half_its_deadline_then_fails() {
        let state = state(NO_LATEST);
        let mut held = Vec::new();
        while state.engine.free_evaluation_slots() > 0 {
            held.push(state.engine.evaluation_slot().await);
        }
        let start = std::time::Instant::now();
        let (status, review) = post(&state, "application/json", pod_review("u-busy")).await;
        let waited = start.elapsed();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(review["response"]["allowed"], false, "{review}");
        let message = review["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(
            message.contains("did not run before the request's deadline"),
            "{message}"
        );
        // Half the 2 s deadline, so a request that gets a slot has time to use it.
        assert!(
            waited >= Duration::from_secs(1) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        drop(held);
        let (_, review) = post(&state, "application/json", pod_review("u-free")).await;
        assert!(
            !review["response"]["status"]["message"]
                .to_string()
                .contains("deadline"),
            "{review}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readiness_turns_off_when_shutting_down() {
        let state = state(NO_LATEST);
        assert!(state.readiness().is_ok());
        state
            .shutting_down
            .store(true, std::sync::atomic::Ordering::Release);
        assert_eq!(state.readiness(), Err("shutting down".to_string()));
    }
}
