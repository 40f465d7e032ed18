package plate

import (
	"fmt"
	"strings"
)

// ImageReference is a container image reference, parsed as the distribution
// project reads them (github.com/distribution/reference v0.6.0
// ParseNormalizedNamed, what containerd and CRI-O resolve images with):
//
//	reference := name [ ":" tag ] [ "@" digest ]
//	name      := [ domain "/" ] path-component { "/" path-component }
//	domain    := host [ ":" port ]   host: DNS labels separated by ".", or "[" hex and ":" "]"
//	tag       := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//	digest    := "sha256:" hex{64} | "sha384:" hex{96} | "sha512:" hex{128}   (lowercase hex)
//
// The first "/"-separated component is a registry only if it contains "." or ":",
// is "localhost", or has an uppercase letter; otherwise the image is on Docker Hub
// (nginx is docker.io/library/nginx). It is the Rust SDK's parser (policies/sdk,
// image.rs) written again in Go, with the same errors.
type ImageReference struct {
	// Domain is the registry host as written; empty for Docker Hub short names.
	Domain string
	// Path is the repository path (plate/api; library/nginx for nginx).
	Path string
	// Tag is the tag as written; empty when there is none (the runtime pulls latest).
	Tag string
	// Digest is the digest (sha256:...), when the reference pins one.
	Digest string
}

// DockerHub is the registry of images whose reference names none.
const DockerHub = "docker.io"

// ImageReferenceError says why a string is not an image reference.
type ImageReferenceError struct {
	kind  imageErrorKind
	value string
	n     int
}

type imageErrorKind int

const (
	imageEmpty imageErrorKind = iota
	imageTooLong
	imageIdentifier
	imageInvalidDomain
	imageInvalidPathComponent
	imageInvalidTag
	imageInvalidDigest
)

func (e *ImageReferenceError) Error() string {
	switch e.kind {
	case imageEmpty:
		return "the image reference is empty"
	case imageTooLong:
		return fmt.Sprintf("the repository path is %d characters long (at most 255; a Docker Hub short name counts with its library/ prefix)", e.n)
	case imageIdentifier:
		return Quote(e.value) + " is a 64-digit hexadecimal image ID, not an image reference: name the image by repository (and digest: repository@sha256:...)"
	case imageInvalidDomain:
		return Quote(e.value) + " is not a valid registry host"
	case imageInvalidPathComponent:
		return Quote(e.value) + " is not a valid repository path component (lowercase letters, digits and single separators . _ __ -)"
	case imageInvalidTag:
		return Quote(e.value) + " is not a valid tag (letters, digits, _ . -, at most 128, not starting with . or -)"
	default:
		return Quote(e.value) + " is not a valid digest (sha256:, sha384: or sha512: and its lowercase hex digest)"
	}
}

