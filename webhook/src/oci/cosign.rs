//! Cosign signatures, key-based: what `cosign sign --key` stores and `cosign verify
//! --key` checks. A signature of the artifact `REPO@sha256:M` is an OCI manifest
//! tagged `REPO:sha256-M.sig` whose layers (media type
//! `application/vnd.dev.cosign.simplesigning.v1+json`) are each a "simple signing"
//! JSON payload naming the signed manifest digest, with the signature of the
//! payload's bytes, base64, in the layer annotation `dev.cosignproject.cosign/signature`.
//!
//! Verified here with `ring` against a PEM public key (ECDSA P-256 or P-384 with
//! SHA-256, as cosign signs; Ed25519; RSA PKCS#1 v1.5 with SHA-256), rather than
//! with the `sigstore` crate, whose dependency tree (OIDC, protobuf specs, RSA,
//! Ed25519 and X.509 crates of its own) is several times this project's OCI client's
//! (docs/security.md, "Signed modules"). Keyless signing (Fulcio, Rekor) needs the
//! internet and is not supported.

use base64::Engine as _;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Media type of a cosign signature layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `critical.type` of a cosign payload.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";

/// The tag under which cosign stores the signatures of `manifest_digest`.
pub fn signature_tag(manifest_digest: &str) -> String {
    format!("{}.sig", manifest_digest.replace(':', "-"))
}

/// A public key that signatures are checked against.
pub struct PublicKey {
    /// Where it came from (a file, or `inline`), for messages.
    pub source: String,
    algorithm: &'static dyn VerificationAlgorithm,
    key: Vec<u8>,
    /// `sha256:` of the key's DER, to name it in logs and the cache.
    pub fingerprint: String,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("source", &self.source)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("cannot read the cosign public key {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the cosign public key {source_name} is not a PEM PUBLIC KEY: {message} (give the cosign.pub that cosign generate-key-pair wrote)"
    )]
    NotPem {
        source_name: String,
        message: String,
    },
    #[error(
        "the cosign public key {source_name} has a key type this host cannot verify ({what}); use ECDSA P-256 (cosign's default), P-384, Ed25519 or RSA"
    )]
    Unsupported { source_name: String, what: String },
}

impl PublicKey {
    /// Reads a PEM public key from `path`.
    pub fn read(path: &Path) -> Result<PublicKey, KeyError> {
        let pem = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_pem(&pem, &path.display().to_string())
    }

    /// Parses a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn from_pem(pem: &[u8], source: &str) -> Result<PublicKey, KeyError> {
        let not_pem = |message: String| KeyError::NotPem {
            source_name: source.to_string(),
            message,
        };
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| not_pem(e.to_string()))?;
        if pem.label != "PUBLIC KEY" {
            return Err(not_pem(format!(
                "it is a {:?} block, not PUBLIC KEY",
                pem.label
            )));
        }
        let (_, spki) = SubjectPublicKeyInfo::from_der(&pem.contents)
            .map_err(|e| not_pem(format!("not a SubjectPublicKeyInfo: {e}")))?;
        let unsupported = |what: String| KeyError::Unsupported {
            source_name: source.to_string(),
            what,
        };
        let oid = spki.algorithm.algorithm.to_id_string();
        let algorithm: &'static dyn VerificationAlgorithm = match oid.as_str() {
            "1.2.840.10045.2.1" => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string())
                    .unwrap_or_default();
                match curve.as_str() {
                    "1.2.840.10045.3.1.7" => &signature::ECDSA_P256_SHA256_ASN1,
                    "1.3.132.0.34" => &signature::ECDSA_P384_SHA256_ASN1,
                    other => return Err(unsupported(format!("elliptic curve {other}"))),
                }
            }
            "1.3.101.112" => &signature::ED25519,
            "1.2.840.113549.1.1.1" => &signature::RSA_PKCS1_2048_8192_SHA256,
            other => return Err(unsupported(format!("algorithm {other}"))),
        };
        Ok(PublicKey {
            source: source.to_string(),
            algorithm,
            key: spki.subject_public_key.data.to_vec(),
            fingerprint: super::reference::sha256_digest(&pem.contents),
        })
    }

    /// Whether `signature` is this key's signature of `payload`.
    pub fn verifies(&self, payload: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(self.algorithm, &self.key)
            .verify(payload, signature)
            .is_ok()
    }
}

/// One signature as stored: the payload bytes and the signature, both as read
/// from the registry (kept in the cache and checked again on every load).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// base64 of the payload bytes.
    pub payload: String,
    /// base64 of the signature, as in the annotation.
    pub signature: String,
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    #[serde(rename = "type")]
    kind: String,
    image: Image,
}

