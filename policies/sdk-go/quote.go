package plate

import (
	"strconv"
	"strings"
	"unicode"
)

// Quote writes s in double quotes the way Rust's `{:?}` writes a string, so that a
// Go policy's messages are byte for byte those of the same policy written with the
// Rust SDK (the shared suites compare them): \t \r \n \\ \" \0 are escaped, other
// control characters and non-printable or combining code points become \u{hex}.
// Printable Unicode is kept as is. (Rust decides "printable" with its own tables;
// unicode.IsPrint agrees on every character the suites use.)
func Quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		case '\n':
			b.WriteString(`\n`)
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case 0:
			b.WriteString(`\0`)
		default:
			if r == unicode.ReplacementChar || (unicode.IsPrint(r) && !unicode.In(r, unicode.Mn, unicode.Me)) || r == ' ' {
				b.WriteRune(r)
			} else {
				b.WriteString(`\u{`)
				b.WriteString(strconv.FormatInt(int64(r), 16))
				b.WriteByte('}')
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
