package plate

// The ABI's names and versions, as in the Rust SDK's abi module (docs/abi.md).
const (
	// ABIVersion is the guest ABI version this SDK speaks.
	ABIVersion int32 = 2
	// ImportModule is the module name of the host's imports.
	ImportModule = "plate"
	// ImportLookup is the context lookup import.
	ImportLookup = "lookup_object"
)

// Pack puts an offset and a length into the i64 the ABI returns answers in.
func Pack(offset, length uint32) int64 {
	return int64(uint64(offset)<<32 | uint64(length))
}

// Unpack splits a packed answer into offset and length.
func Unpack(packed int64) (offset, length uint32) {
	bits := uint64(packed)
	return uint32(bits >> 32), uint32(bits & 0xffff_ffff)
}

// buffers holds every buffer handed to the host by plate_alloc, by address, so that
// the garbage collector keeps them and input can be read back without converting an
// address into a pointer. The instance serves one call and is then discarded.
var buffers = map[uint32][]byte{}

// answer keeps the last answer alive until the host has read it.
var answer []byte

// allocate returns the address of a fresh buffer of n bytes, 0 if it cannot.
func allocate(n int32) int32 {
	if n < 0 {
		return 0
	}
	b := make([]byte, max(int(n), 1))
	addr := addressOf(b)
	buffers[addr] = b
	return int32(addr)
}

// input is the n bytes the host wrote into the buffer at addr.
func input(addr, n int32) []byte {
	b, ok := buffers[uint32(addr)]
	if !ok || n < 0 || int(n) > len(b) {
		return nil
	}
	return b[:n]
}

// reply keeps b and returns its packed address and length.
func reply(b []byte) int64 {
	answer = b
	if len(b) == 0 {
		return 0
	}
	return Pack(addressOf(b), uint32(len(b)))
}
