package plate

import (
	"errors"
	"strings"
	"testing"
)

const sha = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParsesValidReferences(t *testing.T) {
	table := []struct {
		in, domain, path, tag string
		pinned                bool
		repository            string
	}{
		{"nginx", "", "nginx", "", false, "docker.io/library/nginx"},
		{"nginx:1.25", "", "nginx", "1.25", false, "docker.io/library/nginx"},
		{"library/nginx:1.25", "", "library/nginx", "1.25", false, "docker.io/library/nginx"},
		{"bitnami/redis:7.2", "", "bitnami/redis", "7.2", false, "docker.io/bitnami/redis"},
		{"docker.io/nginx", "docker.io", "nginx", "", false, "docker.io/library/nginx"},
		{"index.docker.io/library/nginx:1", "index.docker.io", "library/nginx", "1", false, "docker.io/library/nginx"},
		{"harbor.local:5000/plate/api", "harbor.local:5000", "plate/api", "", false, "harbor.local:5000/plate/api"},
		{"harbor.local:5000/plate/api:2.0.1", "harbor.local:5000", "plate/api", "2.0.1", false, "harbor.local:5000/plate/api"},
		{"localhost/app", "localhost", "app", "", false, "localhost/app"},
		{"[::1]:5000/app:v1", "[::1]:5000", "app", "v1", false, "[::1]:5000/app"},
		{"Registry/app", "Registry", "app", "", false, "Registry/app"},
		{"ghcr.io/org/team/app:sha-abc_1.2-rc", "ghcr.io", "org/team/app", "sha-abc_1.2-rc", false, "ghcr.io/org/team/app"},
		{"app:1.25@" + sha, "", "app", "1.25", true, "docker.io/library/app"},
		{"harbor.local:5000/plate/api@" + sha, "harbor.local:5000", "plate/api", "", true, "harbor.local:5000/plate/api"},
		{"a__b/c-d--e/f.g:T", "", "a__b/c-d--e/f.g", "T", false, "docker.io/a__b/c-d--e/f.g"},
		{"ghcr.io/" + strings.Repeat("a", 255), "ghcr.io", strings.Repeat("a", 255), "", false, "ghcr.io/" + strings.Repeat("a", 255)},
		{"app@sha512:" + strings.Repeat("0123456789abcdef", 8), "", "app", "", true, "docker.io/library/app"},
	}
	for _, row := range table {
		r, err := ParseImageReference(row.in)
		if err != nil {
			t.Errorf("%q: unexpected error %v", row.in, err)
			continue
		}
		if r.Domain != row.domain || r.Path != row.path || r.Tag != row.tag || r.IsPinned() != row.pinned || r.Repository() != row.repository {
			t.Errorf("%q: got %+v (repository %s)", row.in, r, r.Repository())
		}
	}
}

func TestRejectsInvalidReferencesWithTheRustSDKsMessages(t *testing.T) {
	table := []struct{ in, message string }{
		{"", "the image reference is empty"},
		{":latest", "the image reference is empty"},
		{"nginx:", `"" is not a valid tag (letters, digits, _ . -, at most 128, not starting with . or -)`},
		{"nginx:has space", `"has space" is not a valid tag (letters, digits, _ . -, at most 128, not starting with . or -)`},
		{"nginx@sha256:abc", `"sha256:abc" is not a valid digest (sha256:, sha384: or sha512: and its lowercase hex digest)`},
		{"NGINX", `"NGINX" is not a valid repository path component (lowercase letters, digits and single separators . _ __ -)`},
		{"a//b", `"" is not a valid repository path component (lowercase letters, digits and single separators . _ __ -)`},
		{"a/b___c", `"b___c" is not a valid repository path component (lowercase letters, digits and single separators . _ __ -)`},
		{"host:port/app", `"host:port" is not a valid registry host`},
		{"[zz]:5000/app", `"[zz]:5000" is not a valid registry host`},
		{"[::ffff:1.2.3.4]/app", `"[::ffff:1.2.3.4]" is not a valid registry host`},
		{strings.Repeat("a", 250), "the repository path is 258 characters long (at most 255; a Docker Hub short name counts with its library/ prefix)"},
		{"a@SHA256:" + strings.Repeat("0", 64), `"SHA256:` + strings.Repeat("0", 64) + `" is not a valid digest (sha256:, sha384: or sha512: and its lowercase hex digest)`},
		{strings.Repeat("0123456789abcdef", 4), `"` + strings.Repeat("0123456789abcdef", 4) + `" is a 64-digit hexadecimal image ID, not an image reference: name the image by repository (and digest: repository@sha256:...)`},
	}
	for _, row := range table {
		_, err := ParseImageReference(row.in)
		var ie *ImageReferenceError
		if !errors.As(err, &ie) {
			t.Errorf("%q: want an ImageReferenceError, got %v", row.in, err)
			continue
		}
		if err.Error() != row.message {
			t.Errorf("%q:\n got %s\nwant %s", row.in, err, row.message)
		}
	}
}

func TestQuoteWritesWhatRustsDebugWrites(t *testing.T) {
	table := map[string]string{
		`plain`:       `"plain"`,
		"a\"b\\c":     `"a\"b\\c"`,
		"tab\there\n": `"tab\there\n"`,
		"nul\x00":     `"nul\0"`,
		"esc\x1b[0m":  `"esc\u{1b}[0m"`,
		"del\x7f":     `"del\u{7f}"`,
		"ünïcødé":     `"ünïcødé"`,
		"it's":        `"it's"`,
		"e\u0301":     `"e\u{301}"`,
	}
	for in, want := range table {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
}
