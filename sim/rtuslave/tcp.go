package rtuslave

import (
	"context"
	"errors"
	"net"
	"sync"
)

// ServeListener serves raw RTU frames on every connection ln accepts, each
// connection its own line, as a serial device server in transparent ("raw")
// mode carries a bus over TCP. It returns when ctx is done or ln is closed
// or fails, after ending every connection's Serve and closing the
// connection. Cancelling ctx closes ln.
func ServeListener(ctx context.Context, ln net.Listener, regs Registers, opts Options) error {
	var conns sync.WaitGroup
	defer conns.Wait()
	// Runs before the wait: whatever ended the accept loop ends the
	// connections too.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		conns.Go(func() {
			defer conn.Close()
			Serve(ctx, conn, regs, opts) // a net.Conn has read deadlines: cancelling ctx stops it
		})
	}
}
