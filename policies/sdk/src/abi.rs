//! The names and number packing of the guest ABI (docs/abi.md), defined once and used
//! by both sides: the SDK's exports and imports, and the host that calls them.

/// The ABI version this SDK builds (what `plate_abi_version` returns).
pub const ABI_VERSION: i32 = 2;

/// Every version a host of this release accepts: v1 modules keep loading.
pub const SUPPORTED_ABI_VERSIONS: &[i32] = &[1, 2];

/// The linear memory input and answers live in.
pub const EXPORT_MEMORY: &str = "memory";
/// `() -> i32`: the ABI version the module speaks.
pub const EXPORT_VERSION: &str = "plate_abi_version";
/// `(len: i32) -> i32`: a fresh buffer of `len` bytes, 0 when there is none.
pub const EXPORT_ALLOC: &str = "plate_alloc";
/// `(ptr: i32, len: i32) -> i64`: evaluates one admission request.
pub const EXPORT_VALIDATE: &str = "plate_validate";
/// `(ptr: i32, len: i32) -> i64`: checks the policy's settings (load time).
pub const EXPORT_VALIDATE_SETTINGS: &str = "plate_validate_settings";

/// Module of the host functions a guest may import.
pub const IMPORT_MODULE: &str = "plate";
/// `(ptr: i32, len: i32) -> i64`: reads one Kubernetes object from the host's cache.
pub const IMPORT_LOOKUP: &str = "lookup_object";

/// An answer's place in guest memory as the `i64` a call returns:
/// `(offset << 32) | length`.
pub fn pack(offset: u32, len: u32) -> i64 {
    ((u64::from(offset) << 32) | u64::from(len)) as i64
}

/// The (offset, length) of a packed answer.
pub fn unpack(packed: i64) -> (u32, u32) {
    let bits = packed as u64;
    ((bits >> 32) as u32, (bits & 0xffff_ffff) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips_at_the_edges() {
        for (offset, len) in [
            (0, 0),
            (1, 2),
            (u32::MAX, 0),
            (0, u32::MAX),
            (u32::MAX, u32::MAX),
        ] {
            assert_eq!(unpack(pack(offset, len)), (offset, len));
        }
        // The documented layout, not only a round trip.
        assert_eq!(pack(16, 14), (16_i64 << 32) | 14);
    }
}
