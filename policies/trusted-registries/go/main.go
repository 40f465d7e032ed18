// Policy trusted-registries, in Go: the same policy as ../src/lib.rs (Rust), held to
// the same suites (../tests), case for case, with byte-identical verdicts.
//
// Every container image must come from a registry the platform trusts (default:
// the platform's Harbor, harbor.cocdev.co.kr). An entry of registries is a registry
// host (harbor.cocdev.co.kr, localhost:5000) or a host and repository path prefix
// (docker.io/library, ghcr.io/plate) that matches at a / boundary. Images are
// compared by their fully qualified repository, so Docker Hub short names count as
// docker.io, and hosts compare without regard to case. An image reference that does
// not parse is a violation. On the ephemeralcontainers subresource (kubectl debug)
// only ephemeral containers are checked.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o trusted-registries.wasm .
package main

import (
	"errors"
	"fmt"
	"strings"

	plate "policy.plate.dev/sdk"
)

// Settings of the policy.
type Settings struct {
	// Registries are trusted registry hosts, or host/path prefixes.
	Registries []string `json:"registries"`
}

func defaults() Settings {
	return Settings{Registries: []string{"harbor.cocdev.co.kr"}}
}

// Validate checks every entry at load.
func (s *Settings) Validate() error {
	if len(s.Registries) == 0 {
		return errors.New(`registries is empty: list at least one trusted registry (e.g. "harbor.cocdev.co.kr")`)
	}
	for i, entry := range s.Registries {
		if _, err := parseTrusted(entry); err != nil {
			return fmt.Errorf("registries[%d]: %w", i, err)
		}
	}
	return nil
}

// trusted is one registries entry, normalised: the registry host (Docker Hub's
// aliases read as docker.io) and an optional repository path prefix.
type trusted struct {
	host string
	path string
}

func parseTrusted(entry string) (trusted, error) {
	if entry == "" {
		return trusted{}, errors.New("the entry is empty")
	}
	if scheme, _, found := strings.Cut(entry, "://"); found {
		return trusted{}, fmt.Errorf(`%s has a scheme (%s://); write the registry host only, e.g. "harbor.cocdev.co.kr"`, plate.Quote(entry), scheme)
	}
	if strings.HasSuffix(entry, "/") {
		return trusted{}, fmt.Errorf("%s ends with a slash; write %s", plate.Quote(entry), plate.Quote(strings.TrimRight(entry, "/")))
	}
	// Read as the name of an image in it: HOST[/PATH]/x, by the image grammar.
	reference, err := plate.ParseImageReference(entry + "/x")
	if err != nil {
		return trusted{}, fmt.Errorf("%s is not a registry host or host/path prefix (%w)", plate.Quote(entry), err)
	}
	if reference.Tag != "" || reference.Digest != "" {
		return trusted{}, fmt.Errorf("%s names a tag or digest; write a registry host or host/path prefix", plate.Quote(entry))
	}
	if reference.Domain == "" {
		return trusted{}, fmt.Errorf(`%s does not start with a registry host (a host has a dot or a port, or is localhost); for Docker Hub write "docker.io/%s"`, plate.Quote(entry), entry)
	}
	path, _ := strings.CutSuffix(reference.Path, "/x")
	if path == reference.Path {
		path = ""
	}
	return trusted{host: strings.ToLower(reference.Registry()), path: path}, nil
}

// covers reports whether host/path (a fully qualified repository) is under t.
func (t trusted) covers(host, path string) bool {
	if !strings.EqualFold(host, t.host) {
		return false
	}
	if t.path == "" {
		return true
	}
	rest, found := strings.CutPrefix(path, t.path)
	return found && (rest == "" || strings.HasPrefix(rest, "/"))
}

// hostAndPath is the registry host of reference and its repository path under it:
// nginx is (docker.io, library/nginx).
func hostAndPath(reference plate.ImageReference) (string, string) {
	host := reference.Registry()
	repository := reference.Repository()
	if rest, found := strings.CutPrefix(repository, host+"/"); found {
		return host, rest
	}
	return host, repository
}

func validate(req *plate.Request[Settings]) plate.Verdict {
	list, err := plate.ContainersUnderReview(&req.Request)
	if err != nil {
		return plate.Error(err.Error())
	}
	registries := req.Settings.Registries
	var all []trusted
	for _, entry := range registries {
		t, err := parseTrusted(entry)
		if err != nil {
			// Settings are validated on load; this is only reached if that was skipped.
			return plate.Error("invalid settings: registries: " + err.Error())
		}
		all = append(all, t)
	}
	env := req.EnvironmentName()
	names := strings.Join(registries, ", ")
	var violations []plate.Violation
	for _, container := range list {
		if container.Image == nil {
			continue
		}
		image := *container.Image
		who := container.Describe()
		violation := func(message, summary string) plate.Violation {
			return plate.NewViolation(container.Key(), message).
				At(container.FieldPath("image")).
				WithSummary(container.Name + ": " + summary)
		}
		reference, err := plate.ParseImageReference(image)
		if err != nil {
			violations = append(violations, violation(
				fmt.Sprintf("%s uses image %s, which is not a valid image reference (%s); write registry/repository:tag with a trusted registry (%s)",
					who, plate.Quote(image), err, names),
				plate.Quote(image)+" is not a valid image reference",
			))
			continue
		}
		host, path := hostAndPath(reference)
		ok, hostTrusted := false, false
		for _, t := range all {
			ok = ok || t.covers(host, path)
			hostTrusted = hostTrusted || strings.EqualFold(t.host, host)
		}
		if ok {
			continue
		}
		repository := reference.Repository()
		// When the host is trusted for other paths only, the repository is what is wrong.
		from := "registry " + plate.Quote(host)
		if hostTrusted {
			from = "repository " + plate.Quote(repository)
		}
		violations = append(violations, violation(
			fmt.Sprintf("%s uses image %s from %s, which is not in the trusted registries (%s) for %s; push the image to a trusted registry",
				who, plate.Quote(image), from, names, env),
			repository+" is not from "+names,
		))
	}
	return plate.FromViolations(violations)
}

func init() { plate.Register(validate, defaults) }

func main() {}
