//! What a module imports and exports, read from its import and export sections
//! before anything is compiled: the engine decides from it whether a module is a
//! WASI reactor to pre-initialize.

use wasmparser::{Parser, Payload};

/// The imports and exports of a module, by module and name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleSections {
    /// `(module, name)` of every import.
    pub imports: Vec<(String, String)>,
    /// The name of every export.
    pub exports: Vec<String>,
}

impl ModuleSections {
    /// Reads the sections; an unreadable module is an error with wasmparser's reason.
    pub fn read(bytes: &[u8]) -> Result<ModuleSections, String> {
        let mut shape = ModuleSections::default();
        for payload in Parser::new(0).parse_all(bytes) {
            match payload.map_err(|e| e.to_string())? {
                Payload::ImportSection(section) => {
                    for import in section.into_imports() {
                        let import = import.map_err(|e| e.to_string())?;
                        shape
                            .imports
                            .push((import.module.to_string(), import.name.to_string()));
                    }
                }
                Payload::ExportSection(section) => {
                    for export in section {
                        let export = export.map_err(|e| e.to_string())?;
                        shape.exports.push(export.name.to_string());
                    }
                }
                // Nothing after the code section's start matters here.
                Payload::CodeSectionStart { .. } => break,
                _ => {}
            }
        }
        Ok(shape)
    }

    /// Whether it imports anything from WASI preview 1.
    pub fn imports_wasi(&self) -> bool {
        self.imports
            .iter()
            .any(|(module, _)| module == super::wasi::MODULE)
    }

    /// Whether it exports `name`.
    pub fn exports(&self, name: &str) -> bool {
        self.exports.iter().any(|e| e == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_imports_and_exports() {
        let wasm = wat::parse_str(
            r#"(module
                 (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
                 (func (export "_initialize"))
                 (memory (export "memory") 1))"#,
        )
        .unwrap_or_default();
        let shape = ModuleSections::read(&wasm).unwrap_or_default();
        assert!(shape.imports_wasi());
        assert!(shape.exports("_initialize"));
        assert!(shape.exports("memory"));
        assert!(!shape.exports("_start"));
        assert!(ModuleSections::read(b"\0asm\x01\0\0\0\x99").is_err());
    }
}
