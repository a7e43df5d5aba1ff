package verify_test

import (
	"os"
	"strings"
	"testing"

	"github.com/sterigate/sterigate/protocol/verify"
)

// docs/verification.md must name every check, kind and criteria set the
// code knows, so a reader can look up any name a record carries.
func TestDocsNameEveryCheckAndKind(t *testing.T) {
	b, err := os.ReadFile("../../docs/verification.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	names := []string{
		verify.CheckRecordComplete, verify.CheckSampleInterval, verify.CheckTemperatureBand, verify.CheckHoldTime,
		verify.CheckEquilibrationTime, verify.CheckSaturatedSteam, verify.CheckTemperatureSpread, verify.CheckF0, verify.CheckLeakRate,
	}
	for _, kind := range verify.Kinds() {
		c, _ := verify.Standard(kind, 121, 900)
		names = append(names, kind, c.Set)
	}
	for _, n := range names {
		if !strings.Contains(doc, "`"+n+"`") {
			t.Errorf("docs/verification.md does not name `%s`", n)
		}
	}
}
