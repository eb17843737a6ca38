package gateway

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
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

// MaxLog is the size at which a log moves to NAME.1 and starts again.
const MaxLog = 8 << 20

// Logger appends entries as JSON lines, one file per client address
// (DIR/ADDRESS.jsonl), so that a sandbox flooding the gateway with requests
// rotates away only its own log, never another's.
type Logger struct {
	Dir   string
	mu    sync.Mutex
	files map[string]*logFile
}

type logFile struct {
	f    *os.File
	size int64
}

// LogName is the log file of the client at addr, in the logger's folder.
func LogName(addr string) string { return addr + ".jsonl" }

// Write appends e; a log that cannot be written is reported on stderr
// (the service's journal) and never stops the proxy.
func (l *Logger) Write(e Entry) {
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	b = append(b, '\n')
	name := LogName(e.Client)
	if _, err := netip.ParseAddr(e.Client); err != nil {
		name = LogName("unknown")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.files == nil {
		l.files = map[string]*logFile{}
	}
	lf := l.files[name]
	if lf == nil || lf.size+int64(len(b)) > MaxLog {
		if lf, err = l.open(name, lf); err != nil {
			fmt.Fprintln(os.Stderr, "vibe gateway: log:", err)
			return
		}
	}
	n, err := lf.f.Write(b)
	lf.size += int64(n)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vibe gateway: log:", err)
	}
}

func (l *Logger) open(name string, old *logFile) (*logFile, error) {
	path := filepath.Join(l.Dir, name)
	if old != nil {
		old.f.Close()
		delete(l.files, name)
		_ = os.Rename(path, path+".1")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	lf := &logFile{f: f, size: st.Size()}
	l.files[name] = lf
	return lf, nil
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
