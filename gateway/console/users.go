package console

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"golang.org/x/crypto/bcrypt"
)

// Roles of console accounts.
const (
	// RoleOperator records release decisions on loads that have none yet
	// or are in quarantine.
	RoleOperator = "operator"
	// RoleAdmin can also supersede a final decision (released, rejected):
	// the person responsible for the sterilization unit.
	RoleAdmin = "admin"
)

// User is one account of the users file.
type User struct {
	Name string
	Role string
	// Hash is the bcrypt hash of the password; the password itself is
	// never stored.
	Hash string
}

// bcryptCost makes one password check take about a tenth of a second on
// an industrial PC: slow for a guesser (and the console locks an account
// after a few failures), unnoticeable for a person.
const bcryptCost = bcrypt.DefaultCost

// CheckUserName reports why name cannot be a console account name.
func CheckUserName(name string) error {
	if name == "" {
		return errors.New("the user name is empty")
	}
	if len(name) > 64 {
		return fmt.Errorf("user name %q is longer than 64 characters", name)
	}
	for _, r := range name {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '#' {
			return fmt.Errorf("user name %q contains a space, a control character or '#'", name)
		}
	}
	return nil
}

// ReadUsers reads a users file: one account per line, "NAME ROLE HASH",
// blank lines and lines starting with # ignored.
func ReadUsers(path string) ([]User, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("console users file: %w", err)
	}
	var users []User
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("%s:%d: want NAME ROLE HASH, got %d fields", path, n, len(f))
		}
		u := User{Name: f[0], Role: f[1], Hash: f[2]}
		if u.Role != RoleOperator && u.Role != RoleAdmin {
			return nil, fmt.Errorf("%s:%d: role %q of %s is not operator or admin", path, n, u.Role, u.Name)
		}
		if _, err := bcrypt.Cost([]byte(u.Hash)); err != nil {
			return nil, fmt.Errorf("%s:%d: the password hash of %s is not a bcrypt hash: %v", path, n, u.Name, err)
		}
		users = append(users, u)
	}
	return users, sc.Err()
}

// AddUser adds (or, with replace, replaces) an account in the users
// file, creating it with mode 0600. The password is hashed with bcrypt.
func AddUser(path, name, role string, password []byte, replace bool) error {
	if err := CheckUserName(name); err != nil {
		return err
	}
	if role != RoleOperator && role != RoleAdmin {
		return fmt.Errorf("role %q is not operator or admin", role)
	}
	if len(password) < 8 {
		return errors.New("the password is shorter than 8 characters")
	}
	if len(password) > 72 {
		return errors.New("the password is longer than 72 bytes (bcrypt's limit)")
	}
	users, err := ReadUsers(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword(password, bcryptCost)
	if err != nil {
		return fmt.Errorf("hash the password: %w", err)
	}
	found := false
	for i, u := range users {
		if u.Name == name {
			if !replace {
				return fmt.Errorf("user %s already exists in %s (use --replace to change the password or role)", name, path)
			}
			users[i] = User{Name: name, Role: role, Hash: string(hash)}
			found = true
		}
	}
	if !found {
		users = append(users, User{Name: name, Role: role, Hash: string(hash)})
	}
	return writeUsers(path, users)
}

// RemoveUser removes an account from the users file.
func RemoveUser(path, name string) error {
	users, err := ReadUsers(path)
	if err != nil {
		return err
	}
	kept := users[:0]
	for _, u := range users {
		if u.Name != name {
			kept = append(kept, u)
		}
	}
	if len(kept) == len(users) {
		return fmt.Errorf("no user %s in %s", name, path)
	}
	return writeUsers(path, kept)
}

// writeUsers replaces the file atomically (a temporary file renamed over
// it), so a console reading it at a login never sees half a file.
func writeUsers(path string, users []User) error {
	var b bytes.Buffer
	b.WriteString("# sterigate console accounts: NAME ROLE BCRYPT-HASH. Edit with 'sterigate user'.\n")
	for _, u := range users {
		fmt.Fprintf(&b, "%s %s %s\n", u.Name, u.Role, u.Hash)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".users-*")
	if err != nil {
		return fmt.Errorf("console users file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("console users file: %w", err)
	}
	if _, err := tmp.Write(b.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("console users file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("console users file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("console users file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("console users file: %w", err)
	}
	return nil
}
