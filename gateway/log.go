package gateway

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Entry is one line of the egress log: a request the gateway allowed or
// denied.
type Entry struct {
	Time    time.Time `json:"time"`
	Sandbox string    `json:"sandbox,omitempty"`
	Client  string    `json:"client"`
	Method  string    `json:"method"`
	Host    string    `json:"host"`
	Port    string    `json:"port,omitempty"`
	Allowed bool      `json:"allowed"`
	Reason  string    `json:"reason,omitempty"`
}

// MaxLog is the size at which the log moves to PATH.1 and starts again.
const MaxLog = 8 << 20

// Logger appends entries as JSON lines.
type Logger struct {
	Path string
	mu   sync.Mutex
	f    *os.File
	size int64
}

// Write appends e; a log that cannot be written is reported on stderr
// (the service's journal) and never stops the proxy.
func (l *Logger) Write(e Entry) {
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil || l.size+int64(len(b)) > MaxLog {
		if err := l.open(l.f != nil); err != nil {
			fmt.Fprintln(os.Stderr, "vibe gateway: log:", err)
			return
		}
	}
	n, err := l.f.Write(b)
	l.size += int64(n)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vibe gateway: log:", err)
	}
}

func (l *Logger) open(rotate bool) error {
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	if rotate {
		_ = os.Rename(l.Path, l.Path+".1")
	}
	f, err := os.OpenFile(l.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.size = f, st.Size()
	return nil
}

// MaxLine bounds one log line when it is read back.
const MaxLine = 64 << 10

// ReadEntries decodes JSON lines from r, calling fn for each; a line that
// is not an entry is skipped (the log is the gateway's, but it is read on
// the host and must not make the reader fail or allocate without bound).
func ReadEntries(r io.Reader, fn func(Entry) error) error {
	br := bufio.NewReaderSize(r, MaxLine)
	long := false // inside a line longer than MaxLine: skipped
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			long = true
			continue
		case long:
			long = false
		case len(line) > 0:
			var e Entry
			if json.Unmarshal(line, &e) == nil {
				if ferr := fn(e); ferr != nil {
					return ferr
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}
