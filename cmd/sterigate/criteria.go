package main

// sterigate's own check of every cycle record (docs/verification.md): the
// criteria each device's programs get, from the profile and the site's
// config, and the one sink wrapper that judges every record before the
// journal sees it.

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/gateway/config"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/verify"
)

// programCriteria are the configured criteria of one device's programs,
// by program name. A program not in it is judged by criteria inferred
// from its name or plateau (verify.Judge), or is indeterminate.
type programCriteria map[string]protocol.Criteria

// resolveCriteria lays the site's criteria of the device at index i of
// the config over those of its profile (nil for a printer: its programs
// are known by their printed names), key by key. Every problem is a
// config error on the line of the key it is about: a program the profile
// does not have, an override that makes an incomplete or invalid set.
func resolveCriteria(cfg *config.Config, i int, dev config.Device, prof *profile.Profile) (programCriteria, []*config.Error) {
	out := programCriteria{}
	if prof != nil {
		for name := range prof.Criteria {
			if c, ok := prof.ProgramCriteria(name); ok {
				out[name] = c
			}
		}
	}
	keys := make([]string, 0, len(dev.Criteria))
	for k := range dev.Criteria {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var problems []*config.Error
	given := map[string]string{} // program name -> the key that gave it
	for _, key := range keys {
		path := fmt.Sprintf("devices[%d].criteria.%s", i, key)
		name, err := criteriaProgramName(prof, key)
		if err != "" {
			problems = append(problems, cfg.Errorf(path, "%s", err))
			continue
		}
		if other, dup := given[name]; dup {
			problems = append(problems, cfg.Errorf(path, "program %q already has criteria here (criteria.%s)", name, other))
			continue
		}
		given[name] = key
		if dev.Criteria[key].Check() != nil {
			continue // the config's own check reported it
		}
		var base verify.Params
		if prof != nil {
			base = prof.Criteria[name]
		}
		c, cerr := base.Over(dev.Criteria[key]).Criteria(verify.SourceSite)
		if cerr != nil {
			from := "with no criteria in the profile"
			if base.Kind != "" {
				from = "over the profile's criteria"
			}
			for _, pe := range verify.ParamErrors(cerr) {
				problems = append(problems, cfg.Errorf(path+"."+pe.Key, "%s (the site's criteria %s)", pe.Msg, from))
			}
			continue
		}
		out[name] = c
	}
	return out, problems
}

// criteriaProgramName finds the program a site criteria key means: a
// program name of the profile, or one of its program codes. A printer's
// programs are whatever it prints: any key is a name.
func criteriaProgramName(prof *profile.Profile, key string) (name, problem string) {
	if prof == nil {
		return key, ""
	}
	for _, n := range prof.Programs {
		if n == key {
			return n, ""
		}
	}
	if code, err := strconv.Atoi(key); err == nil {
		if n, ok := prof.Programs[code]; ok {
			return n, ""
		}
		return "", fmt.Sprintf("program code %d is not in profile %s's programs", code, prof.Name)
	}
	known := make([]string, 0, len(prof.Programs))
	for _, n := range prof.Programs {
		known = append(known, n)
	}
	sort.Strings(known)
	return "", fmt.Sprintf("profile %s has no program called %q (its programs: %s)", prof.Name, key, strings.Join(known, ", "))
}

// verifyingSink is the one place a cycle record gets sterigate's
// verification: every record any driver delivers (Modbus or printer, a
// revision, a record re-delivered from a driver's saved state) is judged
// by its program's criteria before the store journals it. The check is
// deterministic, so a re-delivered record is judged exactly as before.
type verifyingSink struct {
	sinkStore
	criteria map[string]programCriteria // by device id
}

func (s *verifyingSink) Cycle(ctx context.Context, rec protocol.CycleRecord) error {
	rec.Verification = s.judge(rec)
	return s.sinkStore.Cycle(ctx, rec)
}

func (s *verifyingSink) judge(rec protocol.CycleRecord) *protocol.Verification {
	var c *protocol.Criteria
	if pc, ok := s.criteria[rec.Device][rec.Program]; ok {
		c = &pc
	}
	v := verify.Judge(rec, c)
	return &v
}

// describeCriteria is one line saying what a program is judged by, for
// check and run --once.
func describeCriteria(c protocol.Criteria) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s v%d (%s): ", c.Set, c.Version, c.Source)
	if c.Kind == verify.KindLeakTest {
		fmt.Fprintf(&b, "leak rate ≤ %v kPa/min from %v s to %v s later", c.LeakRateKPaMin, c.LeakEqualiseSeconds, c.LeakMeasureSeconds)
	} else {
		fmt.Fprintf(&b, "%v to %v °C, hold ≥ %v s, saturation ≤ %v K, spread ≤ %v K, equilibration ≤ %v s",
			c.SetPointC, c.SetPointC+c.BandK, c.MinHoldSeconds, c.SaturationK, c.SpreadK, c.EquilibrationSeconds)
	}
	fmt.Fprintf(&b, ", samples ≤ %v s apart", c.MaxSampleIntervalSeconds)
	return b.String()
}

// criteriaLines says, program by program, what each of a device's
// programs is judged by: its configured criteria, or what its name alone
// lets sterigate infer, or that it has none.
func criteriaLines(prof *profile.Profile, pc programCriteria) []string {
	var names []string
	seen := map[string]bool{}
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	if prof != nil {
		codes := make([]int, 0, len(prof.Programs))
		for code := range prof.Programs {
			codes = append(codes, code)
		}
		sort.Ints(codes)
		for _, code := range codes {
			add(prof.Programs[code])
		}
	}
	site := make([]string, 0, len(pc))
	for n := range pc {
		site = append(site, n)
	}
	sort.Strings(site)
	for _, n := range site {
		add(n)
	}
	var lines []string
	for _, n := range names {
		if c, ok := pc[n]; ok {
			lines = append(lines, fmt.Sprintf("%s: %s", n, describeCriteria(c)))
			continue
		}
		switch c, ok, decided, why := verify.InferFromName(n, nil); {
		case ok:
			lines = append(lines, fmt.Sprintf("%s: no criteria configured; %s", n, describeCriteria(c)))
		case decided:
			lines = append(lines, fmt.Sprintf("%s: no criteria: every record indeterminate: %s", n, why))
		default:
			lines = append(lines, fmt.Sprintf("%s: no criteria configured, the name names no standard program: inferred from each cycle's plateau (134 or 121 °C), or indeterminate", n))
		}
	}
	if prof == nil {
		lines = append(lines, "other programs, as printed: inferred from each program's name or plateau, or indeterminate")
	}
	return lines
}
