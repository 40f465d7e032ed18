//! The AdmissionReview wire format (`admission.k8s.io/v1`): reads the fields a
//! decision needs from a request body without building the object tree (strings are
//! borrowed from the body, the objects stay raw bytes that policies receive as
//! sent), and writes the response review. Errors say what is wrong with the body.

pub mod head;

use crate::objects::Labels;
use kube::core::admission::AdmissionResponse;
use kube::core::{Status, TypeMeta};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use thiserror::Error;

pub const API_VERSION: &str = "admission.k8s.io/v1";
pub const KIND: &str = "AdmissionReview";

/// What is wrong with a request body; answered with 400 and this text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReviewError {
    #[error("the body is not valid JSON: {0}")]
    NotJson(String),
    #[error("kind is missing, expected \"AdmissionReview\"")]
    MissingKind,
    #[error("kind is {0:?}, expected \"AdmissionReview\"")]
    WrongKind(String),
    #[error(
        "apiVersion {0:?} is not supported; send admission.k8s.io/v1 (admissionReviewVersions: [v1])"
    )]
    UnsupportedVersion(String),
    #[error("the AdmissionReview has no request")]
    NoRequest,
    #[error("request.uid is missing or empty")]
    MissingUid,
    #[error("request.{field}: {message}")]
    InvalidField { field: String, message: String },
    #[error("request is not a valid AdmissionRequest: {0}")]
    InvalidRequest(String),
}

/// The operation of a request, converted once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Operation {
    #[serde(rename = "CREATE")]
    Create,
    #[serde(rename = "UPDATE")]
    Update,
    #[serde(rename = "DELETE")]
    Delete,
    #[serde(rename = "CONNECT")]
    Connect,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// A string borrowed from the body when it has no escapes, owned when it has.
/// (`Option<Cow<str>>` would always allocate: serde borrows only bare `Cow` fields.)
#[derive(Debug, Default)]
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(Visitor(std::marker::PhantomData))
    }
}

fn text(value: Option<Text<'_>>) -> Cow<'_, str> {
    value.map(|t| t.0).unwrap_or_default()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    #[serde(borrow, default)]
    api_version: Option<Text<'a>>,
    #[serde(borrow, default)]
    kind: Option<Text<'a>>,
    #[serde(borrow, default)]
    request: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct WireKind<'a> {
    #[serde(borrow, default)]
    group: Option<Text<'a>>,
    #[serde(borrow, default)]
    version: Option<Text<'a>>,
    #[serde(borrow)]
    kind: Text<'a>,
}

/// The fields of an AdmissionRequest a decision reads; the rest is skipped unparsed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRequest<'a> {
    #[serde(borrow, default)]
    uid: Option<Text<'a>>,
    /// Read separately, so that only an object is accepted (serde would also
    /// take a sequence for a struct).
    #[serde(borrow)]
    kind: &'a RawValue,
    #[serde(borrow, default)]
    sub_resource: Option<Text<'a>>,
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
    #[serde(borrow, default)]
    namespace: Option<Text<'a>>,
    operation: Operation,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    old_object: Option<&'a RawValue>,
    #[serde(default)]
    dry_run: Option<bool>,
}

/// One admission request, borrowed from the body it came in.
#[derive(Debug, Clone)]
pub struct Review<'a> {
    /// The `request` JSON exactly as received.
    raw: &'a [u8],
    pub uid: Cow<'a, str>,
    pub group: Cow<'a, str>,
    pub version: Cow<'a, str>,
    pub kind: Cow<'a, str>,
    /// Empty when the request is for the main resource.
    pub sub_resource: Cow<'a, str>,
    pub name: Cow<'a, str>,
    /// Empty for cluster-scoped objects.
    pub namespace: Cow<'a, str>,
    pub operation: Operation,
    pub dry_run: bool,
    /// Where `object` and `oldObject` lie in `raw` (absent or `null`: None).
    object: Option<Range<usize>>,
    old_object: Option<Range<usize>>,
}

