// A test policy in Go that misbehaves on purpose, chosen by its settings'
// behaviour, so the engine's limits and WASI restrictions are tested on a real Go
// runtime (tests/hostile.rs, tests/go_policies.rs). One module for every behaviour:
// the engine compiles and pre-initializes it once.
//
//	allow    no violation
//	deny     one violation with key, path and summary, and a warning
//	loop     an endless loop (time limit)
//	sleep    time.Sleep for an hour (time limit: sleeping cannot block the host)
//	memory   allocates until it runs out (memory limit)
//	panic    panics (proc_exit with the panic on stderr)
//	exit     os.Exit(3)
//	output   writes 1 MiB to stdout and stderr, then allows (output is bounded)
//	deadlock blocks on a channel nobody writes (the Go runtime's deadlock error)
//	escape   tries files, environment, arguments and the network; denies with what it saw
//	lookup   looks up the ClusterIssuer named "letsencrypt-prod" and reports what came back
//	state    counts calls in a global: a fresh sandbox per request always says 1
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	plate "policy.plate.dev/sdk"
)

// Settings choose the behaviour.
type Settings struct {
	Behaviour string `json:"behaviour"`
}

var behaviours = []string{"allow", "deny", "loop", "sleep", "memory", "panic", "exit", "output", "deadlock", "escape", "lookup", "state"}

// Validate refuses unknown behaviours.
func (s *Settings) Validate() error {
	for _, b := range behaviours {
		if s.Behaviour == b {
			return nil
		}
	}
	return errors.New("behaviour must be one of " + strings.Join(behaviours, ", "))
}

var calls int

var sink [][]byte

func validate(req *plate.Request[Settings]) plate.Verdict {
	calls++
	switch req.Settings.Behaviour {
	case "deny":
		return plate.Deny(plate.NewViolation("label:team", `the object has no "team" label; add one`).
			At("metadata.labels").WithSummary("no team label")).WithWarning("advice from Go")
	case "loop":
		for i := 0; ; i++ {
			calls += i
		}
	case "sleep":
		time.Sleep(time.Hour)
	case "memory":
		for {
			sink = append(sink, make([]byte, 1<<20))
		}
	case "panic":
		var list []int
		_ = list[len(req.Request.Name)+5]
	case "exit":
		os.Exit(3)
	case "output":
		chunk := []byte(strings.Repeat("x", 1023) + "\n")
		for i := 0; i < 1024; i++ {
			os.Stdout.Write(chunk)
			os.Stderr.Write(chunk)
		}
	case "deadlock":
		<-make(chan int)
	case "escape":
		var saw []string
		if entries, err := os.ReadDir("/"); err == nil {
			saw = append(saw, fmt.Sprintf("read / (%d entries)", len(entries)))
		}
		if _, err := os.ReadFile("/etc/passwd"); err == nil {
			saw = append(saw, "read /etc/passwd")
		}
		if err := os.WriteFile("/tmp/plate-escape", []byte("x"), 0o600); err == nil {
			saw = append(saw, "wrote /tmp/plate-escape")
		}
		if env := os.Environ(); len(env) > 0 {
			saw = append(saw, fmt.Sprintf("environment %v", env))
		}
		if len(os.Args) != 1 {
			saw = append(saw, fmt.Sprintf("arguments %v", os.Args))
		}
		if conn, err := net.Dial("tcp", "127.0.0.1:22"); err == nil {
			conn.Close()
			saw = append(saw, "connected to 127.0.0.1:22")
		}
		if len(saw) > 0 {
			return plate.Deny(plate.NewViolation("escape", "escaped the sandbox: "+strings.Join(saw, "; ")))
		}
	case "lookup":
		var issuer struct {
			Spec struct {
				ACME struct {
					Server string `json:"server"`
				} `json:"acme"`
			} `json:"spec"`
		}
		found, err := plate.Lookup("cert-manager.io/v1", "ClusterIssuer", "", "letsencrypt-prod", &issuer)
		if err != nil {
			return plate.Error("lookup failed: " + err.Error())
		}
		return plate.Deny(plate.NewViolation("lookup", fmt.Sprintf("found=%v server=%s", found, issuer.Spec.ACME.Server)))
	case "state":
		return plate.Deny(plate.NewViolation("state", fmt.Sprintf("call %d of this sandbox", calls)))
	}
	return plate.Allow()
}

func init() {
	plate.Register(validate, func() Settings { return Settings{Behaviour: "allow"} })
}

func main() {}
