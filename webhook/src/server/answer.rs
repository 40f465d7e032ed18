//! From request body bytes to response bytes, without HTTP or TLS: a parsed review
//! decided (a panic included) and counted, a review over the body limit denied from
//! its head, a body that is no review refused. `handler` adds HTTP around these;
//! [`body_blocking`] is the whole path for a body in memory, which the fuzz target
//! and the corpus regression tests drive.

use super::AppState;
use super::body::Size;
use crate::admission::{self, Context};
use crate::engine::EvaluationSlot;
use crate::review::head::{self, HEAD_SCAN_BYTES, Head};
use crate::review::{self, Review};
use axum::http::StatusCode;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

/// An HTTP status and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

/// A request refused before any policy ran: logged, counted, `{"error": message}`.
pub fn refused(state: &AppState, status: StatusCode, message: &str) -> Answer {
    tracing::warn!(status = status.as_u16(), %message, "rejected request");
    state.metrics.bad_request(status.as_u16());
    Answer {
        status,
        body: serde_json::json!({ "error": message })
            .to_string()
            .into_bytes(),
    }
}

/// Decides `review` in `slot` (None: no slot was free before the deadline), counts
/// and logs the decision, and returns the response review. `run_evaluations` runs
/// the policies' evaluations, if any match ([`Context::run_evaluations`]).
pub fn decided(
    state: &AppState,
    review: &Review<'_>,
    slot: Option<&EvaluationSlot>,
    received: Instant,
    run_evaluations: Option<fn(&mut dyn FnMut())>,
) -> Vec<u8> {
    let set = state.policy_set.load_full();
    let context = Context {
        objects: &state.objects,
        environment: None,
        deadline: received + state.request_deadline,
        slot,
        run_evaluations,
    };
    // A panic outside any policy's evaluation (those become the policy's failure
    // outcome in `decide`) still gets an answer, not a dropped connection.
    let decision = match catch_unwind(AssertUnwindSafe(|| {
        admission::decide(&set, review, &context)
    })) {
        Ok(decision) => decision,
        Err(panic) => {
            let cause = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(%cause, "plate-policy panicked while deciding; denying the request");
            let message = format!(
                "plate-policy could not decide this request because of an internal error ({cause}); it is denied: retry, and report the error if it persists"
            );
            return review::encode_response(&review.uid, false, Some(&message), &[]);
        }
    };
    state.metrics.record(
        &set,
        &review.kind,
        review.operation.as_str(),
        &review.namespace,
        &decision,
        received.elapsed(),
    );
    let span = tracing::Span::current();
    span.record(
        "environment",
        decision.environment.as_deref().unwrap_or("unknown"),
    );
    span.record("decision", decision.label);
    tracing::info!(
        policies = decision.outcomes.len(),
        elapsed_us = received.elapsed().as_micros() as u64,
        "decided"
    );
    decision.response(&review.uid)
}

/// A body over the limit: denied as an AdmissionReview when its start shows one
/// (so no failurePolicy can admit what no policy saw), else 413.
pub fn too_large(state: &AppState, start: &[u8], size: Size, received: Instant) -> Answer {
    let limit = state.max_body_bytes;
    let Some(head) = head::scan(start) else {
        return refused(
            state,
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the request body is {size}, over the limit of {limit} bytes (--max-body-bytes), and its start is not an admission.k8s.io/v1 AdmissionReview with a request.uid"
            ),
        );
    };
    let set = state.policy_set.load_full();
    let environment = environment_of(state, &set, &head);
    let operation = head.operation.map_or("unknown", |o| o.as_str());
    let message = format!(
        "plate-policy cannot check this request ({operation} {}): its AdmissionReview is {size}, over the limit of {limit} bytes (--max-body-bytes), so it is denied rather than admitted unchecked; make the object smaller, or raise --max-body-bytes",
        object_name(&head)
    );
    tracing::warn!(
        uid = %head.uid,
        kind = %head.kind,
        namespace = %head.namespace,
        name = %head.name,
        operation,
        %size,
        limit,
        "review over the body limit denied"
    );
    state.metrics.too_large(
        &set,
        &head.kind,
        operation,
        environment.as_deref(),
        received.elapsed(),
    );
    Answer {
        status: StatusCode::OK,
        body: review::encode_denial(
            &head.uid,
            StatusCode::PAYLOAD_TOO_LARGE.as_u16(),
            "RequestEntityTooLarge",
            &message,
        ),
    }
}

/// `Kind namespace/name` as far as the head says.
fn object_name(head: &Head) -> String {
    let kind = if head.kind.is_empty() {
        "object"
    } else {
        &head.kind
    };
    match (head.namespace.as_str(), head.name.as_str()) {
        ("", "") => kind.to_string(),
        ("", name) => format!("{kind} {name}"),
        (namespace, "") => format!("{kind} in {namespace}"),
        (namespace, name) => format!("{kind} {namespace}/{name}"),
    }
}

/// The environment of the head's namespace, as a decision would resolve it (a
/// Namespace under review by its name only: its labels are in the unread object).
fn environment_of(
    state: &AppState,
    set: &crate::policy_set::PolicySet,
    head: &Head,
) -> Option<String> {
    let is_namespace = head.group.is_empty() && head.kind == "Namespace";
    let (namespace, labels) = if is_namespace && head.namespace.is_empty() {
        (head.name.as_str(), None)
    } else {
        let labels = state.objects.namespace_labels(&head.namespace);
        (head.namespace.as_str(), labels)
    };
    if namespace.is_empty() {
        return None;
    }
    set.environments.resolve(namespace, labels.as_deref()).0
}

/// The whole path for a body in memory, on the calling thread: over the limit,
/// not a review, or decided (waiting for a slot without a deadline).
pub fn body_blocking(state: &AppState, body: &[u8]) -> Answer {
    let received = Instant::now();
    if body.len() > state.max_body_bytes {
        let start = body.get(..HEAD_SCAN_BYTES).unwrap_or(body);
        return too_large(state, start, Size::Exact(body.len() as u64), received);
    }
    let review = match review::parse(body) {
        Ok(review) => review,
        Err(e) => return refused(state, StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let slot = state.engine.evaluation_slot_blocking();
    Answer {
        status: StatusCode::OK,
        body: decided(state, &review, slot.as_ref(), received, None),
    }
}
