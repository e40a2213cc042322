package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// aiProcesses are simulated AIs running as `genpipe aisim` processes of
// their own, for a lab that must not count their CPU work (the slide
// renders) as genpipe's: on a small machine they would otherwise take the
// cores genpipe's own latency is measured on, as AIs on machines of their
// own never do.
type aiProcesses struct {
	check, generate string // base URLs
	cmds            []*exec.Cmd
}

// startAIProcesses starts the Checking and Generative AI simulators with
// capacity and latencies, under nice at niceness (0 to 19) when nice is
// installed, and waits until both answer.
func startAIProcesses(ctx context.Context, niceness int, capacity, checkLatency, generateLatency string, stderr io.Writer) (*aiProcesses, error) {
	if niceness < 0 || niceness > 19 {
		return nil, fmt.Errorf("AI processes: niceness %d: want 0 to 19", niceness)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("AI processes: %w", err)
	}
	nice, err := exec.LookPath("nice")
	if err != nil {
		fmt.Fprintln(stderr, "nice is not installed: the simulated AIs run at the lab's own CPU priority")
	}
	ais := &aiProcesses{}
	for _, ai := range []struct {
		model, latency string
		url            *string
	}{{"check", checkLatency, &ais.check}, {"generate", generateLatency, &ais.generate}} {
		addr, err := freeLoopbackAddr()
		if err != nil {
			ais.stop()
			return nil, err
		}
		args := []string{exe, "aisim", "-model", ai.model, "-addr", addr, "-latency", ai.latency, "-capacity", capacity,
			"-abort", "-log-level", "error"}
		if nice != "" {
			args = append([]string{nice, "-n", strconv.Itoa(niceness)}, args...)
		}
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Stdout, cmd.Stderr = stderr, stderr
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		if err := cmd.Start(); err != nil {
			ais.stop()
			return nil, fmt.Errorf("AI processes: start the %s AI: %w", ai.model, err)
		}
		ais.cmds = append(ais.cmds, cmd)
		*ai.url = "http://" + addr
	}
	for _, u := range []string{ais.check, ais.generate} {
		if err := waitHealthy(ctx, u); err != nil {
			ais.stop()
			return nil, fmt.Errorf("AI processes: %w", err)
		}
	}
	return ais, nil
}

// stop ends the AI processes and waits for them.
func (a *aiProcesses) stop() {
	for _, cmd := range a.cmds {
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, cmd := range a.cmds {
		_ = cmd.Wait()
	}
	a.cmds = nil
}

// freeLoopbackAddr returns a loopback address whose port was free a moment
// ago.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
