package plate

import (
	"encoding/json"
	"fmt"
)

// Request is the input of one evaluation: the admission request as the API server
// sent it, the namespace's resolved environment and labels, and the policy's
// settings (decoded into S over the defaults given to [Register]).
type Request[S any] struct {
	Request AdmissionRequest `json:"request"`
	// Environment is the resolved environment (prod, stg, ...); nil when the
	// namespace resolves to none.
	Environment *string `json:"environment"`
	// NamespaceLabels are the labels of the object's namespace (a Namespace under
	// review: its own labels).
	NamespaceLabels map[string]string `json:"namespaceLabels"`
	// Settings are the policy's settings from the policy set.
	Settings S `json:"settings"`
}

// EnvironmentName is the environment, or "unknown" when none was resolved.
func (r *Request[S]) EnvironmentName() string {
	if r.Environment == nil {
		return "unknown"
	}
	return *r.Environment
}

// AdmissionRequest is the request of an admission.k8s.io/v1 AdmissionReview. The
// objects stay raw JSON: decode them into the types you need.
type AdmissionRequest struct {
	UID         string           `json:"uid"`
	Kind        GroupVersionKind `json:"kind"`
	SubResource string           `json:"subResource"`
	Name        string           `json:"name"`
	Namespace   string           `json:"namespace"`
	// Operation is CREATE, UPDATE, DELETE or CONNECT.
	Operation string          `json:"operation"`
	Object    json.RawMessage `json:"object"`
	OldObject json.RawMessage `json:"oldObject"`
	DryRun    bool            `json:"dryRun"`
}

// GroupVersionKind names the kind of the object under review.
type GroupVersionKind struct {
	Group   string `json:"group"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
}

// HasObject reports whether the request carries an object (DELETE carries none).
func (r *AdmissionRequest) HasObject() bool {
	return len(r.Object) > 0 && string(r.Object) != "null"
}

// DecodeObject decodes the object under review into out. It returns false, nil
// when there is none.
func (r *AdmissionRequest) DecodeObject(out any) (bool, error) {
	if !r.HasObject() {
		return false, nil
	}
	if err := json.Unmarshal(r.Object, out); err != nil {
		return false, fmt.Errorf("cannot read the %s object: %w", r.Kind.Kind, err)
	}
	return true, nil
}

// ObjectRef is Kind/namespace/name (Kind/name for cluster-scoped objects), for
// messages.
func (r *AdmissionRequest) ObjectRef() string {
	if r.Namespace != "" && r.Kind.Kind != "Namespace" {
		return r.Kind.Kind + "/" + r.Namespace + "/" + r.Name
	}
	return r.Kind.Kind + "/" + r.Name
}
