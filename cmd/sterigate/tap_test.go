package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/sim/printout"
)

// lockedBuffer is an io.Writer the test can read while cmdTap writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestTapCommandShowsLinesAndRecord(t *testing.T) {
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer slave.Close()
	tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Iflag &^= unix.ICRNL | unix.IXON | unix.INLCR | unix.IGNCR
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ICANON | unix.ISIG | unix.IEXTEN
	if err := unix.IoctlSetTermios(int(slave.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- cmdTap(ctx, []string{"--port", slave.Name(), "--template", "dac-de", "--timezone", "UTC", "--device", "ac7"}, &stdout, &stderr)
	}()
	poll := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; stdout:\n%s\nstderr:\n%s", what, stdout.String(), stderr.String())
			}
		}
	}
	poll("the port to open", func() bool { return strings.Contains(stderr.String(), "reading "+slave.Name()) })
	start := time.Date(2026, 11, 28, 14, 3, 12, 0, time.UTC)
	report := printout.Render(printout.SampleCycle(protocol.ResultFailed, 13, start), printout.Options{Style: printout.StyleGerman})
	if _, err := master.Write(append([]byte("\x1b@"), report...)); err != nil {
		t.Fatal(err)
	}
	poll("the parsed record", func() bool { return strings.Contains(stdout.String(), `"cycle": 13,`) })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("cmdTap returned %v after cancel", err)
	}
	out := stdout.String()
	for _, want := range []string{
		"| <ESC>@Zyklusprotokoll<CR><LF>\n",
		"| Programm: 134 Porous/134<0xF8>C/3min<CR><LF>\n",
		"=== report: ",
		`"result": "failed"`,
		`"device": "ac7"`,
		`"code": 84`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(stderr.String(), "1 records (0 incomplete") {
		t.Errorf("stderr lacks the closing summary:\n%s", stderr.String())
	}
}

func TestTapCommandFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--port is required"},
		{[]string{"--port", "/dev/null", "extra"}, `unexpected argument "extra"`},
		{[]string{"--port", "/dev/null", "--parity", "maybe"}, `parity "maybe"`},
		{[]string{"--port", "/dev/null", "--timezone", "Mars/Olympus"}, "Mars/Olympus"},
	} {
		var stdout, stderr bytes.Buffer
		err := cmdTap(context.Background(), tc.args, &stdout, &stderr)
		var u usageError
		if !errors.As(err, &u) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("args %q: err = %v, want a usage error containing %q", tc.args, err, tc.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if err := cmdTap(context.Background(), []string{"--port", "/dev/null", "--template", "nope.yaml"}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("unknown template: err = %v", err)
	}
}
