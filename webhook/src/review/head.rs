//! The head of an AdmissionReview too large to read whole: the fields that come
//! before `object` (uid, kind, name, namespace, operation), read from the start of
//! the body. The API server writes them first, so a bounded prefix holds them; the
//! scan stops at `object` and never needs the rest of the body.

use super::{API_VERSION, KIND, Operation};
use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;

/// How much of a body's start the scan reads at most.
pub const HEAD_SCAN_BYTES: usize = 64 * 1024;

/// What the start of a review says about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    pub uid: String,
    pub group: String,
    pub version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub operation: Option<Operation>,
}

/// What the scan saw, field by field; a field cut off by the prefix's end stays None.
#[derive(Default)]
struct Seen {
    api_version: Option<String>,
    kind: Option<String>,
    request: Head,
    uid: bool,
}

/// Reads the head of the AdmissionReview that `prefix` starts. None unless the
/// prefix shows an `admission.k8s.io/v1` AdmissionReview (kind and apiVersion come
/// before the request) whose request has a uid before its objects.
pub fn scan(prefix: &[u8]) -> Option<Head> {
    let prefix = prefix.get(..HEAD_SCAN_BYTES).unwrap_or(prefix);
    let mut seen = Seen::default();
    let mut deserializer = serde_json::Deserializer::from_slice(prefix);
    // The prefix ends mid-document, or the scan stopped at `object`: both are
    // errors to serde, and what was read before them is what counts.
    let _ = Envelope(&mut seen).deserialize(&mut deserializer);
    let review =
        seen.kind.as_deref() == Some(KIND) && seen.api_version.as_deref() == Some(API_VERSION);
    (review && seen.uid && !seen.request.uid.is_empty()).then_some(seen.request)
}

struct Envelope<'s>(&'s mut Seen);

impl<'de> DeserializeSeed<'de> for Envelope<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Envelope<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AdmissionReview")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "apiVersion" => self.0.api_version = Some(map.next_value()?),
                "kind" => self.0.kind = Some(map.next_value()?),
                // The request is what matters; nothing after it does.
                "request" => return map.next_value_seed(Request(self.0)),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct Request<'s>(&'s mut Seen);

impl<'de> DeserializeSeed<'de> for Request<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

#[derive(Deserialize)]
struct WireKind {
    #[serde(default)]
    group: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    kind: String,
}

impl<'de> Visitor<'de> for Request<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AdmissionRequest")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let head = &mut self.0.request;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "uid" => {
                    head.uid = map.next_value()?;
                    self.0.uid = true;
                }
                "kind" => {
                    let kind: WireKind = map.next_value()?;
                    (head.group, head.version, head.kind) = (kind.group, kind.version, kind.kind);
                }
                "name" => head.name = map.next_value()?,
                "namespace" => head.namespace = map.next_value()?,
                // An operation this host does not know stays None.
                "operation" => head.operation = map.next_value::<Operation>().ok(),
                // The objects are what made the body large: stop before them.
                "object" | "oldObject" => return Err(A::Error::custom("head ends")),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"705ab4f5","kind":{"group":"apps","version":"v1","kind":"Deployment"},"resource":{"group":"apps","version":"v1","resource":"deployments"},"name":"web","namespace":"plate-prod","operation":"UPDATE","userInfo":{"username":"admin","groups":["system:authenticated"]},"object":{"metadata":{"name":"web"},"spec":{"#;

    #[test]
    fn reads_the_fields_before_the_object_from_a_cut_body() {
        let head = scan(START.as_bytes()).unwrap_or_else(|| panic!("no head"));
        assert_eq!(
            head,
            Head {
                uid: "705ab4f5".into(),
                group: "apps".into(),
                version: "v1".into(),
                kind: "Deployment".into(),
                name: "web".into(),
                namespace: "plate-prod".into(),
                operation: Some(Operation::Update),
            }
        );
    }

    #[test]
    fn reads_escapes_and_any_field_order_before_the_object() {
        let body = r#" { "apiVersion" : "admission.k8s.io/v1", "extra": [1, {"a": "}"}], "kind":"AdmissionReview", "request": {"operation":"CREATE","name":"a\"b","uid":"u\u0031","oldObject":null"#;
        let head = scan(body.as_bytes()).unwrap_or_else(|| panic!("no head"));
        assert_eq!(
            (&*head.uid, &*head.name, head.operation),
            ("u1", "a\"b", Some(Operation::Create))
        );
    }

    #[test]
    fn no_head_without_a_whole_uid_or_outside_a_v1_review() {
        // The uid itself is cut off.
        let cut = START
            .find("705ab4f5")
            .map(|i| &START[..i + 3])
            .unwrap_or_default();
        assert_eq!(scan(cut.as_bytes()), None);
        // The uid after the objects (not where the API server puts it).
        let late = r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"object":{"a":1},"uid":"x"}}"#;
        assert_eq!(scan(late.as_bytes()), None);
        for wrong in [
            START.replace("admission.k8s.io/v1", "admission.k8s.io/v1beta1"),
            START.replace("\"kind\":\"AdmissionReview\",", ""),
            START.replace("\"uid\":\"705ab4f5\"", "\"uid\":\"\""),
            "not json at all".to_string(),
            String::new(),
            "[1,2,3]".to_string(),
        ] {
            assert_eq!(scan(wrong.as_bytes()), None, "{wrong}");
        }
    }

    #[test]
    fn reads_no_further_than_the_bound() {
        // A uid past the bound is not read, however the body goes on.
        let padding = " ".repeat(HEAD_SCAN_BYTES);
        let far = format!(
            r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1",{padding}"request":{{"uid":"x"}}}}"#
        );
        assert_eq!(scan(far.as_bytes()), None);
        let near = far.replace(&padding, "");
        assert_eq!(scan(near.as_bytes()).map(|h| h.uid), Some("x".into()));
    }
}
