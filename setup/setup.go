// Package setup is what `vibe setup` does to a host, as an ordered list of
// steps: install incus, delegate the sandbox user's ids, start the daemon,
// make a storage pool that clones, an uplink for the egress gateway, a
// local base image when the configured one is out of reach, the invoking
// user's group and shell completions, and that user's vibe.yaml. Each step
// first checks whether its work is done, so a second run changes nothing,
// and --dry-run runs only the checks.
package setup

import (
	"context"
	"fmt"
)

// State is what a step's check found.
type State struct {
	Done   bool   `json:"done"`
	Detail string `json:"detail"` // what is there, or what the step will do
}

// Step is one part of the set-up.
type Step struct {
	Name  string
	Check func(ctx context.Context) (State, error)
	Do    func(ctx context.Context) error
}

// Report is one step's outcome.
type Report struct {
	Step    string `json:"step"`
	Done    bool   `json:"done"`    // it was already in place
	Changed bool   `json:"changed"` // this run did it
	Detail  string `json:"detail"`
}

// Run checks each step and, unless dryRun, does what is not done, in
// order; it stops at the first failure, whose error names the step.
func Run(ctx context.Context, steps []Step, dryRun bool, progress func(Report)) ([]Report, error) {
	var out []Report
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		st, err := s.Check(ctx)
		if err != nil {
			return out, fmt.Errorf("%s: %w", s.Name, err)
		}
		r := Report{Step: s.Name, Done: st.Done, Detail: st.Detail}
		if !st.Done && !dryRun && s.Do != nil {
			if err := s.Do(ctx); err != nil {
				return out, fmt.Errorf("%s: %w", s.Name, err)
			}
			r.Changed = true
		}
		out = append(out, r)
		if progress != nil {
			progress(r)
		}
	}
	return out, nil
}
