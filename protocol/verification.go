package protocol

import "time"

// Verdicts of sterigate's own check of a cycle (Verification.Verdict).
const (
	// VerdictPass: the record's data show every criterion met.
	VerdictPass = "pass"
	// VerdictFail: the record's data show a criterion violated.
	VerdictFail = "fail"
	// VerdictIndeterminate: the data cannot show a pass (too sparse in the
	// hold, an incomplete record, unknown criteria, a missing channel).
	// It is never a pass.
	VerdictIndeterminate = "indeterminate"
	// VerdictNotApplicable: the cycle is not judged by its chamber data
	// (a Bowie-Dick test needs its indicator sheet); Reasons says what a
	// person must still check.
	VerdictNotApplicable = "not_applicable"
)

// Results of one check (Check.Result).
const (
	CheckPass          = "pass"
	CheckFail          = "fail"
	CheckIndeterminate = "indeterminate"
	CheckInfo          = "info" // reported, not a release criterion (F0)
)

// Verification is sterigate's parametric judgement of one cycle record,
// made from the record's own data by a pure function (protocol/verify),
// so a receiving system can re-run it and get the same answer.
type Verification struct {
	Verdict string `json:"verdict"`
	// AgreesWithDevice is absent when the device gave no verdict (result
	// unknown) or the verdict is not_applicable (sterigate judged nothing
	// to agree with); false when the device said passed and the verdict is
	// fail or indeterminate, or the device said failed or aborted and the
	// verdict is pass; true otherwise.
	AgreesWithDevice *bool   `json:"agrees_with_device,omitempty"`
	Checks           []Check `json:"checks"`
	// Criteria is everything the judgement depended on, so the record can
	// be judged again later with the same rules.
	Criteria Criteria `json:"criteria"`
	// Reasons says why the verdict is indeterminate or not applicable, or
	// what a person must still check.
	Reasons []string `json:"reasons,omitempty"`
}

// Check is one criterion as judged on one record.
type Check struct {
	Name     string     `json:"name"`
	Result   string     `json:"result"` // pass, fail, indeterminate, info
	OK       bool       `json:"ok"`     // true for pass and info
	Unit     string     `json:"unit,omitempty"`
	LimitMin *float64   `json:"limit_min,omitempty"`
	LimitMax *float64   `json:"limit_max,omitempty"`
	Measured *float64   `json:"measured,omitempty"`
	At       *time.Time `json:"at,omitempty"` // first violation
	Note     string     `json:"note,omitempty"`
}

// Criteria are the rules a cycle was judged by.
type Criteria struct {
	Set     string `json:"set"`     // e.g. "en285-porous-134"
	Version int    `json:"version"` // of the set's rules in protocol/verify
	Kind    string `json:"kind"`    // porous, prion, liquids, bowie_dick, leak_test, gravity
	// Source is where they came from: profile, site, default (EN 285
	// defaults for a program the profile names), inferred (matched to a
	// standard program by name or plateau).
	Source         string  `json:"source"`
	SetPointC      float64 `json:"set_point_c,omitempty"`
	BandK          float64 `json:"band_k,omitempty"`
	MinHoldSeconds float64 `json:"min_hold_s,omitempty"`
	SaturationK    float64 `json:"saturation_k,omitempty"`
	SpreadK        float64 `json:"spread_k,omitempty"`
	// EquilibrationSeconds is the longest allowed equilibration time.
	EquilibrationSeconds float64 `json:"equilibration_s,omitempty"`
	// MaxSampleIntervalSeconds: a hold sampled more sparsely cannot show a
	// pass.
	MaxSampleIntervalSeconds float64 `json:"max_sample_interval_s,omitempty"`
	LeakRateKPaMin           float64 `json:"leak_rate_kpa_min,omitempty"`
	// LeakEqualiseSeconds and LeakMeasureSeconds time the vacuum leak
	// test from the start of its leak_test phase: P1 is read after the
	// equalisation, P2 a measuring period later.
	LeakEqualiseSeconds float64 `json:"leak_equalise_s,omitempty"`
	LeakMeasureSeconds  float64 `json:"leak_measure_s,omitempty"`
	// TimeScale is the record's time_scale the durations were judged with
	// (absent: 1).
	TimeScale float64 `json:"time_scale,omitempty"`
	// Note says how criteria that were not configured were chosen (the
	// program name or the plateau they were inferred from), or why none
	// could be.
	Note string `json:"note,omitempty"`
}
