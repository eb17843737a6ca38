// Command bench-relay is scripts/bench-gateway's yardstick for the egress
// gateway: a bare TCP relay with no policy, no HTTP and no log, moving bytes
// in the kernel (splice(2), through io.Copy between TCP connections) as the
// gateway's tunnels do. What a sandbox downloads through it is the most any
// proxy in the gateway's place reaches on the machine's cores.
//
// Usage: bench-relay LISTEN_ADDRESS:PORT TARGET_ADDRESS:PORT
package main

import (
	"fmt"
	"io"
	"net"
	"os"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: bench-relay LISTEN_ADDRESS:PORT TARGET_ADDRESS:PORT")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-relay:", err)
		os.Exit(1)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-relay:", err)
			os.Exit(1)
		}
		go relay(c.(*net.TCPConn), os.Args[2])
	}
}

func relay(c *net.TCPConn, target string) {
	defer c.Close()
	u, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer u.Close()
	done := make(chan struct{})
	go func() {
		io.Copy(u, c)
		u.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(c, u)
	c.CloseWrite()
	<-done
}
