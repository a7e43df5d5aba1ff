package ptyport

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.bug.st/serial"
	"golang.org/x/sys/unix"
)

// awkwardBytes are the bytes a cooked tty would mangle: CR (→ LF with ICRNL),
// XON/XOFF (flow control with IXON), a byte with the high bit set (ISTRIP),
// plus LF, NUL, DEL, ^C (ISIG) and ^D (VEOF).
var awkwardBytes = []byte{0x0D, 0x11, 0x13, 0xB0, 0x0A, 0x00, 0x7F, 0x03, 0x04, 0xFF, 0x0D, 0x0A}

func allByteValues() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// readExactly reads n bytes from r, giving up at the deadline. It treats
// go.bug.st/serial's (0, nil) timeout as "try again".
func readExactly(t *testing.T, r io.Reader, n int, deadline time.Time) []byte {
	t.Helper()
	got := make([]byte, 0, n)
	buf := make([]byte, 512)
	for len(got) < n {
		if time.Now().After(deadline) {
			t.Fatalf("read %d of %d bytes before the deadline: % x", len(got), n, got)
		}
		k, err := r.Read(buf[:min(len(buf), n-len(got))])
		got = append(got, buf[:k]...)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read after %d of %d bytes: %v", len(got), n, err)
		}
	}
	return got
}

func openPort(t *testing.T, link string) *Port {
	t.Helper()
	p, err := Open(link)
	if err != nil {
		t.Fatalf("Open(%q): %v", link, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func openSerialClient(t *testing.T, path string, parity serial.Parity) serial.Port {
	t.Helper()
	client, err := serial.Open(path, &serial.Mode{BaudRate: 19200, DataBits: 8, Parity: parity, StopBits: serial.OneStopBit})
	if err != nil {
		t.Fatalf("serial.Open(%s): %v", path, err)
	}
	t.Cleanup(func() { client.Close() })
	if err := client.SetReadTimeout(100 * time.Millisecond); err != nil {
		t.Fatalf("SetReadTimeout: %v", err)
	}
	return client
}

func TestBytesPassUnchangedBothWaysWithSerialClient(t *testing.T) {
	for _, tc := range []struct {
		name   string
		parity serial.Parity
	}{{"8N1", serial.NoParity}, {"8E1", serial.EvenParity}} {
		t.Run(tc.name, func(t *testing.T) {
			link := filepath.Join(t.TempDir(), "ttySIM0")
			p := openPort(t, link)
			if p.Path() != link {
				t.Fatalf("Path() = %q, want the link %q", p.Path(), link)
			}
			client := openSerialClient(t, p.Path(), tc.parity)
			payload := append(append([]byte{}, awkwardBytes...), allByteValues()...)
			deadline := time.Now().Add(5 * time.Second)

			if _, err := p.Write(payload); err != nil {
				t.Fatalf("master write: %v", err)
			}
			if got := readExactly(t, client, len(payload), deadline); !bytes.Equal(got, payload) {
				t.Fatalf("client received\n% x\nwant\n% x", got, payload)
			}

			if _, err := client.Write(payload); err != nil {
				t.Fatalf("client write: %v", err)
			}
			if got := readExactly(t, p, len(payload), deadline); !bytes.Equal(got, payload) {
				t.Fatalf("master received\n% x\nwant\n% x", got, payload)
			}
		})
	}
}

// A client that does not set termios itself (plain open) must still get a raw
// line: that is Open's job, not the client's.
func TestRawModeWithoutClientTermios(t *testing.T) {
	p := openPort(t, "")
	if p.Path() != p.DevicePath() || filepath.Dir(p.Path()) != "/dev/pts" {
		t.Fatalf("Path() = %q, DevicePath() = %q; want the same /dev/pts node", p.Path(), p.DevicePath())
	}
	client, err := os.OpenFile(p.Path(), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open %s: %v", p.Path(), err)
	}
	defer client.Close()
	deadline := time.Now().Add(5 * time.Second)
	client.SetReadDeadline(deadline)
	p.SetReadDeadline(deadline)

	if _, err := p.Write(awkwardBytes); err != nil {
		t.Fatalf("master write: %v", err)
	}
	if got := readExactly(t, client, len(awkwardBytes), deadline); !bytes.Equal(got, awkwardBytes) {
		t.Fatalf("client received % x, want % x", got, awkwardBytes)
	}
	// With echo on, the master would now read awkwardBytes back before the marker.
	marker := []byte{0xA5, 0x0D}
	if _, err := client.Write(marker); err != nil {
		t.Fatalf("client write: %v", err)
	}
	if got := readExactly(t, p, len(marker), deadline); !bytes.Equal(got, marker) {
		t.Fatalf("master received % x, want only the client's % x (echo or translation?)", got, marker)
	}
}

func TestMasterSurvivesClientReopen(t *testing.T) {
	p := openPort(t, filepath.Join(t.TempDir(), "ttySIM1"))
	deadline := time.Now().Add(5 * time.Second)
	for round := range 3 {
		client := openSerialClient(t, p.Path(), serial.NoParity)
		msg := []byte{byte(round), 0x0D, 0x13}
		if _, err := client.Write(msg); err != nil {
			t.Fatalf("round %d: client write: %v", round, err)
		}
		if got := readExactly(t, p, len(msg), deadline); !bytes.Equal(got, msg) {
			t.Fatalf("round %d: master received % x, want % x", round, got, msg)
		}
		if err := client.Close(); err != nil {
			t.Fatalf("round %d: client close: %v", round, err)
		}
		// No client now: the master must wait (deadline), not fail with EIO.
		p.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if n, err := p.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("round %d: master read with no client = %d, %v; want a deadline error", round, n, err)
		}
		p.SetReadDeadline(time.Time{})
	}
}

func TestCloseInterruptsReadAndRemovesLink(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttySIM2")
	p, err := Open(link)
	if err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(link); err != nil || target != p.DevicePath() {
		t.Fatalf("link %s -> %q (%v), want %q", link, target, err, p.DevicePath())
	}
	readDone := make(chan error, 1)
	go func() {
		_, err := p.Read(make([]byte, 8))
		readDone <- err
	}()
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-readDone:
		if !errors.Is(err, os.ErrClosed) {
			t.Fatalf("pending Read returned %v, want os.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not interrupt a pending Read")
	}
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("link still there after Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestStaleLinkReplacedButRegularFileRefused(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale")
	if err := os.Symlink("/dev/pts/nonexistent", stale); err != nil {
		t.Fatal(err)
	}
	p := openPort(t, stale)
	if target, _ := os.Readlink(stale); target != p.DevicePath() {
		t.Fatalf("stale link points to %q, want %q", target, p.DevicePath())
	}

	regular := filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if q, err := Open(regular); err == nil {
		q.Close()
		t.Fatal("Open over a regular file succeeded; want a refusal")
	}
	if data, _ := os.ReadFile(regular); string(data) != "keep me" {
		t.Fatalf("regular file was changed: %q", data)
	}
}
