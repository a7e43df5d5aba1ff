package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLockIsExclusiveAndNamesTheHolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "sub")
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A second lock on the same directory (another open file description,
	// as another process would have) is refused and names our pid.
	_, err = Acquire(dir)
	var inUse *InUseError
	if !errors.As(err, &inUse) || inUse.PID != os.Getpid() || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second Acquire: %v, want InUseError naming pid %d", err, os.Getpid())
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	l2.Release()
}

func TestCheckCreatable(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ok := range []string{dir, filepath.Join(dir, "new", "deeper")} {
		if err := CheckCreatable(ok); err != nil {
			t.Errorf("CheckCreatable(%s): %v", ok, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "new")); !os.IsNotExist(err) {
		t.Error("CheckCreatable created a directory")
	}
	for _, bad := range []string{file, filepath.Join(file, "data")} {
		if err := CheckCreatable(bad); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("CheckCreatable(%s) = %v, want 'not a directory'", bad, err)
		}
	}
}
