//! HTTP handlers: `POST /validate` (AdmissionReview in, AdmissionReview out) and the
//! health port's `/healthz` and `/readyz`.

use super::AppState;
use crate::admission::{self, Context, parse_review_raw};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

fn bad_request(state: &AppState, status: StatusCode, message: String) -> Response {
    tracing::warn!(status = status.as_u16(), %message, "rejected request");
    state.metrics.bad_request(status.as_u16());
    (status, axum::Json(json!({ "error": message }))).into_response()
}

pub async fn validate(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let received = Instant::now();
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return bad_request(
            &state,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json".into(),
        );
    }
    let body = match body {
        Ok(body) => body,
        // Over --max-body-bytes (413) or a broken body: counted, then axum's answer.
        Err(rejection) => {
            state.metrics.bad_request(rejection.status().as_u16());
            tracing::warn!(status = rejection.status().as_u16(), error = %rejection.body_text(), "rejected request");
            return rejection.into_response();
        }
    };
    let (request, raw_request) = match parse_review_raw(&body) {
        Ok(parsed) => (parsed.request, parsed.raw_request),
        Err(message) => return bad_request(&state, StatusCode::BAD_REQUEST, message),
    };
    let span = tracing::info_span!(
        "admission",
        uid = %request.uid,
        kind = %request.kind.kind,
        namespace = request.namespace.as_deref().unwrap_or(""),
        operation = ?request.operation,
        environment = tracing::field::Empty,
        decision = tracing::field::Empty,
    );
    async move {
        tracing::debug!("admission request received");
        let deadline = received + state.request_deadline;
        // Waiting for a free sandbox counts against the request's deadline.
        let permit = match tokio::time::timeout_at(
            deadline.into(),
            Arc::clone(&state.evaluations).acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => Some(permit),
            _ => None,
        };
        let set = state.policy_set.load_full();
        let worker_set = Arc::clone(&set);
        let worker_state = Arc::clone(&state);
        // Evaluate on this worker thread, telling tokio it blocks (its other tasks move
        // to another thread): a hand-off to the blocking pool costs two thread
        // wake-ups per request, which measured more than the evaluation itself.
        let decided: Result<_, std::convert::Infallible> = tokio::task::block_in_place(move || {
            let context = Context {
                namespaces: worker_state.namespaces.as_ref(),
                objects: &worker_state.objects,
                raw_request: body.get(raw_request),
                environment: None,
                // Without a permit the deadline has passed: every policy fails fast.
                deadline: if permit.is_some() {
                    deadline
                } else {
                    Instant::now()
                },
            };
            let decision = admission::decide(&worker_set, &request, &context);
            drop(permit);
            Ok((request, decision))
        });
        let (request, decision) = match decided {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "evaluation task failed");
                return (StatusCode::INTERNAL_SERVER_ERROR, "evaluation failed").into_response();
            }
        };
        let operation = serde_json::to_value(&request.operation)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        state.metrics.record(
            &set,
            &request.kind.kind,
            &operation,
            request.namespace.as_deref().unwrap_or(""),
            &decision,
            received.elapsed(),
        );
        let span = tracing::Span::current();
        span.record(
            "environment",
            decision.environment.as_deref().unwrap_or("unknown"),
        );
        span.record("decision", decision.label());
        tracing::info!(
            policies = decision.outcomes.len(),
            elapsed_us = received.elapsed().as_micros() as u64,
            "decided"
        );
        let review = decision.to_response(&request).into_review();
        axum::Json(review).into_response()
    }
    .instrument(span)
    .await
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
    if let Some(cache) = &state.namespace_cache {
        state.metrics.set_namespace_cache_entries(cache.len());
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
