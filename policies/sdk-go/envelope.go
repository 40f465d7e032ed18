package plate

import (
	"encoding/json"
	"fmt"
)

// decodeInput reads the input document of plate_validate into req with the SDK's
// JSON reader; only the settings go through encoding/json (into the policy's type).
func decodeInput[S any](input []byte, req *Request[S]) error {
	return members(input, func(key, value []byte) error {
		switch {
		case keyIs(key, "settings"):
			if !isNullValue(value) {
				if err := json.Unmarshal(value, &req.Settings); err != nil {
					return fmt.Errorf("settings: %w", err)
				}
			}
		case keyIs(key, "environment"):
			if !isNullValue(value) {
				env, err := unquote(value)
				if err != nil {
					return fmt.Errorf("environment: %w", err)
				}
				req.Environment = &env
			}
		case keyIs(key, "namespaceLabels"):
			if isNullValue(value) {
				return nil
			}
			req.NamespaceLabels = map[string]string{}
			return members(value, func(k, v []byte) error {
				name, err := unquote(append(append([]byte{'"'}, k...), '"'))
				if err != nil {
					return fmt.Errorf("namespaceLabels: %w", err)
				}
				label, err := unquote(v)
				if err != nil {
					return fmt.Errorf("namespaceLabels[%s]: %w", name, err)
				}
				req.NamespaceLabels[name] = label
				return nil
			})
		case keyIs(key, "request"):
			if err := decodeRequest(value, &req.Request); err != nil {
				return fmt.Errorf("request: %w", err)
			}
		}
		return nil
	})
}

func decodeRequest(raw []byte, r *AdmissionRequest) error {
	text := func(value []byte, into *string) error {
		if isNullValue(value) {
			return nil
		}
		s, err := unquote(value)
		*into = s
		return err
	}
	return members(raw, func(key, value []byte) error {
		var err error
		switch {
		case keyIs(key, "uid"):
			err = text(value, &r.UID)
		case keyIs(key, "subResource"):
			err = text(value, &r.SubResource)
		case keyIs(key, "name"):
			err = text(value, &r.Name)
		case keyIs(key, "namespace"):
			err = text(value, &r.Namespace)
		case keyIs(key, "operation"):
			err = text(value, &r.Operation)
		case keyIs(key, "object"):
			r.Object = json.RawMessage(value)
		case keyIs(key, "oldObject"):
			r.OldObject = json.RawMessage(value)
		case keyIs(key, "dryRun"):
			r.DryRun = string(value) == "true"
		case keyIs(key, "kind"):
			err = members(value, func(k, v []byte) error {
				switch {
				case keyIs(k, "group"):
					return text(v, &r.Kind.Group)
				case keyIs(k, "version"):
					return text(v, &r.Kind.Version)
				case keyIs(k, "kind"):
					return text(v, &r.Kind.Kind)
				}
				return nil
			})
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	})
}
