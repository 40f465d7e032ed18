//go:build !wasm

package plate

import "errors"

// HostLookup answers lookups outside the host (go test): set it to a fake.
var HostLookup func(query []byte) ([]byte, error)

func callHost(query []byte) ([]byte, error) {
	if HostLookup == nil {
		return nil, errors.New("context lookups are only available inside the plate-policy host")
	}
	return HostLookup(query)
}
