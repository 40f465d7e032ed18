//! Host side of the guest ABI (docs/abi.md): the exports a module must have, how
//! input is written into guest memory, and how answers are read back, for ABI v1
//! (one message) and v2 (a list of violations). Names and packing come from the
//! SDK's `abi` module, so host and guests agree by construction.

use super::store::StoreState;
use plate_policy_sdk::abi::{
    EXPORT_ALLOC, EXPORT_MEMORY, EXPORT_VALIDATE, EXPORT_VALIDATE_SETTINGS, EXPORT_VERSION,
    SUPPORTED_ABI_VERSIONS, unpack,
};
use plate_policy_sdk::{SettingsValidation, Violation};
use serde::Deserialize;
use wasmtime::{Extern, FuncType, Instance, Module, ModuleExport, Store, ValType};

/// An answer larger than this is refused: no honest verdict is near it.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// What a verdict says, whatever the ABI version it came in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuestVerdict {
    /// Empty: the object complies.
    pub violations: Vec<Violation>,
    /// Advice the policy gives whatever its mode.
    pub warnings: Vec<String>,
}

/// A verdict document as a guest writes it: v1's `message` or v2's `violations`.
#[derive(Deserialize)]
struct WireVerdict {
    allowed: bool,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    violations: Vec<Violation>,
    #[serde(default)]
    warnings: Vec<String>,
    #[serde(default)]
    error: Option<String>,
}

/// Why an answer could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerError {
    /// The answer is not a verdict (not UTF-8, not JSON, inconsistent).
    Unreadable(String),
    /// The verdict's `error`: the policy could not evaluate.
    Guest(String),
}

/// Message of a v1 verdict that denies without saying why.
const NO_MESSAGE: &str = "the policy denied the request without a message";

/// Reads a verdict of ABI `version`.
pub fn decode_verdict(version: i32, bytes: &[u8]) -> Result<GuestVerdict, AnswerError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| AnswerError::Unreadable(format!("not UTF-8 ({e})")))?;
    let wire: WireVerdict = serde_json::from_str(text).map_err(|e| {
        AnswerError::Unreadable(format!("not a verdict document ({e}): {}", preview(text)))
    })?;
    if let Some(error) = wire.error {
        return Err(AnswerError::Guest(error));
    }
    let violations = if version == 1 {
        // v1: one message is one violation; the message is its own key.
        match (wire.allowed, wire.message.filter(|m| !m.is_empty())) {
            (true, _) => Vec::new(),
            (false, message) => {
                let message = message.unwrap_or_else(|| NO_MESSAGE.to_string());
                vec![Violation::new(message.clone(), message)]
            }
        }
    } else {
        if wire.allowed != wire.violations.is_empty() {
            return Err(AnswerError::Unreadable(format!(
                "allowed is {} but it lists {} violation(s)",
                wire.allowed,
                wire.violations.len()
            )));
        }
        let mut violations = wire.violations;
        for (i, v) in violations.iter_mut().enumerate() {
            if v.message.trim().is_empty() {
                return Err(AnswerError::Unreadable(format!(
                    "violations[{i}] (key {:?}) has no message",
                    v.key
                )));
            }
            if v.key.is_empty() {
                v.key.clone_from(&v.message);
            }
        }
        violations
    };
    Ok(GuestVerdict {
        violations,
        warnings: wire.warnings,
    })
}

/// Reads the answer of `plate_validate_settings`: `Ok(Err(message))` is the policy
/// rejecting its settings.
pub fn decode_settings_answer(bytes: &[u8]) -> Result<Result<(), String>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 ({e})"))?;
    let answer: SettingsValidation = serde_json::from_str(text)
        .map_err(|e| format!("not a settings answer ({e}): {}", preview(text)))?;
    if answer.valid {
        Ok(Ok(()))
    } else {
        Ok(Err(answer.message.unwrap_or_else(|| {
            "the policy rejected its settings without saying why".into()
        })))
    }
}

/// Export handles, resolved once per module so evaluations skip name lookups.
pub struct AbiExports {
    memory: ModuleExport,
    version: ModuleExport,
    alloc: ModuleExport,
    pub validate: ModuleExport,
    pub validate_settings: ModuleExport,
}

/// Why a call produced no answer.
pub enum CallError {
    /// The guest trapped or a wasm operation failed.
    Wasm(wasmtime::Error),
    /// The input could not be handed to the guest.
    Input(String),
    /// The answer's place is not a readable answer.
    Answer(String),
}

impl From<wasmtime::Error> for CallError {
    fn from(e: wasmtime::Error) -> Self {
        CallError::Wasm(e)
    }
}

