package main

import (
	"testing"

	plate "policy.plate.dev/sdk"
)

// The unit tests of ../src/lib.rs, for the Go port.

func TestParsesEntries(t *testing.T) {
	table := []struct{ entry, host, path string }{
		{"harbor.cocdev.co.kr", "harbor.cocdev.co.kr", ""},
		{"HARBOR.cocdev.co.kr", "harbor.cocdev.co.kr", ""},
		{"localhost:5000", "localhost:5000", ""},
		{"[::1]:5000", "[::1]:5000", ""},
		{"index.docker.io", "docker.io", ""},
		{"docker.io/library", "docker.io", "library"},
		{"ghcr.io/plate/team", "ghcr.io", "plate/team"},
	}
	for _, row := range table {
		got, err := parseTrusted(row.entry)
		if err != nil || got.host != row.host || got.path != row.path {
			t.Errorf("%q: got %+v, %v", row.entry, got, err)
		}
	}
}

func TestRejectsEntries(t *testing.T) {
	for _, entry := range []string{"", "https://harbor.cocdev.co.kr", "harbor.cocdev.co.kr/", "bitnami", "harbor.cocdev.co.kr/plate:1.0", "harbor.cocdev.co.kr/Plate", "har bor.io", "-bad.io"} {
		if _, err := parseTrusted(entry); err == nil {
			t.Errorf("%q should be rejected", entry)
		}
	}
}

func TestMatchesAtPathBoundaries(t *testing.T) {
	check := func(entry, image string) bool {
		tr, err := parseTrusted(entry)
		if err != nil {
			t.Fatalf("%s: %v", entry, err)
		}
		ref, err := plate.ParseImageReference(image)
		if err != nil {
			t.Fatalf("%s: %v", image, err)
		}
		host, path := hostAndPath(ref)
		return tr.covers(host, path)
	}
	yes := [][2]string{
		{"harbor.cocdev.co.kr", "HARBOR.cocdev.co.kr/plate/api:1"},
		{"docker.io/library", "nginx:1.25"},
		{"docker.io/library", "index.docker.io/library/nginx"},
		{"ghcr.io/plate", "ghcr.io/plate:1"},
		{"localhost:5000", "localhost:5000/app:v1"},
	}
	no := [][2]string{
		{"harbor.cocdev.co.kr", "harbor.cocdev.co.kr.evil.com/plate/api:1"},
		{"harbor.cocdev.co.kr", "harbor.cocdev.co.kr:8443/plate/api:1"},
		{"docker.io/library", "docker.io/libraryx/nginx"},
		{"ghcr.io/plate", "ghcr.io/plate-evil/api:1"},
		{"localhost:5000", "localhost/app:v1"},
	}
	for _, c := range yes {
		if !check(c[0], c[1]) {
			t.Errorf("%s should cover %s", c[0], c[1])
		}
	}
	for _, c := range no {
		if check(c[0], c[1]) {
			t.Errorf("%s should not cover %s", c[0], c[1])
		}
	}
}
