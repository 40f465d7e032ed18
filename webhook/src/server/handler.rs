//! HTTP handlers: `POST /validate` (AdmissionReview in, AdmissionReview out) and the
//! health port's `/healthz` and `/readyz`.

use super::AppState;
use crate::admission::{self, Context};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionReview};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

const ADMISSION_API_VERSION: &str = "admission.k8s.io/v1";

fn bad_request(status: StatusCode, message: String) -> Response {
    tracing::warn!(status = status.as_u16(), %message, "rejected request");
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// Parses and checks an AdmissionReview body; the error says what is wrong.
pub fn parse_review(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, String> {
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not a valid AdmissionReview: {e}"))?;
    if review.types.kind != "AdmissionReview" {
        return Err(format!("kind is {:?}, expected \"AdmissionReview\"", review.types.kind));
    }
    if review.types.api_version != ADMISSION_API_VERSION {
        return Err(format!(
            "apiVersion {:?} is not supported; send {ADMISSION_API_VERSION} (admissionReviewVersions: [v1])",
            review.types.api_version
        ));
    }
    let request: AdmissionRequest<DynamicObject> = review
        .try_into()
        .map_err(|_| "the AdmissionReview has no request".to_string())?;
    if request.uid.is_empty() {
        return Err("request.uid is empty".into());
    }
    Ok(request)
}

pub async fn validate(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let received = Instant::now();
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return bad_request(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json".into(),
        );
    }
    let request = match parse_review(&body) {
        Ok(request) => request,
        Err(message) => return bad_request(StatusCode::BAD_REQUEST, message),
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
        let deadline = received + state.request_deadline;
        // Waiting for a free sandbox counts against the request's deadline.
        let permit = match tokio::time::timeout_at(deadline.into(), Arc::clone(&state.evaluations).acquire_owned()).await {
            Ok(Ok(permit)) => Some(permit),
            _ => None,
        };
        let set = state.policy_set.load_full();
        let worker_state = Arc::clone(&state);
        let decided = tokio::task::spawn_blocking(move || {
            let context = Context {
                namespaces: worker_state.namespaces.as_ref(),
                environment: None,
                // Without a permit the deadline has passed: every policy fails fast.
                deadline: if permit.is_some() { deadline } else { Instant::now() },
            };
            let decision = admission::decide(&set, &request, &context);
            drop(permit);
            (request, decision)
        })
        .await;
        let (request, decision) = match decided {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "evaluation task failed");
                return (StatusCode::INTERNAL_SERVER_ERROR, "evaluation failed").into_response();
            }
        };
        let span = tracing::Span::current();
        span.record("environment", decision.environment.as_deref().unwrap_or("unknown"));
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
                    Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
                }
            }),
        )
        .with_state(state)
}