fn missing(name: &str) -> String {
    format!("does not export the function {name:?} required by the plate-policy ABI")
}

impl AbiExports {
    /// Checks every export exists with its signature.
    pub fn find(module: &Module) -> Result<AbiExports, String> {
        let engine = module.engine();
        let func = |name: &str, params: &[ValType], results: &[ValType]| {
            let expected = FuncType::new(engine, params.iter().cloned(), results.iter().cloned());
            let export = module.get_export(name).ok_or_else(|| missing(name))?;
            let actual = export
                .func()
                .ok_or_else(|| format!("exports {name:?}, but not as a function"))?;
            if !FuncType::eq(actual, &expected) {
                return Err(format!(
                    "exports {name:?} with signature {actual}, but the ABI requires {expected}"
                ));
            }
            module.get_export_index(name).ok_or_else(|| missing(name))
        };
        let memory_export = module.get_export(EXPORT_MEMORY).ok_or_else(|| {
            format!("does not export a linear memory named {EXPORT_MEMORY:?} (required by the ABI)")
        })?;
        if memory_export.memory().is_none() {
            return Err(format!("exports {EXPORT_MEMORY:?}, but not as a memory"));
        }
        let memory = module
            .get_export_index(EXPORT_MEMORY)
            .ok_or_else(|| missing(EXPORT_MEMORY))?;
        let version = module.get_export(EXPORT_VERSION).ok_or_else(|| {
            format!(
                "does not export {EXPORT_VERSION:?}, so it declares no ABI version: \
                 not a plate-policy module (build it with the plate-policy SDK or follow docs/abi.md)"
            )
        })?;
        if version.func().is_none() {
            return Err(format!("exports {EXPORT_VERSION:?}, but not as a function"));
        }
        let one_i32 = [ValType::I32];
        let two_i32 = [ValType::I32, ValType::I32];
        let one_i64 = [ValType::I64];
        Ok(AbiExports {
            memory,
            version: func(EXPORT_VERSION, &[], &one_i32)?,
            alloc: func(EXPORT_ALLOC, &one_i32, &one_i32)?,
            validate: func(EXPORT_VALIDATE, &two_i32, &one_i64)?,
            validate_settings: func(EXPORT_VALIDATE_SETTINGS, &two_i32, &one_i64)?,
        })
    }

    /// Calls `plate_abi_version` and checks the host speaks that version.
    pub fn abi_version(
        &self,
        store: &mut Store<StoreState>,
        instance: &Instance,
    ) -> Result<i32, String> {
        let f = get_func(store, instance, &self.version)
            .and_then(|f| f.typed::<(), i32>(&*store))
            .map_err(|e| format!("{EXPORT_VERSION} cannot be called: {e:#}"))?;
        let version = f
            .call(&mut *store, ())
            .map_err(|e| format!("{EXPORT_VERSION} failed: {e:#}"))?;
        if !SUPPORTED_ABI_VERSIONS.contains(&version) {
            return Err(format!(
                "declares ABI version {version} ({EXPORT_VERSION}), but this host speaks versions {SUPPORTED_ABI_VERSIONS:?}"
            ));
        }
        Ok(version)
    }

    /// Writes `input` (pieces, back to back) into a guest buffer, calls `entry` and
    /// copies out the answer it points to.
    pub fn call(
        &self,
        store: &mut Store<StoreState>,
        instance: &Instance,
        entry: &ModuleExport,
        input: &[&[u8]],
    ) -> Result<Vec<u8>, CallError> {
        let total: usize = input.iter().map(|p| p.len()).sum();
        let len = i32::try_from(total)
            .map_err(|_| CallError::Input(format!("the input of {total} bytes is too large")))?;
        let memory = match instance.get_module_export(&mut *store, &self.memory) {
            Some(Extern::Memory(memory)) => memory,
            _ => return Err(CallError::Input("its memory export is missing".into())),
        };
        let alloc = get_func(store, instance, &self.alloc)?.typed::<i32, i32>(&*store)?;
        let ptr = alloc.call(&mut *store, len)?;
        if ptr <= 0 && total > 0 {
            return Err(CallError::Input(format!(
                "{EXPORT_ALLOC}({total}) returned {ptr}: no buffer for the input"
            )));
        }
        let mut offset = ptr as u32 as usize;
        for piece in input {
            memory.write(&mut *store, offset, piece).map_err(|e| {
                CallError::Input(format!(
                    "{EXPORT_ALLOC} returned a buffer outside memory: {e}"
                ))
            })?;
            offset += piece.len();
        }
        let f = get_func(store, instance, entry)?.typed::<(i32, i32), i64>(&*store)?;
        let packed = f.call(&mut *store, (ptr, len))?;
        let (out_ptr, out_len) = unpack(packed);
        let (out_ptr, out_len) = (out_ptr as usize, out_len as usize);
        if out_len > MAX_ANSWER_BYTES {
            return Err(CallError::Answer(format!(
                "its answer is {out_len} bytes, more than the {MAX_ANSWER_BYTES}-byte limit"
            )));
        }
        let data = memory.data(&*store);
        let bytes = out_ptr
            .checked_add(out_len)
            .and_then(|end| data.get(out_ptr..end))
            .ok_or_else(|| {
                CallError::Answer(format!(
                    "its answer (offset {out_ptr}, {out_len} bytes) lies outside its memory of {} bytes",
                    data.len()
                ))
            })?;
        Ok(bytes.to_vec())
    }
}

