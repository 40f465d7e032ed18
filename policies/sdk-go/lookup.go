package plate

import (
	"encoding/json"
	"fmt"
)

// Context lookups: read another Kubernetes object from the host's cache (the ABI's
// optional plate.lookup_object import). The host answers only for the kinds the
// policy's entry in the policy set lists under context; a refusal is an error
// with the host's explanation.

type lookupQuery struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
}

type lookupAnswer struct {
	Found  bool            `json:"found"`
	Object json.RawMessage `json:"object"`
	Error  string          `json:"error"`
}

// Lookup finds the object of kind (apiVersion like cert-manager.io/v1) named name
// in namespace (empty for cluster-scoped kinds) and decodes it into out. It returns
// false, nil when the object is not in the cache.
func Lookup(apiVersion, kind, namespace, name string, out any) (bool, error) {
	query, err := json.Marshal(lookupQuery{APIVersion: apiVersion, Kind: kind, Namespace: namespace, Name: name})
	if err != nil {
		return false, err
	}
	raw, err := callHost(query)
	if err != nil {
		return false, err
	}
	var answer lookupAnswer
	if err := json.Unmarshal(raw, &answer); err != nil {
		return false, fmt.Errorf("cannot read the %s %s the host returned: %w", kind, Quote(name), err)
	}
	if answer.Error != "" {
		return false, fmt.Errorf("%s", answer.Error)
	}
	if !answer.Found || isNull(answer.Object) {
		return false, nil
	}
	if err := json.Unmarshal(answer.Object, out); err != nil {
		return false, fmt.Errorf("cannot read the %s %s the host returned: %w", kind, Quote(name), err)
	}
	return true, nil
}
