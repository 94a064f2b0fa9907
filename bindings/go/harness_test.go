// SPDX-License-Identifier: MIT

package discshm

// A live discd for the tests: the Go counterpart of tests/harness (a unique
// registry name, a temporary directory, stopped by pid, shared memory and
// directory removed). Paths come from $DISC_BUILD_DIR (set by ctest).

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

type discd struct {
	name, dir, sock string
	cmd             *exec.Cmd
}

func buildDir() string {
	if d := os.Getenv("DISC_BUILD_DIR"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "build")
}

// setRegistryDir gives the test process a private registry directory
// ($DISCSHM_DIR: TMPDIR/discshm-test-XXXXXX/reg, nobody else may write it or
// its parent), inherited by discd, discctl and read by libdiscshm in this
// process. Returns a function that removes it.
func setRegistryDir() (func(), error) {
	if os.Getenv("DISCSHM_DIR") != "" {
		return func() {}, nil
	}
	top, err := os.MkdirTemp("", "discshm-test-")
	if err != nil {
		return nil, err
	}
	reg := filepath.Join(top, "reg")
	if err := os.Chmod(top, 0o755); err != nil {
		return nil, err
	}
	if err := os.Mkdir(reg, 0o755); err != nil {
		return nil, err
	}
	os.Setenv("DISCSHM_DIR", reg)
	return func() { os.RemoveAll(top) }, nil
}

func startDiscd(tag string) (*discd, error) {
	dir, err := os.MkdirTemp("", "discd-gotest-")
	if err != nil {
		return nil, err
	}
	d := &discd{name: fmt.Sprintf("go%d_%s", os.Getpid(), tag), dir: dir,
		sock: filepath.Join(dir, "discd.sock")}
	log, err := os.Create(filepath.Join(dir, "discd.log"))
	if err != nil {
		d.cleanup()
		return nil, err
	}
	defer log.Close()
	// Private state and static-definition dirs: never the system's.
	d.cmd = exec.Command(filepath.Join(buildDir(), "daemon", "discd"), "--name", d.name,
		"--socket", d.sock, "--log-level", "debug",
		"--state-dir", filepath.Join(dir, "state"),
		"--services-dir", filepath.Join(dir, "services.d"))
	d.cmd.Stdout, d.cmd.Stderr = log, log
	// A killed test must not leave discd behind.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		d.cleanup()
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", d.sock); err == nil {
			c.Close()
			return d, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.cleanup()
	return nil, fmt.Errorf("discd did not start: %s", d.logText())
}

func (d *discd) logText() string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "discd.log"))
	return string(b)
}

// stop sends SIGTERM and returns discd's exit code.
func (d *discd) stop() int {
	if d.cmd == nil || d.cmd.Process == nil {
		return -1
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-done
	}
	code := d.cmd.ProcessState.ExitCode()
	d.cmd = nil
	return code
}

func (d *discd) cleanup() {
	if d.cmd != nil && d.cmd.Process != nil {
		d.cmd.Process.Kill()
		d.cmd.Wait()
		d.cmd = nil
	}
	for _, s := range []string{"", ".readers", ".lock"} {
		os.Remove("/dev/shm/" + d.name + s)
		if dir := os.Getenv("DISCSHM_DIR"); dir != "" {
			os.Remove(filepath.Join(dir, d.name+s))
		}
	}
	os.RemoveAll(d.dir)
}

func (d *discd) ctl(t testing.TB, args ...string) string {
	t.Helper()
	argv := append([]string{"--name", d.name, "--socket", d.sock}, args...)
	out, err := exec.Command(filepath.Join(buildDir(), "tools", "discctl"), argv...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("discctl %s: %v %s", strings.Join(args, " "), err, msg)
	}
	return strings.TrimSpace(string(out))
}

func (d *discd) register(t testing.TB, service, address string, args ...string) string {
	return d.ctl(t, append([]string{"register", "--service", service, "--address", address},
		args...)...)
}

func (d *discd) ctlJSON(t testing.TB, v interface{}, args ...string) {
	t.Helper()
	if err := json.Unmarshal([]byte(d.ctl(t, append(args, "--json")...)), v); err != nil {
		t.Fatal(err)
	}
}
