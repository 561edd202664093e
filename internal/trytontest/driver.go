package trytontest

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// driverSource is the Python program that serves requests (see its
// header for the protocol).
//
//go:embed driver.py
var driverSource string

// bootstrap runs driverSource (argv[1]) under the name trytontest/driver.py,
// registered with linecache so that tracebacks show its lines.
const bootstrap = `import sys, linecache
src = sys.argv.pop(1)
name = 'trytontest/driver.py'
linecache.cache[name] = (len(src), None, src.splitlines(True), name)
exec(compile(src, name, 'exec'), {'__name__': '__main__'})
`

// stderrKeep is how much of the trytond process's stderr is kept for
// error reports.
const stderrKeep = 16 << 10

// driver is a running trytond process serving one database.
type driver struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	stderr *tailWriter
	exited chan struct{}
}

// startDriver starts driver.py for the database name and waits until its
// Pool is loaded.
func startDriver(conf, name string) (*driver, error) {
	cmd := exec.Command(PythonPath, "-c", bootstrap, driverSource, conf, name)
	cmd.Env = pythonEnv()
	d := &driver{cmd: cmd, stderr: &tailWriter{max: stderrKeep}, exited: make(chan struct{})}
	cmd.Stderr = d.stderr
	var err error
	if d.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	d.out = bufio.NewReaderSize(stdout, 1<<20)
	cmd.SysProcAttr = childAttr()
	// Start from a fresh goroutine, as runAdmin does.
	started := make(chan error)
	go func() { started <- cmd.Start() }()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", PythonPath, err)
	}
	go func() {
		cmd.Wait()
		close(d.exited)
	}()
	var ready struct {
		Ready bool `json:"ready"`
	}
	line, err := d.readLine()
	if err == nil {
		err = json.Unmarshal(line, &ready)
	}
	if err != nil || !ready.Ready {
		d.stop()
		return nil, fmt.Errorf("the trytond process did not start: %v %s\nits stderr:\n%s", err, line, d.stderr.String())
	}
	return d, nil
}

// readLine reads one line of the protocol.
func (d *driver) readLine() ([]byte, error) {
	line, err := d.out.ReadBytes('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			<-d.exited
			return nil, fmt.Errorf("the trytond process exited (%v)", d.cmd.ProcessState)
		}
		return nil, err
	}
	return line, nil
}

// request is what driver.py reads.
type request struct {
	User    string         `json:"user,omitempty"`
	Context map[string]any `json:"context,omitempty"`
	Ops     []Op           `json:"ops"`
}

// response is what driver.py answers.
type response struct {
	Results []json.RawMessage `json:"results"`
	Error   *Error            `json:"error"`
}

// do sends one request and reads its answer. A non-nil *Error means
// trytond refused; any other error means the process failed, and it is
// no longer usable.
func (d *driver) do(req request) ([]json.RawMessage, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode the request: %w", err)
	}
	if _, err := d.stdin.Write(append(body, '\n')); err != nil {
		return nil, fmt.Errorf("send the request to the trytond process: %w\nits stderr:\n%s", err, d.stderr.String())
	}
	line, err := d.readLine()
	if err != nil {
		return nil, fmt.Errorf("%w\nits stderr:\n%s", err, d.stderr.String())
	}
	var resp response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("decode the answer %q: %w", line, err)
	}
	if resp.Error != nil {
		if resp.Error.Op >= 0 && resp.Error.Op < len(req.Ops) {
			resp.Error.Request = req.Ops[resp.Error.Op]
		}
		return nil, resp.Error
	}
	if len(resp.Results) != len(req.Ops) {
		return nil, fmt.Errorf("the trytond process answered %d results to %d ops", len(resp.Results), len(req.Ops))
	}
	return resp.Results, nil
}

// stop ends the process: closing its stdin ends its loop; it is killed if
// it does not exit within a few seconds.
func (d *driver) stop() error {
	d.stdin.Close()
	select {
	case <-d.exited:
		return nil
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
		return fmt.Errorf("the trytond process (pid %d) did not exit after its stdin closed; killed it", d.cmd.Process.Pid)
	}
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if over := len(w.buf) - w.max; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
	}
	return len(p), nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.TrimSpace(string(w.buf))
}
