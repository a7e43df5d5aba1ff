package rtuslave

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// These tests drive mbpoll (a libmodbus master, Debian package mbpoll, which
// scripts/test installs) against the slave on a real pty: an independent
// implementation of the master side checks framing, CRC and timing.

func runMbpoll(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("mbpoll"); err != nil {
		t.Fatalf("mbpoll is not installed (scripts/test installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "mbpoll", args...).CombinedOutput()
	return string(out), err
}

var (
	mbpollSlaveLine = regexp.MustCompile(`^-- Polling slave (\d+)`)
	mbpollValueLine = regexp.MustCompile(`^\[(\d+)\]:\s+(-?\d+)\s*$`)
)

// parseMbpoll returns slave → reference → value from mbpoll's output.
func parseMbpoll(out string) map[int]map[int]int64 {
	values := map[int]map[int]int64{}
	slave := -1
	for _, line := range strings.Split(out, "\n") {
		if m := mbpollSlaveLine.FindStringSubmatch(line); m != nil {
			slave, _ = strconv.Atoi(m[1])
			values[slave] = map[int]int64{}
			continue
		}
		if m := mbpollValueLine.FindStringSubmatch(line); m != nil && slave >= 0 {
			ref, _ := strconv.Atoi(m[1])
			v, _ := strconv.ParseInt(m[2], 10, 64)
			values[slave][ref] = v
		}
	}
	return values
}

func TestMbpollReadsRegisters(t *testing.T) {
	bank := newFakeBank(1, 2, 7)
	port := startSlave(t, bank, Options{})

	t.Run("holding registers, one-based references, 8N1", func(t *testing.T) {
		out, err := runMbpoll(t, "-m", "rtu", "-b", "19200", "-P", "none", "-a", "1", "-r", "1", "-c", "10", "-t", "4", "-1", "-o", "1", port.Path())
		if err != nil {
			t.Fatalf("mbpoll: %v\n%s", err, out)
		}
		got := parseMbpoll(out)[1]
		for i := range 10 {
			// mbpoll reference i+1 is wire address i.
			if want := int64(fakeValue(1, 3, uint16(i))); got[i+1] != want {
				t.Fatalf("reference %d = %d, want %d\n%s", i+1, got[i+1], want, out)
			}
		}
	})

	t.Run("input registers of several units, zero-based, 8E1", func(t *testing.T) {
		out, err := runMbpoll(t, "-m", "rtu", "-b", "19200", "-P", "even", "-a", "1,2,7", "-0", "-r", "4", "-c", "20", "-t", "3", "-1", "-o", "1", port.Path())
		if err != nil {
			t.Fatalf("mbpoll: %v\n%s", err, out)
		}
		all := parseMbpoll(out)
		for _, unit := range []int{1, 2, 7} {
			for address := 4; address < 24; address++ {
				if want := int64(fakeValue(byte(unit), 4, uint16(address))); all[unit][address] != want {
					t.Fatalf("unit %d address %d = %d, want %d\n%s", unit, address, all[unit][address], want, out)
				}
			}
		}
	})

	t.Run("32-bit values, high word first", func(t *testing.T) {
		out, err := runMbpoll(t, "-m", "rtu", "-a", "2", "-0", "-r", "5", "-c", "2", "-t", "4:int", "-B", "-1", "-o", "1", port.Path())
		if err != nil {
			t.Fatalf("mbpoll: %v\n%s", err, out)
		}
		got := parseMbpoll(out)[2]
		for _, address := range []int{5, 7} {
			want := int64(fakeValue(2, 3, uint16(address)))<<16 | int64(fakeValue(2, 3, uint16(address+1)))
			if got[address] != want {
				t.Fatalf("u32 at %d = %d, want %d\n%s", address, got[address], want, out)
			}
		}
	})
}

func TestMbpollSeesSilenceAndExceptions(t *testing.T) {
	bank := newFakeBank(1)
	port := startSlave(t, bank, Options{})

	out, err := runMbpoll(t, "-m", "rtu", "-a", "5", "-r", "1", "-c", "2", "-t", "4", "-1", "-o", "0.2", port.Path())
	if err == nil || !strings.Contains(out, "timed out") {
		t.Fatalf("absent unit 5: err %v, want a timeout\n%s", err, out)
	}
	out, err = runMbpoll(t, "-m", "rtu", "-a", "1", "-0", "-r", fmt.Sprint(fakeBankSize), "-c", "1", "-t", "4", "-1", "-o", "1", port.Path())
	if err == nil || !strings.Contains(out, "Illegal data address") {
		t.Fatalf("address %d: err %v, want exception 2\n%s", fakeBankSize, err, out)
	}
	out, err = runMbpoll(t, "-m", "rtu", "-a", "1", "-r", "1", "-t", "4", "-1", "-o", "1", port.Path(), "42")
	if err == nil || !strings.Contains(out, "Illegal function") {
		t.Fatalf("write: err %v, want exception 1\n%s", err, out)
	}
	if n := bank.refusedWrites(1, 6); n != 1 {
		t.Fatalf("refused writes counted: %d, want 1", n)
	}
	// Unit 1 is still served after all that.
	out, err = runMbpoll(t, "-m", "rtu", "-a", "1", "-0", "-r", "0", "-c", "1", "-t", "4", "-1", "-o", "1", port.Path())
	if err != nil || parseMbpoll(out)[1][0] != int64(fakeValue(1, 3, 0)) {
		t.Fatalf("read after errors: %v\n%s", err, out)
	}
}

func TestMbpollSeesCorruptCRC(t *testing.T) {
	port := startSlave(t, newFakeBank(1), Options{Faults: func(Request) Fault { return Fault{CorruptCRC: true} }})
	out, err := runMbpoll(t, "-m", "rtu", "-a", "1", "-r", "1", "-c", "2", "-t", "4", "-1", "-o", "0.3", port.Path())
	if err == nil || !strings.Contains(strings.ToLower(out), "crc") {
		t.Fatalf("corrupt CRC: err %v, want a CRC error\n%s", err, out)
	}
}