#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// Why no signature verified, for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unverified {
    /// There are no signatures.
    Unsigned,
    /// Signatures exist; none is this key's signature of this artifact.
    WrongSignatures { count: usize, reasons: Vec<String> },
}

/// Checks that some signature in `signatures` is `key`'s signature of a cosign
/// payload naming `manifest_digest`.
pub fn verify(
    key: &PublicKey,
    manifest_digest: &str,
    signatures: &[Signature],
) -> Result<(), Unverified> {
    if signatures.is_empty() {
        return Err(Unverified::Unsigned);
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut reasons = Vec::new();
    for s in signatures {
        let (Ok(payload), Ok(sig)) = (b64.decode(&s.payload), b64.decode(s.signature.trim()))
        else {
            reasons.push("a signature or payload that is not base64".to_string());
            continue;
        };
        if !key.verifies(&payload, &sig) {
            reasons.push(format!("a signature not made with the key {}", key.source));
            continue;
        }
        match serde_json::from_slice::<Payload>(&payload) {
            Ok(p) if p.critical.kind != PAYLOAD_TYPE => {
                reasons.push(format!("a signed payload of type {:?}", p.critical.kind))
            }
            Ok(p) if p.critical.image.docker_manifest_digest != manifest_digest => {
                reasons.push(format!(
                    "a signature of another artifact ({})",
                    p.critical.image.docker_manifest_digest
                ))
            }
            Ok(_) => return Ok(()),
            Err(e) => reasons.push(format!("a signed payload that is not cosign's: {e}")),
        }
    }
    reasons.dedup();
    Err(Unverified::WrongSignatures {
        count: signatures.len(),
        reasons,
    })
}

/// The simple-signing payload cosign writes for `repository@manifest_digest`.
pub fn payload(repository: &str, manifest_digest: &str) -> Vec<u8> {
    serde_json::json!({
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": manifest_digest},
            "type": PAYLOAD_TYPE,
        },
        "optional": null,
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    fn key_pair() -> (EcdsaKeyPair, PublicKey) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .unwrap_or_else(|e| panic!("{e}"));
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap_or_else(|e| panic!("{e}"));
        // SubjectPublicKeyInfo of a P-256 key: a fixed prefix and the point.
        let mut spki = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        spki.extend_from_slice(pair.public_key().as_ref());
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&spki)
        );
        let public =
            PublicKey::from_pem(pem.as_bytes(), "test.pub").unwrap_or_else(|e| panic!("{e}"));
        (pair, public)
    }

    fn sign(pair: &EcdsaKeyPair, payload: &[u8]) -> Signature {
        let sig = pair
            .sign(&SystemRandom::new(), payload)
            .unwrap_or_else(|e| panic!("{e}"));
        let b64 = base64::engine::general_purpose::STANDARD;
        Signature {
            payload: b64.encode(payload),
            signature: b64.encode(sig.as_ref()),
        }
    }

    const M: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const OTHER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn the_right_key_over_the_right_digest_verifies_and_nothing_else_does() {
        let (pair, key) = key_pair();
        let (other_pair, _) = key_pair();
        let good = sign(&pair, &payload("r.io/p", M));
        assert_eq!(verify(&key, M, std::slice::from_ref(&good)), Ok(()));
        assert_eq!(verify(&key, M, &[]), Err(Unverified::Unsigned));
        let wrong_key = sign(&other_pair, &payload("r.io/p", M));
        assert!(matches!(
            verify(&key, M, std::slice::from_ref(&wrong_key)),
            Err(Unverified::WrongSignatures { count: 1, .. })
        ));
        let other_artifact = sign(&pair, &payload("r.io/p", OTHER));
        match verify(&key, M, &[other_artifact]) {
            Err(Unverified::WrongSignatures { reasons, .. }) => {
                assert!(reasons[0].contains(OTHER), "{reasons:?}")
            }
            other => panic!("{other:?}"),
        }
        // One good signature among bad ones is enough, as with cosign.
        assert_eq!(verify(&key, M, &[wrong_key, good]), Ok(()));
    }

    #[test]
    fn keys_that_are_not_public_keys_are_refused_with_the_reason() {
        let e = match PublicKey::from_pem(b"hello", "k.pub") {
            Ok(k) => panic!("accepted: {k:?}"),
            Err(e) => e,
        };
        assert!(
            e.to_string().contains("k.pub is not a PEM PUBLIC KEY"),
            "{e}"
        );
        let private = b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n";
        let e = match PublicKey::from_pem(private, "cosign.key") {
            Ok(k) => panic!("accepted: {k:?}"),
            Err(e) => e,
        };
        assert!(e.to_string().contains("not PUBLIC KEY"), "{e}");
    }

    #[test]
    fn signature_tags_are_cosigns() {
        assert_eq!(signature_tag(M), format!("sha256-{}.sig", &M[7..]));
    }
}
