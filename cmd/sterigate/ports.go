package main

import (
	"context"
	"errors"
	"io"
)

func cmdPorts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("ports: not implemented yet")
}
