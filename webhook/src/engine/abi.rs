//! Host side of guest ABI v1 (documented in docs/abi.md): the exports a module must
//! have, how input is written into guest memory and how the answer is read back.

use super::limits::StoreState;
use serde::Deserialize;
use wasmtime::{Extern, FuncType, Instance, Module, ModuleExport, Store, ValType};

pub const ABI_VERSION: i32 = 1;

/// A verdict larger than this is refused: no honest verdict is near it.
pub const MAX_VERDICT_BYTES: usize = 1 << 20;

pub const EXPORT_MEMORY: &str = "memory";
pub const EXPORT_VERSION: &str = "plate_abi_version";
pub const EXPORT_ALLOC: &str = "plate_alloc";
pub const EXPORT_VALIDATE: &str = "plate_validate";
pub const EXPORT_VALIDATE_SETTINGS: &str = "plate_validate_settings";

/// The verdict document a policy returns.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct GuestVerdict {
    pub allowed: bool,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub code: Option<u16>,
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Deserialize)]
struct SettingsAnswer {
    valid: bool,
    #[serde(default)]
    message: Option<String>,
}

/// Export handles, resolved once per module so evaluations skip name lookups.
pub struct AbiExports {
    memory: ModuleExport,
    version: ModuleExport,
    alloc: ModuleExport,
    pub validate: ModuleExport,
    pub validate_settings: ModuleExport,
}

pub enum CallError {
    Wasm(wasmtime::Error),
    Verdict(String),
}

impl From<wasmtime::Error> for CallError {
    fn from(e: wasmtime::Error) -> Self {
        CallError::Wasm(e)
    }
}

impl AbiExports {
    /// Checks every ABI v1 export exists with its signature.
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
                    "exports {name:?} with signature {actual}, but ABI v1 requires {expected}"
                ));
            }
            module.get_export_index(name).ok_or_else(|| missing(name))
        };
        let memory_export = module.get_export(EXPORT_MEMORY).ok_or_else(|| {
            format!("does not export a linear memory named {EXPORT_MEMORY:?} (required by ABI v1)")
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

    pub fn abi_version(
        &self,
        store: &mut Store<StoreState>,
        instance: &Instance,
    ) -> wasmtime::Result<i32> {
        let f = get_func(store, instance, &self.version)?.typed::<(), i32>(&*store)?;
        f.call(store, ())
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
            .map_err(|_| CallError::Verdict(format!("input of {total} bytes is too large")))?;
        let memory = match instance.get_module_export(&mut *store, &self.memory) {
            Some(Extern::Memory(memory)) => memory,
            _ => return Err(CallError::Verdict("the memory export disappeared".into())),
        };
        let alloc = get_func(store, instance, &self.alloc)?.typed::<i32, i32>(&*store)?;
        let ptr = alloc.call(&mut *store, len)?;
        if ptr <= 0 && total > 0 {
            return Err(CallError::Verdict(format!(
                "{EXPORT_ALLOC}({total}) returned {ptr}: no buffer for the input"
            )));
        }
        let mut offset = ptr as u32 as usize;
        for piece in input {
            memory.write(&mut *store, offset, piece).map_err(|e| {
                CallError::Verdict(format!(
                    "{EXPORT_ALLOC} returned a buffer outside memory: {e}"
                ))
            })?;
            offset += piece.len();
        }
        let f = get_func(store, instance, entry)?.typed::<(i32, i32), i64>(&*store)?;
        let packed = f.call(&mut *store, (ptr, len))?;
        let out_ptr = (packed as u64 >> 32) as usize;
        let out_len = (packed as u64 & 0xffff_ffff) as usize;
        if out_len > MAX_VERDICT_BYTES {
            return Err(CallError::Verdict(format!(
                "its answer is {out_len} bytes, more than the {MAX_VERDICT_BYTES}-byte limit"
            )));
        }
        let data = memory.data(&*store);
        let bytes = out_ptr
            .checked_add(out_len)
            .and_then(|end| data.get(out_ptr..end))
            .ok_or_else(|| {
                CallError::Verdict(format!(
                    "its answer (offset {out_ptr}, {out_len} bytes) lies outside its memory of {} bytes",
                    data.len()
                ))
            })?;
        Ok(bytes.to_vec())
    }
}

fn missing(name: &str) -> String {
    format!("does not export the function {name:?} required by ABI v1")
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

pub fn decode_verdict(bytes: &[u8]) -> Result<GuestVerdict, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 ({e})"))?;
    serde_json::from_str(text)
        .map_err(|e| format!("not a verdict document ({e}): {}", preview(text)))
}

pub fn decode_settings_answer(bytes: &[u8]) -> Result<Result<(), String>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 ({e})"))?;
    let answer: SettingsAnswer = serde_json::from_str(text)
        .map_err(|e| format!("not a settings answer ({e}): {}", preview(text)))?;
    if answer.valid {
        Ok(Ok(()))
    } else {
        Ok(Err(answer.message.unwrap_or_else(|| {
            "the policy rejected its settings without saying why".into()
        })))
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
