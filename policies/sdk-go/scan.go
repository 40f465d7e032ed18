package plate

import (
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A small JSON reader for the SDK's hot path: it finds members and elements by
// skipping over values without building them, so an evaluation reads the request
// and walks a pod spec without encoding/json's reflection and double scan (which
// cost a Go policy most of its time per request under WebAssembly). Keys match
// exactly, as the API server reads them. The host hands the policy well-formed JSON
// (it validated it); anything else is an error, never a panic.

var errSyntax = errors.New("malformed JSON")

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) (int, error) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, nil
		}
	}
	return 0, errSyntax
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				end, err := skipString(b, i)
				if err != nil {
					return 0, err
				}
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
		}
		return 0, errSyntax
	default:
		start := i
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\n' && b[i] != '\t' && b[i] != '\r' {
			i++
		}
		if i == start {
			return 0, errSyntax
		}
		return i, nil
	}
}

// members calls fn for each member of the object b (raw key without quotes, raw
// value); a b that is not an object is an error.
func members(b []byte, fn func(key, value []byte) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errNotObject
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for i < len(b) {
		if b[i] != '"' {
			return errSyntax
		}
		end, err := skipString(b, i)
		if err != nil {
			return err
		}
		key := b[i+1 : end-1]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return errSyntax
		}
		i = skipSpace(b, i+1)
		vend, err := skipValue(b, i)
		if err != nil {
			return err
		}
		if err := fn(key, b[i:vend]); err != nil {
			return err
		}
		i = skipSpace(b, vend)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == '}' {
			return nil
		}
		return errSyntax
	}
	return errSyntax
}

var (
	errNotObject = errors.New("not an object")
	errNotList   = errors.New("not a list")
	errNotString = errors.New("not a string")
)

// member is the raw value of the member key of object b (nil when absent).
func member(b []byte, key string) ([]byte, error) {
	var found []byte
	err := members(b, func(k, v []byte) error {
		if keyIs(k, key) {
			found = v
		}
		return nil
	})
	return found, err
}

// keyIs compares a raw key (possibly with escapes) with want.
func keyIs(raw []byte, want string) bool {
	if len(raw) == len(want) && string(raw) == want {
		return true
	}
	for _, c := range raw {
		if c == '\\' {
			s, err := unquote(append(append([]byte{'"'}, raw...), '"'))
			return err == nil && s == want
		}
	}
	return false
}

// elements calls fn for each element of the list b; a b that is not a list is an error.
func elements(b []byte, fn func(value []byte) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return errNotList
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return nil
	}
	for i < len(b) {
		end, err := skipValue(b, i)
		if err != nil {
			return err
		}
		if err := fn(b[i:end]); err != nil {
			return err
		}
		i = skipSpace(b, end)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == ']' {
			return nil
		}
		return errSyntax
	}
	return errSyntax
}

// isNullValue reports whether raw is absent or JSON null.
func isNullValue(raw []byte) bool {
	i := skipSpace(raw, 0)
	return i >= len(raw) || (len(raw)-i >= 4 && string(raw[i:i+4]) == "null")
}

// unquote decodes the JSON string raw (with its quotes).
func unquote(raw []byte) (string, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", errNotString
	}
	body := raw[1 : len(raw)-1]
	plain := true
	for _, c := range body {
		if c == '\\' || c < 0x20 {
			plain = false
			break
		}
	}
	if plain && utf8.Valid(body) {
		return string(body), nil
	}
	out := make([]byte, 0, len(body))
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(body) {
			return "", errSyntax
		}
		switch body[i] {
		case '"', '\\', '/':
			out = append(out, body[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, next, ok := hex4(body, i+1)
			if !ok {
				return "", errSyntax
			}
			i = next - 1
			if utf16.IsSurrogate(r) {
				// A pair makes one code point; a lone surrogate is U+FFFD, as
				// encoding/json reads it.
				first := r
				r = utf8.RuneError
				if next+1 < len(body) && body[next] == '\\' && body[next+1] == 'u' {
					if second, after, ok := hex4(body, next+2); ok {
						if pair := utf16.DecodeRune(first, second); pair != utf8.RuneError {
							r = pair
							i = after - 1
						}
					}
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", errSyntax
		}
	}
	if !utf8.Valid(out) {
		return string([]rune(string(out))), nil
	}
	return string(out), nil
}

// hex4 reads four hex digits at b[i:]; it returns the value and the index after them.
func hex4(b []byte, i int) (rune, int, bool) {
	if i+4 > len(b) {
		return 0, 0, false
	}
	v, err := strconv.ParseUint(string(b[i:i+4]), 16, 32)
	if err != nil {
		return 0, 0, false
	}
	return rune(v), i + 4, true
}

// stringMember is the string member key of object b: "" and false when absent or
// null, an error when it is not a string.
func stringMember(b []byte, key string) (string, bool, error) {
	raw, err := member(b, key)
	if err != nil || isNullValue(raw) {
		return "", false, err
	}
	s, err := unquote(raw)
	if err != nil {
		return "", false, errors.New(key + " is not a string")
	}
	return s, true, nil
}