func imageError(kind imageErrorKind, value string) *ImageReferenceError {
	return &ImageReferenceError{kind: kind, value: value}
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ParseImageReference parses reference by the grammar above.
func ParseImageReference(reference string) (ImageReference, error) {
	if reference == "" {
		return ImageReference{}, imageError(imageEmpty, "")
	}
	if len(reference) == 64 && isLowerHex(reference) {
		return ImageReference{}, imageError(imageIdentifier, reference)
	}
	rest, digest := reference, ""
	if at := strings.IndexByte(reference, '@'); at >= 0 {
		rest, digest = reference[:at], reference[at+1:]
		if err := validateDigest(digest); err != nil {
			return ImageReference{}, err
		}
	}
	// A tag is a colon after the last slash; an earlier colon is a port.
	lastSlash := strings.LastIndexByte(rest, '/') + 1
	name, tag := rest, ""
	if i := strings.LastIndexByte(rest[lastSlash:], ':'); i >= 0 {
		at := lastSlash + i
		tag = rest[at+1:]
		if err := validateTag(tag); err != nil {
			return ImageReference{}, err
		}
		name = rest[:at]
	}
	if name == "" {
		return ImageReference{}, imageError(imageEmpty, "")
	}
	domain, path := "", name
	if slash := strings.IndexByte(name, '/'); slash >= 0 && looksLikeDomain(name[:slash]) {
		domain, path = name[:slash], name[slash+1:]
		if err := validateDomain(domain); err != nil {
			return ImageReference{}, err
		}
	}
	// Counted as distribution counts it: the path as normalized.
	dockerHub := domain == "" || domain == DockerHub || domain == "index.docker.io"
	length := len(path)
	if dockerHub && !strings.Contains(path, "/") {
		length += len("library/")
	}
	if length > 255 {
		return ImageReference{}, &ImageReferenceError{kind: imageTooLong, n: length}
	}
	for _, component := range strings.Split(path, "/") {
		if err := validatePathComponent(component); err != nil {
			return ImageReference{}, err
		}
	}
	return ImageReference{Domain: domain, Path: path, Tag: tag, Digest: digest}, nil
}

// Registry is the registry host the runtime pulls from (docker.io for short names).
func (r ImageReference) Registry() string {
	switch r.Domain {
	case "", "index.docker.io", "registry-1.docker.io":
		return DockerHub
	default:
		return r.Domain
	}
}

// Repository is the fully qualified repository: docker.io/library/nginx.
func (r ImageReference) Repository() string {
	registry := r.Registry()
	if registry == DockerHub && !strings.Contains(r.Path, "/") {
		return DockerHub + "/library/" + r.Path
	}
	return registry + "/" + r.Path
}

// EffectiveTag is the tag the runtime resolves when none is written: latest.
func (r ImageReference) EffectiveTag() string {
	if r.Tag == "" {
		return "latest"
	}
	return r.Tag
}

// IsPinned reports whether a digest fixes the exact image.
func (r ImageReference) IsPinned() bool { return r.Digest != "" }

func looksLikeDomain(component string) bool {
	if strings.ContainsAny(component, ".:") || component == "localhost" {
		return true
	}
	for _, c := range component {
		if c >= 'A' && c <= 'Z' {
			return true
		}
	}
	return false
}

func isASCIIAlnum(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func validateDomain(domain string) error {
	bad := imageError(imageInvalidDomain, domain)
	var host, port string
	hasHost, hasPort := false, false
	if v6, ok := strings.CutPrefix(domain, "["); ok {
		addr, after, found := strings.Cut(v6, "]")
		if !found || addr == "" {
			return bad
		}
		for i := 0; i < len(addr); i++ {
			c := addr[i]
			if !(isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':') {
				return bad
			}
		}
		if after != "" {
			p, ok := strings.CutPrefix(after, ":")
			if !ok {
				return bad
			}
			port, hasPort = p, true
		}
	} else if i := strings.LastIndexByte(domain, ':'); i >= 0 {
		host, hasHost = domain[:i], true
		port, hasPort = domain[i+1:], true
	} else {
		host, hasHost = domain, true
	}
	if hasHost {
		for _, label := range strings.Split(host, ".") {
			if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
				return bad
			}
			for i := 0; i < len(label); i++ {
				if !isASCIIAlnum(label[i]) && label[i] != '-' {
					return bad
				}
			}
		}
	}
	if hasPort {
		if port == "" {
			return bad
		}
		for i := 0; i < len(port); i++ {
			if !isDigit(port[i]) {
				return bad
			}
		}
	}
	return nil
}

// validatePathComponent checks [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*.
func validatePathComponent(component string) error {
	bad := imageError(imageInvalidPathComponent, component)
	alnum := func(c byte) bool { return (c >= 'a' && c <= 'z') || isDigit(c) }
	n := len(component)
	if n == 0 || !alnum(component[0]) || !alnum(component[n-1]) {
		return bad
	}
	for i := 0; i < n; {
		c := component[i]
		if alnum(c) {
			i++
			continue
		}
		// A separator run: ".", "_", "__" or one or more "-", then an alphanumeric.
		start := i
		switch c {
		case '.':
			i++
		case '_':
			i++
			if i < n && component[i] == '_' {
				i++
			}
		case '-':
			for i < n && component[i] == '-' {
				i++
			}
		default:
			return bad
		}
		if i == start || i >= n || !alnum(component[i]) {
			return bad
		}
	}
	return nil
}

func validateTag(tag string) error {
	word := func(c byte) bool { return isASCIIAlnum(c) || c == '_' }
	ok := tag != "" && len(tag) <= 128 && word(tag[0])
	for i := 0; ok && i < len(tag); i++ {
		ok = word(tag[i]) || tag[i] == '.' || tag[i] == '-'
	}
	if !ok {
		return imageError(imageInvalidTag, tag)
	}
	return nil
}

func validateDigest(digest string) error {
	bad := imageError(imageInvalidDigest, digest)
	algorithm, hex, found := strings.Cut(digest, ":")
	if !found {
		return bad
	}
	// go-digest's algorithms; any other is refused (ErrDigestUnsupported).
	length := map[string]int{"sha256": 64, "sha384": 96, "sha512": 128}[algorithm]
	if length == 0 || len(hex) != length || !isLowerHex(hex) {
		return bad
	}
	return nil
}
