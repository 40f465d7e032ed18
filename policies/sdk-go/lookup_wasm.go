//go:build wasm

package plate

import (
	"errors"
	"runtime"
)

// The import's names are ImportModule and ImportLookup (the directive needs literals).
//
//go:wasmimport plate lookup_object
func lookupObject(addr, n uint32) uint64

func callHost(query []byte) ([]byte, error) {
	if len(query) == 0 {
		return nil, errors.New("empty lookup query")
	}
	packed := lookupObject(addressOf(query), uint32(len(query)))
	runtime.KeepAlive(query)
	addr, n := Unpack(int64(packed))
	// The host wrote the answer into a buffer it got from plate_alloc.
	b, ok := buffers[addr]
	if addr == 0 || !ok || int(n) > len(b) {
		return nil, errors.New("the host returned no lookup answer")
	}
	return b[:n], nil
}
