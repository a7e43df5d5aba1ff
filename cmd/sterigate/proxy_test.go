package main

import (
	"net"
	"sync"
	"testing"
)

// proxyMode is what a faultProxy does with traffic.
type proxyMode int

const (
	proxyForward   proxyMode = iota // pass bytes both ways
	proxyRefuse                     // close every connection at once: a cable pulled, RST
	proxyBlackhole                  // accept, read and drop everything: a half-open link, no RST
)

// faultProxy is a loopback TCP proxy that can cut or blackhole the network
// between two processes, the faults a hospital network actually has.
type faultProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  proxyMode
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startProxy(t testing.TB, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

func (p *faultProxy) setMode(m proxyMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Connections die with a pulled cable (refuse). A blackholed
	// connection swallowed bytes that real TCP would retransmit, so when
	// the blackhole ends it is reset rather than resumed mid-stream.
	if m == proxyRefuse || p.mode == proxyBlackhole {
		for c := range p.conns {
			c.Close()
		}
	}
	p.mode = m
}

func (p *faultProxy) currentMode() proxyMode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

func (p *faultProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *faultProxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
	c.Close()
}

func (p *faultProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		switch p.currentMode() {
		case proxyRefuse:
			c.Close()
			continue
		}
		if !p.track(c) {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *faultProxy) serve(client net.Conn) {
	defer p.wg.Done()
	defer p.untrack(client)
	var upstream net.Conn
	if p.currentMode() == proxyForward {
		var err error
		if upstream, err = net.Dial("tcp", p.target); err != nil {
			return
		}
		if !p.track(upstream) {
			return
		}
		defer p.untrack(upstream)
	}
	var wg sync.WaitGroup
	pump := func(dst, src net.Conn) {
		defer wg.Done()
		buf := make([]byte, 32*1024)
		for {
			n, err := src.Read(buf)
			if n > 0 && dst != nil && p.currentMode() == proxyForward {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		// One side ended: end both, as a real connection would.
		src.Close()
		if dst != nil {
			dst.Close()
		}
	}
	wg.Add(1)
	go pump(upstream, client)
	if upstream != nil {
		wg.Add(1)
		go pump(client, upstream)
	}
	wg.Wait()
}

func (p *faultProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}
