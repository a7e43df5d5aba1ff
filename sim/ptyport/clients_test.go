package ptyport

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The tests below run helper clients as separate processes (this test binary,
// re-executed), because what they check is what a client leaves behind when
// its process dies.
const helperEnv = "PTYPORT_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Getenv("PTYPORT_TEST_DEVICE")))
	}
	os.Exit(m.Run())
}

// Exit codes of the "open" helper.
const (
	helperOpened = 0
	helperBusy   = 16
	helperFailed = 1
)

// runHelper is a client process. It drops CAP_SYS_ADMIN first, because root
// ignores TIOCEXCL and the tests must see what an unprivileged gateway sees.
// Capabilities are per thread, hence the locked thread and raw syscalls.
func runHelper(mode, device string) int {
	runtime.LockOSThread()
	if err := dropSysAdmin(); err != nil {
		fmt.Fprintln(os.Stderr, "drop CAP_SYS_ADMIN:", err)
		return helperFailed
	}
	fd, err := unix.Open(device, unix.O_RDWR|unix.O_NOCTTY, 0)
	if errors.Is(err, unix.EBUSY) {
		return helperBusy
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return helperFailed
	}
	switch mode {
	case "open":
		return helperOpened
	case "exclusive-then-wait":
		// Like go.bug.st/serial.Open: take exclusive access, then say so and
		// stay until killed (stdin never delivers anything).
		if err := unix.IoctlSetInt(fd, unix.TIOCEXCL, 0); err != nil {
			fmt.Fprintln(os.Stderr, "TIOCEXCL:", err)
			return helperFailed
		}
		unix.Write(fd, []byte("R"))
		os.Stdin.Read(make([]byte, 1))
		return helperFailed
	}
	return helperFailed
}

func dropSysAdmin() error {
	header := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&header, &data[0]); err != nil {
		return err
	}
	data[0].Effective &^= 1 << unix.CAP_SYS_ADMIN
	data[0].Permitted &^= 1 << unix.CAP_SYS_ADMIN
	return unix.Capset(&header, &data[0])
}

func helperCommand(t *testing.T, mode, device string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "PTYPORT_TEST_DEVICE="+device)
	cmd.Stderr = os.Stderr
	return cmd
}

func TestClientKilledHoldingExclusiveAccessDoesNotLockOthersOut(t *testing.T) {
	p := openPort(t, "")
	holder := helperCommand(t, "exclusive-then-wait", p.DevicePath())
	stdin, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	p.SetReadDeadline(deadline)
	if got := readExactly(t, p, 1, deadline); string(got) != "R" {
		t.Fatalf("holder said %q", got)
	}
	// While it lives, another unprivileged client must be refused: the check
	// below would prove nothing if exclusivity were not in force.
	if code := exitCode(t, helperCommand(t, "open", p.DevicePath())); code != helperBusy {
		t.Fatalf("open while the holder lives: exit %d, want %d (EBUSY)", code, helperBusy)
	}
	if err := holder.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	holder.Wait()
	for {
		code := exitCode(t, helperCommand(t, "open", p.DevicePath()))
		if code == helperOpened {
			break
		}
		if code != helperBusy || time.Now().After(deadline) {
			t.Fatalf("open after the holder was killed: exit %d, want %d", code, helperOpened)
		}
	}
	if n := p.Clients(); n != 0 {
		t.Fatalf("Clients() = %d after all helpers ended, want 0", n)
	}
}

func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		t.Fatalf("run helper: %v", err)
	}
	return 0
}

func TestWriteWithoutClientIsDiscarded(t *testing.T) {
	p := openPort(t, "")
	if n := p.Clients(); n != 0 {
		t.Fatalf("Clients() = %d before any client, want 0", n)
	}
	// More than the kernel buffers: without discarding, this Write would block
	// and hit the deadline.
	p.SetWriteDeadline(time.Now().Add(5 * time.Second))
	lost := bytes.Repeat([]byte("lost "), 20000)
	if n, err := p.Write(lost); n != len(lost) || err != nil {
		t.Fatalf("Write with no client = %d, %v; want %d, nil", n, err, len(lost))
	}
	client, err := os.OpenFile(p.Path(), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if n := p.Clients(); n != 1 {
		t.Fatalf("Clients() = %d with one client, want 1", n)
	}
	if _, err := p.Write([]byte("kept")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	client.SetReadDeadline(deadline)
	if got := readExactly(t, client, 4, deadline); string(got) != "kept" {
		t.Fatalf("client read %q, want only \"kept\"", got)
	}
}

func TestUnreadBytesDoNotReachTheNextClient(t *testing.T) {
	p := openPort(t, "")
	first, err := os.OpenFile(p.Path(), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write([]byte("stale reply")); err != nil {
		t.Fatal(err)
	}
	first.Close()
	second, err := os.OpenFile(p.Path(), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if _, err := p.Write([]byte("fresh")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	second.SetReadDeadline(deadline)
	if got := readExactly(t, second, 5, deadline); string(got) != "fresh" {
		t.Fatalf("second client read %q, want \"fresh\"", got)
	}
}

func TestUntrackedPortStillWorks(t *testing.T) {
	tracked := openPort(t, "")
	if err := tracked.TrackingErr(); err != nil {
		t.Fatalf("tracking is off on this machine: %v", err)
	}
	p, err := open("", false)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Clients() != -1 || p.TrackingErr() == nil {
		t.Fatalf("untracked port: Clients() = %d, TrackingErr() = %v; want -1 and a reason", p.Clients(), p.TrackingErr())
	}
	// Untracked, a Write before any client is kept by the kernel, not discarded.
	if _, err := p.Write(awkwardBytes); err != nil {
		t.Fatal(err)
	}
	client, err := os.OpenFile(p.Path(), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	deadline := time.Now().Add(5 * time.Second)
	client.SetReadDeadline(deadline)
	if got := readExactly(t, client, len(awkwardBytes), deadline); !bytes.Equal(got, awkwardBytes) {
		t.Fatalf("client read % x, want % x", got, awkwardBytes)
	}
	if _, err := client.Write([]byte{0x0D}); err != nil {
		t.Fatal(err)
	}
	if got := readExactly(t, p, 1, deadline); got[0] != 0x0D {
		t.Fatalf("master read % x", got)
	}
}