/// Where `inner` (a slice of `outer`) starts and ends in `outer`.
fn range_in(outer: &[u8], inner: &str) -> Range<usize> {
    let start = (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize);
    start..start + inner.len()
}

fn present(raw: Option<&RawValue>) -> Option<&RawValue> {
    raw.filter(|r| r.get() != "null")
}

/// True when the JSON text is an object (serde would read a struct from a sequence too).
fn is_object(json: &[u8]) -> bool {
    json.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

/// Deserializes `T` from `json`, naming the field of an error below `prefix`.
fn deserialize_at<'a, T: Deserialize<'a>>(json: &'a [u8], prefix: &str) -> Result<T, ReviewError> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let field = match (prefix, path.as_str()) {
            ("", "" | ".") => String::new(),
            (prefix, "" | ".") => prefix.to_string(),
            ("", path) => path.to_string(),
            (prefix, path) => format!("{prefix}.{path}"),
        };
        let message = e.into_inner().to_string();
        if field.is_empty() {
            ReviewError::InvalidRequest(message)
        } else {
            ReviewError::InvalidField { field, message }
        }
    })?;
    // Nothing may follow the value.
    deserializer
        .end()
        .map_err(|e| ReviewError::InvalidRequest(e.to_string()))?;
    Ok(value)
}

/// JSON text is UTF-8 (RFC 8259, 8.1), the API server sends nothing else, and what
/// policies receive must be JSON. serde_json checks UTF-8 only in the strings it
/// reads: the fields it skips (unknown ones, here everything but the few read) could
/// hold any bytes, so the whole text is checked once, first.
fn check_utf8(json: &[u8]) -> Result<(), ReviewError> {
    let Err(e) = std::str::from_utf8(json) else {
        return Ok(());
    };
    let before = json.get(..e.valid_up_to()).unwrap_or_default();
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.len()
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1)
        + 1;
    Err(ReviewError::NotJson(format!(
        "invalid UTF-8 at line {line} column {column} (JSON text must be UTF-8)"
    )))
}

/// Parses a whole AdmissionReview body.
pub fn parse(body: &[u8]) -> Result<Review<'_>, ReviewError> {
    check_utf8(body)?;
    let envelope: Envelope<'_> =
        serde_json::from_slice(body).map_err(|e| ReviewError::NotJson(e.to_string()))?;
    if !is_object(body) {
        return Err(ReviewError::NotJson(
            "expected a JSON object (the AdmissionReview)".into(),
        ));
    }
    match envelope.kind.as_ref().map(|t| &*t.0) {
        Some(KIND) => {}
        Some(other) => return Err(ReviewError::WrongKind(other.to_string())),
        None => return Err(ReviewError::MissingKind),
    }
    match envelope.api_version.as_ref().map(|t| &*t.0) {
        Some(API_VERSION) => {}
        other => {
            return Err(ReviewError::UnsupportedVersion(
                other.unwrap_or("").to_string(),
            ));
        }
    }
    let raw = present(envelope.request).ok_or(ReviewError::NoRequest)?;
    let range = range_in(body, raw.get());
    read_request(body.get(range).unwrap_or_default())
}

/// Parses the `request` of an AdmissionReview (its JSON alone).
pub fn parse_request(raw: &[u8]) -> Result<Review<'_>, ReviewError> {
    check_utf8(raw).map_err(|e| match e {
        ReviewError::NotJson(message) => ReviewError::InvalidRequest(message),
        other => other,
    })?;
    read_request(raw)
}

