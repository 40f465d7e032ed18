// Package plate is the plate-policy guest SDK for Go: write an admission policy as
// one plain Go function and build it with Go's own toolchain.
//
//	package main
//
//	import plate "policy.plate.dev/sdk"
//
//	type Settings struct{}
//
//	func validate(req *plate.Request[Settings]) plate.Verdict {
//		return plate.Allow()
//	}
//
//	func init() { plate.Register(validate, func() Settings { return Settings{} }) }
//
//	func main() {}
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o policy.wasm .
//
// The package emits the exports of guest ABI v2 (docs/abi.md): memory,
// plate_abi_version, plate_alloc, plate_validate_settings, plate_validate. It speaks
// the same ABI as the Rust SDK (policies/sdk): a verdict is a list of [Violation]s,
// each with a stable key and, where the policy knows it, the field path. The host
// pre-initializes the module once (the Go runtime's start and every init function
// run at load, not per request), so do set-up work in init, never per request.
//
// docs/authoring-go.md goes from `plate-policy new --lang go` to a passing suite.
package plate
