//! The host functions a guest may import, defined on the linker: only
//! `plate.lookup_object` (docs/abi.md). A module importing anything else fails to
//! load, not at evaluation time.

use super::lookup;
use super::store::StoreState;
use plate_policy_sdk::abi::{EXPORT_ALLOC, EXPORT_MEMORY, IMPORT_LOOKUP, IMPORT_MODULE, pack};
use wasmtime::{Caller, Extern, Linker};

/// True for the imports the linker provides.
pub fn provides(module: &str, name: &str) -> bool {
    module == IMPORT_MODULE && name == IMPORT_LOOKUP
}

/// Adds `plate.lookup_object(ptr, len) -> i64` to the linker.
pub fn define(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        IMPORT_MODULE,
        IMPORT_LOOKUP,
        |mut caller: Caller<'_, StoreState>, ptr: i32, len: i32| -> wasmtime::Result<i64> {
            let Some(Extern::Memory(memory)) = caller.get_export(EXPORT_MEMORY) else {
                wasmtime::bail!("{IMPORT_LOOKUP}: the module exports no memory");
            };
            let answer = {
                let (data, state) = memory.data_and_store_mut(&mut caller);
                let start = ptr as u32 as usize;
                let query = start
                    .checked_add(len as u32 as usize)
                    .and_then(|end| data.get(start..end));
                lookup::answer(state.lookup.as_mut(), query)
            };
            let Some(Extern::Func(alloc)) = caller.get_export(EXPORT_ALLOC) else {
                wasmtime::bail!("{IMPORT_LOOKUP}: the module exports no {EXPORT_ALLOC}");
            };
            let alloc = alloc.typed::<i32, i32>(&caller)?;
            let size = i32::try_from(answer.len())?;
            let at = alloc.call(&mut caller, size)?;
            if at <= 0 {
                wasmtime::bail!("{IMPORT_LOOKUP}: {EXPORT_ALLOC}({size}) gave no buffer");
            }
            memory.write(&mut caller, at as u32 as usize, &answer)?;
            Ok(pack(at as u32, size as u32))
        },
    )?;
    Ok(())
}