fn get_func(
    store: &mut Store<StoreState>,
    instance: &Instance,
    export: &ModuleExport,
) -> wasmtime::Result<wasmtime::Func> {
    match instance.get_module_export(&mut *store, export) {
        Some(Extern::Func(f)) => Ok(f),
        _ => Err(wasmtime::format_err!("export is not a function")),
    }
}

/// The start of a bad document, for error messages.
fn preview(text: &str) -> String {
    let mut end = text.len().min(80);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{:?}{}",
        &text[..end],
        if end < text.len() { "..." } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violations(version: i32, text: &str) -> Result<Vec<(String, String)>, AnswerError> {
        decode_verdict(version, text.as_bytes()).map(|v| {
            v.violations
                .into_iter()
                .map(|v| (v.key, v.message))
                .collect()
        })
    }

    #[test]
    fn v1_message_becomes_one_violation_keyed_by_itself() {
        assert_eq!(
            violations(1, r#"{"allowed":true,"message":"ignored"}"#),
            Ok(vec![])
        );
        assert_eq!(
            violations(1, r#"{"allowed":false,"message":"a\nb","code":403}"#),
            Ok(vec![("a\nb".into(), "a\nb".into())])
        );
        assert_eq!(
            violations(1, r#"{"allowed":false}"#),
            Ok(vec![(NO_MESSAGE.into(), NO_MESSAGE.into())])
        );
        // v1 has no violations field: a v1 module sending one is read as v1.
        assert_eq!(
            violations(
                1,
                r#"{"allowed":true,"violations":[{"key":"k","message":"m"}]}"#
            ),
            Ok(vec![])
        );
    }

    #[test]
    fn v2_violations_are_kept_and_checked() {
        let text = r#"{"allowed":false,"violations":[{"key":"container:api","message":"m","path":"spec.containers[0].image","summary":"s"},{"key":"","message":"n"}],"warnings":["w"]}"#;
        let verdict = decode_verdict(2, text.as_bytes()).unwrap_or_default();
        assert_eq!(verdict.violations.len(), 2);
        assert_eq!(
            verdict.violations[0].path.as_deref(),
            Some("spec.containers[0].image")
        );
        assert_eq!(verdict.violations[0].summary.as_deref(), Some("s"));
        assert_eq!(
            verdict.violations[1].key, "n",
            "an empty key becomes the message"
        );
        assert_eq!(verdict.warnings, ["w"]);
        for inconsistent in [
            r#"{"allowed":false}"#,
            r#"{"allowed":true,"violations":[{"key":"k","message":"m"}]}"#,
            r#"{"allowed":false,"violations":[{"key":"k","message":" "}]}"#,
            r#"{"allowed":false,"violations":[{"message":"no key field"}]}"#,
        ] {
            assert!(
                matches!(
                    decode_verdict(2, inconsistent.as_bytes()),
                    Err(AnswerError::Unreadable(_))
                ),
                "{inconsistent}"
            );
        }
    }

    #[test]
    fn errors_and_garbage() {
        assert_eq!(
            decode_verdict(2, br#"{"allowed":false,"error":"cannot read"}"#),
            Err(AnswerError::Guest("cannot read".into()))
        );
        assert!(
            matches!(decode_verdict(2, b"\xff"), Err(AnswerError::Unreadable(m)) if m.contains("UTF-8"))
        );
        assert!(
            matches!(decode_verdict(1, b"[]"), Err(AnswerError::Unreadable(m)) if m.contains("not a verdict"))
        );
        assert_eq!(decode_settings_answer(br#"{"valid":true}"#), Ok(Ok(())));
        assert_eq!(
            decode_settings_answer(br#"{"valid":false,"message":"x is empty"}"#),
            Ok(Err("x is empty".into()))
        );
        assert!(decode_settings_answer(b"{}").is_err());
    }
}
