package main

import (
	"bytes"
	"context"
	encbinary "encoding/binary"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata/")

// mbapDevice is a Modbus TCP device for probe tests: reply builds the PDU
// answered to each request's PDU (n counts requests from 0).
func mbapDevice(t *testing.T, reply func(n int, pdu []byte) []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	n := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				for {
					hdr := make([]byte, 7)
					if _, err := io.ReadFull(c, hdr); err != nil {
						return
					}
					pdu := make([]byte, int(encbinary.BigEndian.Uint16(hdr[4:]))-1)
					if _, err := io.ReadFull(c, pdu); err != nil {
						return
					}
					mu.Lock()
					resp := reply(n, pdu)
					n++
					mu.Unlock()
					encbinary.BigEndian.PutUint16(hdr[4:], uint16(1+len(resp)))
					if _, err := c.Write(append(hdr, resp...)); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// registersReply answers a read of holding registers from regs.
func registersReply(regs []uint16) func(int, []byte) []byte {
	return func(_ int, pdu []byte) []byte {
		addr, qty := encbinary.BigEndian.Uint16(pdu[1:]), encbinary.BigEndian.Uint16(pdu[3:])
		if int(addr)+int(qty) > len(regs) {
			return []byte{pdu[0] | 0x80, 2}
		}
		out := []byte{pdu[0], byte(2 * qty)}
		for _, v := range regs[addr : addr+qty] {
			out = encbinary.BigEndian.AppendUint16(out, v)
		}
		return out
	}
}

var (
	addrPattern  = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	replyPattern = regexp.MustCompile(`reply in [^)]*`)
)

// golden compares got, with addresses and timings masked, with
// testdata/name (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	got = replyPattern.ReplaceAllString(addrPattern.ReplaceAllString(got, "ADDRESS"), "reply in TIME")
	path := "testdata/" + name
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update after checking):\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

// --type and --order decode raw registers without a profile, with the
// profile decoder: 134.5 and 200.0 as f32 with the words swapped (CDAB).
func TestProbeDecodesRawRegistersAsAType(t *testing.T) {
	addr := mbapDevice(t, registersReply([]uint16{0x8000, 0x4306, 0x0000, 0x4348, 0xFFFF}))
	var out, errOut bytes.Buffer
	if err := cmdProbe(context.Background(), []string{"--tcp", addr, "--count", "5", "--type", "f32", "--order", "cdab"}, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	golden(t, "probe-type-f32-cdab.golden", out.String())

	out.Reset()
	if err := cmdProbe(context.Background(), []string{"--tcp", addr, "--count", "2", "--type", "i16", "--address", "3"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	golden(t, "probe-type-i16.golden", out.String())

	for _, args := range [][]string{
		{"--tcp", addr, "--type", "f33"},
		{"--tcp", addr, "--type", "f32", "--order", "ACBD"},
		{"--tcp", addr, "--type", "u16", "--function", "1"},
		{"--tcp", addr, "--type", "u16", "--profile", "sim-autoclave"},
	} {
		var u usageError
		if err := cmdProbe(context.Background(), args, &out, &errOut); !errors.As(err, &u) {
			t.Errorf("probe %v: %v, want a usage error", args, err)
		}
	}
}

// A reply whose function code is not the request's is reported as such,
// never as "exception 48".
func TestProbeReportsAWrongFunctionCode(t *testing.T) {
	addr := mbapDevice(t, func(int, []byte) []byte { return []byte{0x30, 0x30, 0x01} })
	var out bytes.Buffer
	err := cmdProbe(context.Background(), []string{"--tcp", addr, "--count", "4"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "reply has function code 48, expected 3") || strings.Contains(err.Error(), "exception") {
		t.Fatalf("err = %v", err)
	}
}

// --watch polls until interrupted, carrying on through a failed poll (a
// device powered off behind its gateway, then back).
func TestProbeWatchPollsUntilInterrupted(t *testing.T) {
	regs := registersReply([]uint16{7, 8, 9})
	addr := mbapDevice(t, func(n int, pdu []byte) []byte {
		if n == 1 {
			return []byte{pdu[0] | 0x80, 11}
		}
		return regs(n, pdu)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelAfter{want: "-- poll 4 at", cancel: cancel}
	done := make(chan error, 1)
	go func() {
		done <- cmdProbe(ctx, []string{"--tcp", addr, "--count", "3", "--watch", "--interval", "20ms"}, out, io.Discard)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("probe --watch: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("probe --watch did not stop when interrupted")
	}
	got := out.String()
	for _, want := range []string{"-- polling unit 1 every 20ms; Ctrl-C to stop", "-- poll 1 at", "-- poll 2 at",
		"exception 11 (gateway target device failed to respond)", "-- poll 3 at", "0x0009"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "0x0009"); n < 2 {
		t.Errorf("%d good polls shown:\n%s", n, got)
	}
}

// cancelAfter is a writer that cancels once what was written contains want.
type cancelAfter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	want   string
	cancel func()
}

func (w *cancelAfter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.cancel()
	}
	return n, err
}

func (w *cancelAfter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
