package plate

import "unsafe"

// addressOf is the linear-memory address of b's first byte (wasm32: addresses fit
// in 32 bits). Only used to tell the host where a buffer is.
func addressOf(b []byte) uint32 {
	if len(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&b[0])))
}
