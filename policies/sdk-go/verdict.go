package plate

// Violation is one thing wrong with the object (ABI v2).
type Violation struct {
	// Key names where the problem is, the same for the same place across
	// evaluations: container:api, initContainer:migrate, label:environment.
	Key string `json:"key"`
	// Message says what is wrong and how to fix it, for a person.
	Message string `json:"message"`
	// Path is the field, as a path into the object (spec.containers[0].image).
	Path string `json:"path,omitempty"`
	// Summary is a short form for places with little room (a Kubernetes warning
	// is cut at 119 characters with the "[policy] " prefix the host adds).
	Summary string `json:"summary,omitempty"`
}

// NewViolation is a violation with its key and message.
func NewViolation(key, message string) Violation {
	return Violation{Key: key, Message: message}
}

// At returns the violation with the field it is about.
func (v Violation) At(path string) Violation {
	v.Path = path
	return v
}

// WithSummary returns the violation with its short form.
func (v Violation) WithSummary(summary string) Violation {
	v.Summary = summary
	return v
}

// Verdict is a policy's answer. What violations do (deny, warn, audit) is the
// policy set's mode, decided by the host.
type Verdict struct {
	// Allowed is false exactly when Violations is not empty.
	Allowed bool `json:"allowed"`
	// Violations says what is wrong with the object.
	Violations []Violation `json:"violations,omitempty"`
	// Warnings is advice returned whatever the mode, even when allowed.
	Warnings []string `json:"warnings,omitempty"`
	// Error is set when the policy could not evaluate at all: the host applies
	// the policy's failurePolicy and reports it.
	Error string `json:"error,omitempty"`
}

// Allow is a verdict with no violation.
func Allow() Verdict { return Verdict{Allowed: true} }

// Deny is a verdict with one violation.
func Deny(v Violation) Verdict { return FromViolations([]Violation{v}) }

// FromViolations allows when violations is empty and is a violation otherwise.
func FromViolations(violations []Violation) Verdict {
	return Verdict{Allowed: len(violations) == 0, Violations: violations}
}

// Error says the policy could not evaluate (an unreadable object): the host
// applies the entry's failurePolicy.
func Error(message string) Verdict { return Verdict{Allowed: false, Error: message} }

// WithWarning returns the verdict with one more piece of advice.
func (v Verdict) WithWarning(warning string) Verdict {
	v.Warnings = append(v.Warnings, warning)
	return v
}

// SettingsValidation is the answer of plate_validate_settings.
type SettingsValidation struct {
	Valid   bool   `json:"valid"`
	Message string `json:"message,omitempty"`
}
