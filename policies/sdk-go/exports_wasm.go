//go:build wasm

package plate

// The exports of guest ABI v2. They exist only in wasm builds; `go test` on the
// host exercises the functions they call.

//go:wasmexport plate_abi_version
func exportABIVersion() int32 { return ABIVersion }

//go:wasmexport plate_alloc
func exportAlloc(n int32) int32 { return allocate(n) }

//go:wasmexport plate_validate_settings
func exportValidateSettings(addr, n int32) int64 {
	return reply(validateSettingsJSON(input(addr, n)))
}

//go:wasmexport plate_validate
func exportValidate(addr, n int32) int64 {
	return reply(validateJSON(input(addr, n)))
}
