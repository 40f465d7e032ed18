package plate

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Containers of every pod-bearing object: Pods, pod templates, the built-in
// workload kinds, and any other kind that embeds a pod template at
// spec.template.spec (Argo Rollouts, OpenKruise CloneSets, ...). The same walk as
// the Rust SDK's workload module, with the same paths and keys.

// ContainerSection is the list of the pod spec a container is in.
type ContainerSection int

const (
	// Containers is spec.containers.
	Containers ContainerSection = iota
	// InitContainers is spec.initContainers.
	InitContainers
	// EphemeralContainers is spec.ephemeralContainers (added by kubectl debug).
	EphemeralContainers
)

// Noun is the singular noun for messages: container, init container, ephemeral container.
func (s ContainerSection) Noun() string {
	return [...]string{"container", "init container", "ephemeral container"}[s]
}

// Field is the pod spec field: containers, initContainers, ephemeralContainers.
func (s ContainerSection) Field() string {
	return [...]string{"containers", "initContainers", "ephemeralContainers"}[s]
}

// KeyPrefix is the violation key prefix: container, initContainer, ephemeralContainer.
func (s ContainerSection) KeyPrefix() string {
	return [...]string{"container", "initContainer", "ephemeralContainer"}[s]
}

// ContainerRef is one container of a pod spec, with the fields policies look at.
type ContainerRef struct {
	Section ContainerSection
	// Name is the container's name.
	Name string
	// Image is the image as written; nil when the container has none.
	Image *string
	// Resources is the container's resources, raw; nil when absent.
	Resources json.RawMessage
	// Path is where the container is in the object: spec.template.spec.containers[0].
	Path string
}

// Key is the stable violation key: container:api, initContainer:migrate.
func (c ContainerRef) Key() string { return c.Section.KeyPrefix() + ":" + c.Name }

// FieldPath is the path of one of the container's fields: spec.containers[0].image.
func (c ContainerRef) FieldPath(field string) string { return c.Path + "." + field }

// Describe is `container "api"`, for messages.
func (c ContainerRef) Describe() string { return c.Section.Noun() + " " + Quote(c.Name) }

// PodBearingKinds are the built-in kinds whose objects carry a pod spec by
// definition, as (API group, kind); the Rust SDK's POD_BEARING_KINDS.
var PodBearingKinds = [][2]string{
	{"", "Pod"},
	{"", "PodTemplate"},
	{"", "ReplicationController"},
	{"apps", "Deployment"},
	{"apps", "StatefulSet"},
	{"apps", "DaemonSet"},
	{"apps", "ReplicaSet"},
	{"batch", "Job"},
	{"batch", "CronJob"},
}

// IsPodBearingKind reports whether objects of kind carry a pod spec by definition.
func IsPodBearingKind(kind string) bool {
	for _, k := range PodBearingKinds {
		if k[1] == kind {
			return true
		}
	}
	return false
}

func podSpecPath(kind string) []string {
	switch kind {
	case "Pod":
		return []string{"spec"}
	case "PodTemplate":
		return []string{"template", "spec"}
	case "CronJob":
		return []string{"spec", "jobTemplate", "spec", "template", "spec"}
	default:
		return []string{"spec", "template", "spec"}
	}
}

func isNull(raw json.RawMessage) bool { return isNullValue(raw) }

// ContainersOf lists every container of object (of kind kind), in spec order:
// containers, init containers, ephemeral containers. Objects with no pod spec give
// an empty list; a malformed pod spec of a pod-bearing kind is an error.
func ContainersOf(kind string, object json.RawMessage) ([]ContainerRef, error) {
	fail := func(err error) ([]ContainerRef, error) {
		if IsPodBearingKind(kind) {
			return nil, fmt.Errorf("cannot read the pod spec of the %s: %w", kind, err)
		}
		// A custom kind whose spec.template is something else has no pod spec.
		return nil, nil
	}
	path := podSpecPath(kind)
	spec := []byte(object)
	for _, key := range path {
		if isNullValue(spec) {
			return nil, nil
		}
		next, err := member(spec, key)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", key, err))
		}
		spec = next
	}
	if isNullValue(spec) {
		return nil, nil
	}
	lists := [3][]byte{}
	err := members(spec, func(key, value []byte) error {
		for _, section := range []ContainerSection{Containers, InitContainers, EphemeralContainers} {
			if keyIs(key, section.Field()) {
				lists[section] = value
			}
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	base := strings.Join(path, ".")
	var out []ContainerRef
	for _, section := range []ContainerSection{Containers, InitContainers, EphemeralContainers} {
		raw := lists[section]
		if isNullValue(raw) {
			continue
		}
		i := 0
		err := elements(raw, func(item []byte) error {
			c := ContainerRef{Section: section, Path: base + "." + section.Field() + "[" + strconv.Itoa(i) + "]"}
			i++
			err := members(item, func(key, value []byte) error {
				var err error
				switch {
				case keyIs(key, "name"):
					if !isNullValue(value) {
						c.Name, err = unquote(value)
					}
				case keyIs(key, "image"):
					if !isNullValue(value) {
						var image string
						image, err = unquote(value)
						c.Image = &image
					} else {
						c.Image = nil
					}
				case keyIs(key, "resources"):
					if !isNullValue(value) {
						c.Resources = json.RawMessage(value)
					}
				}
				if err != nil {
					return fmt.Errorf("%s: %s: %w", c.Path, key, err)
				}
				return nil
			})
			if err != nil {
				return err
			}
			out = append(out, c)
			return nil
		})
		if err != nil {
			return fail(fmt.Errorf("%s: %w", section.Field(), err))
		}
	}
	return out, nil
}

// ContainersUnderReview lists the containers a request asks a policy to judge: all
// of them, except on the ephemeralcontainers subresource (kubectl debug), where only
// the ephemeral containers can change and so only they are judged.
func ContainersUnderReview(request *AdmissionRequest) ([]ContainerRef, error) {
	if !request.HasObject() {
		return nil, nil
	}
	list, err := ContainersOf(request.Kind.Kind, request.Object)
	if err != nil || request.SubResource != "ephemeralcontainers" {
		return list, err
	}
	var ephemeral []ContainerRef
	for _, c := range list {
		if c.Section == EphemeralContainers {
			ephemeral = append(ephemeral, c)
		}
	}
	return ephemeral, nil
}