/// [`parse_request`] for JSON already checked to be UTF-8.
fn read_request(raw: &[u8]) -> Result<Review<'_>, ReviewError> {
    if !is_object(raw) {
        return Err(ReviewError::InvalidRequest("expected a JSON object".into()));
    }
    let wire: WireRequest<'_> = deserialize_at(raw, "").map_err(|e| {
        // Name the most common omission precisely, whatever else is wrong.
        #[derive(Deserialize)]
        struct UidOnly {
            #[serde(default)]
            uid: Option<serde::de::IgnoredAny>,
        }
        match serde_json::from_slice::<UidOnly>(raw) {
            Ok(UidOnly { uid: None }) => ReviewError::MissingUid,
            _ => e,
        }
    })?;
    let kind_json = wire.kind.get().as_bytes();
    if !is_object(kind_json) {
        return Err(ReviewError::InvalidField {
            field: "kind".into(),
            message: format!(
                "expected an object (group, version, kind), found {}",
                wire.kind.get()
            ),
        });
    }
    let kind: WireKind<'_> = deserialize_at(kind_json, "kind")?;
    let uid = text(wire.uid);
    if uid.is_empty() {
        return Err(ReviewError::MissingUid);
    }
    let object = present(wire.object).map(|o| range_in(raw, o.get()));
    let old_object = present(wire.old_object).map(|o| range_in(raw, o.get()));
    Ok(Review {
        raw,
        uid,
        group: text(kind.group),
        version: text(kind.version),
        kind: kind.kind.0,
        sub_resource: text(wire.sub_resource),
        name: text(wire.name),
        namespace: text(wire.namespace),
        operation: wire.operation,
        dry_run: wire.dry_run.unwrap_or(false),
        object,
        old_object,
    })
}

#[derive(Deserialize, Default)]
struct LabelsOnly {
    #[serde(default)]
    metadata: Option<MetadataLabels>,
}

#[derive(Deserialize, Default)]
struct MetadataLabels {
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

impl<'a> Review<'a> {
    /// The `request` JSON as received: what policies get.
    pub fn raw_request(&self) -> &'a [u8] {
        self.raw
    }

    pub fn object(&self) -> Option<&'a [u8]> {
        self.object.clone().and_then(|r| self.raw.get(r))
    }

    pub fn old_object(&self) -> Option<&'a [u8]> {
        self.old_object.clone().and_then(|r| self.raw.get(r))
    }

    /// True for a Namespace (the core group's), which is judged by its own labels.
    pub fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.kind == "Namespace"
    }

    /// The namespace whose environment applies: the request's, or for a Namespace
    /// its own name.
    pub fn environment_namespace(&self) -> &str {
        if self.is_namespace() && self.namespace.is_empty() {
            &self.name
        } else {
            &self.namespace
        }
    }

    /// The labels of the object under review (of the old object on DELETE), for a
    /// Namespace judged by its own labels. None when there is no readable object.
    pub fn own_labels(&self) -> Option<Labels> {
        let bytes = self.object().or_else(|| self.old_object())?;
        let parsed: LabelsOnly = serde_json::from_slice(bytes).ok()?;
        Some(Arc::new(
            parsed.metadata.and_then(|m| m.labels).unwrap_or_default(),
        ))
    }

    /// The request as it would be if `oldObject` were the object under review (an
    /// UPDATE's "before"): the raw request with the object's bytes replaced by the
    /// old object's. None without both objects.
    pub fn with_old_object_as_object(&self) -> Option<Vec<u8>> {
        let object = self.object.clone()?;
        let old = self.old_object()?;
        let mut out = Vec::with_capacity(self.raw.len() - object.len() + old.len());
        out.extend_from_slice(self.raw.get(..object.start)?);
        out.extend_from_slice(old);
        out.extend_from_slice(self.raw.get(object.end..)?);
        Some(out)
    }
}

/// The response review for request `uid`: allowed or denied (403 with `denial`),
/// with `warnings`.
pub fn encode_response(
    uid: &str,
    allowed: bool,
    denial: Option<&str>,
    warnings: &[String],
) -> Vec<u8> {
    let mut response = AdmissionResponse::invalid("");
    response.uid = uid.to_string();
    response.allowed = allowed;
    response.result = if allowed {
        Status::default()
    } else {
        let mut status = Status::failure(denial.unwrap_or("denied"), "Forbidden");
        status.code = 403;
        status
    };
    response.warnings = (!warnings.is_empty()).then(|| warnings.to_vec());
    encode(response, uid)
}

