// Package capped is a buffer that keeps the first bytes written to it and
// notes that more came, without ever failing a write: the stream feeding
// it (a command's output, an exec's websocket) must drain to its end.
package capped

import "bytes"

// Buffer keeps the first Limit bytes written; Over says more came.
type Buffer struct {
	bytes.Buffer
	Limit int
	Over  bool
}

// Write keeps what fits and accepts the rest unkept.
func (c *Buffer) Write(p []byte) (int, error) {
	if room := c.Limit - c.Len(); room < len(p) {
		c.Over = true
		if room > 0 {
			c.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return c.Buffer.Write(p)
}
