package plate

import (
	"strconv"
	"unicode/utf8"
)

// The ABI's answers written by hand: encoding/json builds its encoders by
// reflection on first use, and in a sandbox that lives for one request every use
// is the first.

func appendString(out []byte, s string) []byte {
	out = append(out, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				out = append(out, '\\', c)
			case c == '\n':
				out = append(out, '\\', 'n')
			case c == '\r':
				out = append(out, '\\', 'r')
			case c == '\t':
				out = append(out, '\\', 't')
			case c < 0x20:
				out = append(out, '\\', 'u', '0', '0', "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
			default:
				out = append(out, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			out = append(out, `\ufffd`...)
		} else {
			out = append(out, s[i:i+size]...)
		}
		i += size
	}
	return append(out, '"')
}

func appendField(out []byte, name, value string, omitEmpty bool) []byte {
	if omitEmpty && value == "" {
		return out
	}
	out = append(out, ',', '"')
	out = append(out, name...)
	out = append(out, '"', ':')
	return appendString(out, value)
}

// encode writes the verdict as ABI v2 JSON.
func (v Verdict) encode() []byte {
	out := make([]byte, 0, 256)
	out = append(out, `{"allowed":`...)
	out = strconv.AppendBool(out, v.Allowed)
	if len(v.Violations) > 0 {
		out = append(out, `,"violations":[`...)
		for i, violation := range v.Violations {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, `{"key":`...)
			out = appendString(out, violation.Key)
			out = appendField(out, "message", violation.Message, false)
			out = appendField(out, "path", violation.Path, true)
			out = appendField(out, "summary", violation.Summary, true)
			out = append(out, '}')
		}
		out = append(out, ']')
	}
	if len(v.Warnings) > 0 {
		out = append(out, `,"warnings":[`...)
		for i, warning := range v.Warnings {
			if i > 0 {
				out = append(out, ',')
			}
			out = appendString(out, warning)
		}
		out = append(out, ']')
	}
	out = appendField(out, "error", v.Error, true)
	return append(out, '}')
}

// encode writes the settings answer.
func (s SettingsValidation) encode() []byte {
	out := []byte(`{"valid":`)
	out = strconv.AppendBool(out, s.Valid)
	out = appendField(out, "message", s.Message, true)
	return append(out, '}')
}
