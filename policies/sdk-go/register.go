package plate

import (
	"bytes"
	"encoding/json"
)

// SettingsValidator is implemented by settings types with checks JSON cannot
// express. The error text is shown to the operator as written: name the setting.
type SettingsValidator interface {
	Validate() error
}

type policy interface {
	validate(input []byte) Verdict
	validateSettings(input []byte) SettingsValidation
}

type registration[S any] struct {
	fn       func(*Request[S]) Verdict
	defaults func() S
}

var registered policy

// Register makes fn the policy. defaults gives the settings an entry without
// settings gets; the policy set's settings are decoded over them (fields that are
// absent keep their default, unknown fields are an error). When *S implements
// [SettingsValidator], its Validate runs at load. Call it from an init function:
// init runs once when the host pre-initializes the module.
func Register[S any](fn func(*Request[S]) Verdict, defaults func() S) {
	registered = registration[S]{fn: fn, defaults: defaults}
	// encoding/json builds its decoder for S by reflection on first use: do it
	// now, at pre-initialization, so that no request pays for it.
	s := defaults()
	_ = json.Unmarshal([]byte("{}"), &s)
}

func (r registration[S]) settings(input []byte) (S, error) {
	s := r.defaults()
	trimmed := bytes.TrimSpace(input)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return s, nil
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	err := dec.Decode(&s)
	return s, err
}

func (r registration[S]) validateSettings(input []byte) SettingsValidation {
	s, err := r.settings(input)
	if err != nil {
		return SettingsValidation{Message: "settings do not parse: " + err.Error()}
	}
	if v, ok := any(&s).(SettingsValidator); ok {
		if err := v.Validate(); err != nil {
			return SettingsValidation{Message: err.Error()}
		}
	}
	return SettingsValidation{Valid: true}
}

func (r registration[S]) validate(input []byte) Verdict {
	req := Request[S]{Settings: r.defaults()}
	if err := decodeInput(input, &req); err != nil {
		return Error("policy could not read its input: " + err.Error())
	}
	return r.fn(&req)
}

const notRegistered = "the module registered no policy: call plate.Register in an init function"

func validateSettingsJSON(input []byte) []byte {
	if registered == nil {
		return SettingsValidation{Message: notRegistered}.encode()
	}
	return registered.validateSettings(input).encode()
}

func validateJSON(input []byte) []byte {
	if registered == nil {
		return Error(notRegistered).encode()
	}
	return registered.validate(input).encode()
}