/// The response review denying request `uid` with an HTTP-style `code` and `reason`
/// (a denial that is not a policy's: 413 RequestEntityTooLarge for a review too
/// large to read).
pub fn encode_denial(uid: &str, code: u16, reason: &str, message: &str) -> Vec<u8> {
    let mut response = AdmissionResponse::invalid("");
    response.uid = uid.to_string();
    response.allowed = false;
    let mut status = Status::failure(message, reason);
    status.code = code;
    response.result = status;
    encode(response, uid)
}

fn encode(mut response: AdmissionResponse, uid: &str) -> Vec<u8> {
    response.types = TypeMeta {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
    };
    // Serializing kube's own response type cannot fail; keep an answer if it did.
    serde_json::to_vec(&response.into_review()).unwrap_or_else(|_| {
        format!(
            r#"{{"apiVersion":"{API_VERSION}","kind":"{KIND}","response":{{"uid":{},"allowed":false}}}}"#,
            serde_json::Value::String(uid.to_string())
        )
        .into_bytes()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn body(request: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"apiVersion": API_VERSION, "kind": KIND, "request": request}))
            .unwrap_or_default()
    }

    fn pod_request() -> Value {
        json!({
            "uid": "u-1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "plate-prod", "name": "web", "operation": "UPDATE",
            "userInfo": {"username": "me"},
            "object": {"metadata": {"name": "web", "labels": {"a": "1"}}, "spec": {"containers": [{"image": "new"}]}},
            "oldObject": {"metadata": {"name": "web"}, "spec": {"containers": [{"image": "old"}]}},
            "dryRun": true,
        })
    }

    #[test]
    fn reads_the_header_and_keeps_the_objects_raw() {
        let bytes = body(pod_request());
        let review = parse(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(review.uid, "u-1");
        assert_eq!(
            (&*review.group, &*review.version, &*review.kind),
            ("", "v1", "Pod")
        );
        assert_eq!(review.namespace, "plate-prod");
        assert_eq!(review.operation, Operation::Update);
        assert!(review.dry_run);
        assert!(
            matches!(review.uid, Cow::Borrowed(_)),
            "strings are borrowed"
        );
        let object: Value =
            serde_json::from_slice(review.object().unwrap_or_default()).unwrap_or_default();
        assert_eq!(object["spec"]["containers"][0]["image"], "new");
        let raw: Value = serde_json::from_slice(review.raw_request()).unwrap_or_default();
        assert_eq!(raw, pod_request(), "the raw request is the request as sent");
        assert_eq!(review.own_labels().map(|l| l.len()), Some(1));
    }

    #[test]
    fn the_before_view_swaps_in_the_old_object() {
        let bytes = body(pod_request());
        let review = parse(&bytes).unwrap_or_else(|e| panic!("{e}"));
        let before = review.with_old_object_as_object().unwrap_or_default();
        let before: Value = serde_json::from_slice(&before).unwrap_or_default();
        assert_eq!(before["object"]["spec"]["containers"][0]["image"], "old");
        assert_eq!(before["oldObject"]["spec"]["containers"][0]["image"], "old");
        assert_eq!(before["uid"], "u-1");
        let mut create = pod_request();
        create["oldObject"] = Value::Null;
        let bytes = body(create);
        let review = parse(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert!(review.old_object().is_none());
        assert!(review.with_old_object_as_object().is_none());
    }

    /// serde_json checks UTF-8 only in the strings it reads; bytes that are not
    /// UTF-8 in a field it skips made a body that is not JSON an accepted review
    /// (fuzz finding, fuzz/corpus/admission/crash-c8b732...: a top-level `object`
    /// beside `request` with a key holding 0x9b 0x87).
    #[test]
    fn a_body_that_is_not_utf8_is_not_json_wherever_the_bytes_are() {
        let valid = body(pod_request());
        assert!(parse(&valid).is_ok());
        // Beside the request, in a field the parser skips.
        let mut beside =
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","#.to_vec();
        beside.extend_from_slice(b"\n\"extra\":{\"m\x9b\x87\":1},\"request\":");
        beside.extend_from_slice(&serde_json::to_vec(&pod_request()).unwrap_or_default());
        beside.push(b'}');
        assert_eq!(
            parse(&beside).err(),
            Some(ReviewError::NotJson(
                "invalid UTF-8 at line 2 column 12 (JSON text must be UTF-8)".into()
            ))
        );
        // Inside the request, in a field it skips, given as the request alone.
        let request = serde_json::to_vec(&pod_request()).unwrap_or_default();
        let mut inside = b"{\"skipped\":\"\xff\",".to_vec();
        inside.extend_from_slice(request.get(1..).unwrap_or_default());
        assert_eq!(
            parse_request(&inside).err(),
            Some(ReviewError::InvalidRequest(
                "invalid UTF-8 at line 1 column 13 (JSON text must be UTF-8)".into()
            ))
        );
        assert!(parse_request(&request).is_ok());
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let err = |bytes: &[u8]| {
            parse(bytes)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(b"{").starts_with("the body is not valid JSON"));
        assert_eq!(
            err(br#"{"apiVersion":"admission.k8s.io/v1"}"#),
            ReviewError::MissingKind.to_string()
        );
        assert!(err(br#"{"kind":"Pod","apiVersion":"v1"}"#).contains("kind is \"Pod\""));
        assert!(
            err(br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1beta1"}"#)
                .contains("v1beta1")
        );
        assert_eq!(
            err(&body(Value::Null)),
            "the AdmissionReview has no request"
        );
        let mut no_uid = pod_request();
        no_uid["uid"] = json!("");
        assert_eq!(err(&body(no_uid)), "request.uid is missing or empty");
        let mut bad_op = pod_request();
        bad_op["operation"] = json!("PATCH");
        let text = err(&body(bad_op));
        assert!(
            text.starts_with("request.operation: unknown variant `PATCH`"),
            "{text}"
        );
        let mut bad_kind = pod_request();
        bad_kind["kind"] = json!({"group": "", "version": "v1", "kind": 7});
        assert!(err(&body(bad_kind)).starts_with("request.kind.kind: invalid type"));
        let mut no_kind = pod_request();
        no_kind.as_object_mut().map(|m| m.remove("kind"));
        assert!(err(&body(no_kind)).contains("missing field `kind`"));
    }

    #[test]
    fn responses_are_admission_reviews() {
        let denied: Value =
            serde_json::from_slice(&encode_response("u", false, Some("no"), &["w".into()]))
                .unwrap_or_default();
        assert_eq!(denied["apiVersion"], API_VERSION);
        assert_eq!(denied["kind"], KIND);
        assert_eq!(denied["response"]["uid"], "u");
        assert_eq!(denied["response"]["allowed"], false);
        assert_eq!(denied["response"]["status"]["code"], 403);
        assert_eq!(denied["response"]["status"]["message"], "no");
        assert_eq!(denied["response"]["warnings"], json!(["w"]));
        assert!(denied.get("request").is_none());
        let allowed: Value =
            serde_json::from_slice(&encode_response("u", true, None, &[])).unwrap_or_default();
        assert_eq!(allowed["response"]["allowed"], true);
        assert!(allowed["response"].get("warnings").is_none());
        let too_large: Value =
            serde_json::from_slice(&encode_denial("u", 413, "RequestEntityTooLarge", "too big"))
                .unwrap_or_default();
        assert_eq!(too_large["kind"], KIND);
        assert_eq!(too_large["response"]["uid"], "u");
        assert_eq!(too_large["response"]["allowed"], false);
        assert_eq!(too_large["response"]["status"]["code"], 413);
        assert_eq!(
            too_large["response"]["status"]["reason"],
            "RequestEntityTooLarge"
        );
        assert_eq!(too_large["response"]["status"]["message"], "too big");
    }
}
