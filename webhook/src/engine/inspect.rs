//! What a module declares, for `plate-policy inspect`: its exports and imports with
//! their types, read from the compiled module (so a module the ABI refuses can
//! still be described).

use super::{Engine, LoadError, PolicyModule};
use wasmtime::{ExternType, Module};

/// One export or import: its name (`module.name` for imports) and type.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Item {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
}

/// A module's exports and imports, in declaration order.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ModuleShape {
    pub exports: Vec<Item>,
    pub imports: Vec<Item>,
}

impl ModuleShape {
    /// Whether the module imports the host's context lookup (`plate.lookup_object`).
    pub fn uses_context_lookups(&self) -> bool {
        let lookup = format!(
            "{}.{}",
            plate_policy_sdk::abi::IMPORT_MODULE,
            plate_policy_sdk::abi::IMPORT_LOOKUP
        );
        self.imports.iter().any(|i| i.name == lookup)
    }
}

fn describe(ty: &ExternType) -> String {
    match ty {
        ExternType::Func(f) => {
            let list = |types: &mut dyn Iterator<Item = wasmtime::ValType>| {
                types.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
            };
            let results = list(&mut f.results());
            match results.as_str() {
                "" => format!("func ({})", list(&mut f.params())),
                _ => format!("func ({}) -> {results}", list(&mut f.params())),
            }
        }
        ExternType::Memory(m) => {
            let pages = |n: u64| format!("{n} pages ({} KiB)", n * 64);
            match m.maximum() {
                Some(max) => format!("memory, {} to {}", pages(m.minimum()), pages(max)),
                None => format!("memory, {} initially", pages(m.minimum())),
            }
        }
        ExternType::Global(g) => format!("global {}", g.content()),
        ExternType::Table(t) => format!("table of {}", t.element()),
        ExternType::Tag(_) => "tag".to_string(),
    }
}

fn shape_of(module: &Module) -> ModuleShape {
    ModuleShape {
        exports: module
            .exports()
            .map(|e| Item {
                name: e.name().to_string(),
                ty: describe(&e.ty()),
            })
            .collect(),
        imports: module
            .imports()
            .map(|i| Item {
                name: format!("{}.{}", i.module(), i.name()),
                ty: describe(&i.ty()),
            })
            .collect(),
    }
}

impl PolicyModule {
    /// The exports and imports of this loaded module.
    pub fn shape(&self) -> ModuleShape {
        shape_of(self.pre.module())
    }
}

impl Engine {
    /// Compiles `bytes` only to describe them: no ABI checks.
    pub fn shape(&self, bytes: &[u8]) -> Result<ModuleShape, LoadError> {
        if !bytes.starts_with(b"\0asm") {
            return Err(LoadError::NotWasm);
        }
        Module::new(&self.engine, bytes)
            .map(|m| shape_of(&m))
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))
    }
}
