package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// usage is what one measured build cost.
type usage struct {
	Wall        time.Duration
	User, Sys   time.Duration
	PeakTreeRSS int64 // bytes: largest sampled sum over the process tree
	MaxProcRSS  int64 // bytes: largest single process (ru_maxrss, as /usr/bin/time's %M)
	Samples     int
	MaxProcs    int
	ExitCode    int // of the first command that failed, else 0
	Leftovers   int // processes still running after the last command exited
	TimedOut    bool
	Interrupted os.Signal // SIGINT or SIGTERM received: the tree was ended
	// Overhead is the CPU this process used meanwhile, sampling mostly: not
	// part of the builder's CPU, but taken from the same cores.
	Overhead time.Duration
}

// measure runs the commands one after the other, stopping at the first that
// fails, with stdout and stderr to out. Wall time runs from the first start
// to the last exit. CPU time and the largest process come from the rusage of
// every process reaped: the commands, their descendants, and orphans, which
// this process adopts as a child subreaper. A timeout (0: none) kills the tree.
func measure(cmds [][]string, out io.Writer, interval, timeout time.Duration) (usage, error) {
	var u usage
	if len(cmds) == 0 {
		return u, errors.New("no command to run")
	}
	if err := checkProcChildren(); err != nil {
		return u, err
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return u, fmt.Errorf("becoming a child subreaper: %w", err)
	}
	argvs := make([][]string, len(cmds))
	for i, argv := range cmds {
		if len(argv) == 0 {
			return u, fmt.Errorf("command %d is empty", i+1)
		}
		path, err := exec.LookPath(argv[0])
		if err != nil {
			return u, fmt.Errorf("command %q: %w", argv[0], err)
		}
		argvs[i] = append([]string{path}, argv[1:]...)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return u, err
	}
	defer devnull.Close()
	files := []*os.File{devnull, os.Stdout, os.Stderr}
	if f, ok := out.(*os.File); ok {
		files[1], files[2] = f, f
	} else if out != nil {
		r, w, err := os.Pipe()
		if err != nil {
			return u, err
		}
		copied := make(chan struct{})
		go func() { io.Copy(out, r); close(copied) }()
		defer func() { <-copied; r.Close() }()
		defer w.Close()
		files[1], files[2] = w, w
	}

	// Signals and the timeout end the whole tree, then reaping finishes.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var timer <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	quit := make(chan struct{})
	defer close(quit)
	var timedOut atomic.Bool
	var interrupted atomic.Value
	go func() {
		select {
		case <-quit:
		case <-timer:
			timedOut.Store(true)
			killTree(unix.SIGKILL)
		case sig := <-sigs:
			interrupted.Store(sig)
			killTree(unix.SIGTERM)
		}
	}()

	var self0 unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &self0)
	sampler := startSampler(os.Getpid(), interval)
	start := time.Now()
	var ru unix.Rusage
	for i, argv := range argvs {
		p, err := os.StartProcess(argv[0], argv, &os.ProcAttr{Files: files, Env: os.Environ()})
		if err != nil {
			u.Wall = time.Since(start)
			sampler.Stop()
			return u, fmt.Errorf("starting command %d %q: %w", i+1, cmds[i][0], err)
		}
		code, err := reapUntil(p.Pid, &ru)
		p.Release()
		if err != nil {
			sampler.Stop()
			return u, err
		}
		if code != 0 {
			u.ExitCode = code
			break
		}
	}
	u.Wall = time.Since(start)
	u.Leftovers = reapLeftovers(&ru, 30*time.Second)
	u.TimedOut = timedOut.Load()
	u.Interrupted, _ = interrupted.Load().(os.Signal)
	u.PeakTreeRSS, u.Samples, u.MaxProcs = sampler.Stop()
	var self1 unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &self1)
	u.Overhead = time.Duration(self1.Utime.Nano() + self1.Stime.Nano() - self0.Utime.Nano() - self0.Stime.Nano())
	u.User = time.Duration(ru.Utime.Nano())
	u.Sys = time.Duration(ru.Stime.Nano())
	u.MaxProcRSS = ru.Maxrss * 1024
	return u, nil
}

// reapUntil reaps children, adding their rusage to total, until pid exits,
// and returns its exit code (128+N for a signal, as shells do).
func reapUntil(pid int, total *unix.Rusage) (int, error) {
	for {
		var ws unix.WaitStatus
		var ru unix.Rusage
		got, err := unix.Wait4(-1, &ws, 0, &ru)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("waiting for pid %d: %w", pid, err)
		}
		addRusage(total, &ru)
		if got == pid {
			if ws.Signaled() {
				return 128 + int(ws.Signal()), nil
			}
			return ws.ExitStatus(), nil
		}
	}
}

// reapLeftovers waits up to grace for processes that outlived the commands
// (daemons a builder forked), kills the rest, and returns how many there were.
func reapLeftovers(total *unix.Rusage, grace time.Duration) int {
	n := len(descendants(os.Getpid()))
	deadline := time.Now().Add(grace)
	killed := false
	for {
		var ws unix.WaitStatus
		var ru unix.Rusage
		got, err := unix.Wait4(-1, &ws, unix.WNOHANG, &ru)
		switch {
		case errors.Is(err, unix.ECHILD):
			return n
		case err != nil && !errors.Is(err, unix.EINTR):
			return n
		case got > 0:
			addRusage(total, &ru)
			continue
		}
		if !killed && time.Now().After(deadline) {
			killTree(unix.SIGKILL)
			killed = true
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func killTree(sig unix.Signal) {
	for _, p := range descendants(os.Getpid()) {
		unix.Kill(p, sig)
	}
}

func addRusage(total, ru *unix.Rusage) {
	total.Utime = addTimeval(total.Utime, ru.Utime)
	total.Stime = addTimeval(total.Stime, ru.Stime)
	total.Maxrss = max(total.Maxrss, ru.Maxrss)
}

func addTimeval(a, b unix.Timeval) unix.Timeval {
	return unix.NsecToTimeval(a.Nano() + b.Nano())
}

// splitCommands cuts args at each ":::" into commands run one after another.
func splitCommands(args []string) [][]string {
	var cmds [][]string
	cur := []string{}
	for _, a := range args {
		if a == ":::" {
			cmds = append(cmds, cur)
			cur = []string{}
			continue
		}
		cur = append(cur, a)
	}
	return append(cmds, cur)
}

// record is one line of the records file that `benchtool report` reads.
type record struct {
	Labels         map[string]string `json:"labels"`
	Commands       [][]string        `json:"commands"`
	Start          time.Time         `json:"start"`
	WallS          float64           `json:"wall_s"`
	UserS          float64           `json:"user_s"`
	SysS           float64           `json:"sys_s"`
	CPUS           float64           `json:"cpu_s"`
	PeakTreeRSSKB  int64             `json:"peak_tree_rss_kb"`
	MaxProcRSSKB   int64             `json:"max_proc_rss_kb"`
	RSSSamples     int               `json:"rss_samples"`
	RSSIntervalMS  float64           `json:"rss_interval_ms"`
	MaxProcs       int               `json:"max_procs"`
	OverheadCPUS   float64           `json:"measure_overhead_cpu_s"`
	Leftovers      int               `json:"leftover_procs,omitempty"`
	ExitCode       int               `json:"exit_code"`
	OK             bool              `json:"ok"`
	Error          string            `json:"error,omitempty"`
	Log            string            `json:"log,omitempty"`
	Image          *imageInfo        `json:"image,omitempty"`
	ImageLookupErr string            `json:"image_error,omitempty"`
}

type kvFlag []string

func (f *kvFlag) String() string { return strings.Join(*f, ",") }
func (f *kvFlag) Set(v string) error {
	if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
		return fmt.Errorf("%q is not KEY=VALUE", v)
	}
	*f = append(*f, v)
	return nil
}

func (f kvFlag) Map() map[string]string {
	m := map[string]string{}
	for _, kv := range f {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func measureCmd(args []string) error {
	fs := flag.NewFlagSet("measure", flag.ExitOnError)
	recordPath := fs.String("record", "", "append the result as one JSON line to this file")
	logPath := fs.String("log", "", "the commands' output (default: this process's stdout and stderr)")
	ref := fs.String("ref", "", "image the commands push: its digest and layers are recorded")
	interval := fs.Duration("interval", 50*time.Millisecond, "RSS sampling interval")
	timeout := fs.Duration("timeout", 0, "kill the commands after this long (0: never)")
	var labels kvFlag
	fs.Var(&labels, "label", "KEY=VALUE stored with the result (repeatable)")
	fs.Parse(args)
	cmds := splitCommands(fs.Args())

	var out io.Writer = os.Stderr
	if *logPath != "" {
		f, err := os.Create(*logPath)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	rec := record{Labels: labels.Map(), Commands: cmds, Start: time.Now().UTC(), Log: *logPath,
		RSSIntervalMS: float64(*interval) / float64(time.Millisecond)}
	u, err := measure(cmds, out, *interval, *timeout)
	rec.WallS = u.Wall.Seconds()
	rec.UserS, rec.SysS = u.User.Seconds(), u.Sys.Seconds()
	rec.CPUS = rec.UserS + rec.SysS
	rec.PeakTreeRSSKB, rec.MaxProcRSSKB = u.PeakTreeRSS/1024, u.MaxProcRSS/1024
	rec.RSSSamples, rec.MaxProcs, rec.Leftovers = u.Samples, u.MaxProcs, u.Leftovers
	rec.OverheadCPUS = u.Overhead.Seconds()
	rec.ExitCode = u.ExitCode
	rec.OK = err == nil && u.ExitCode == 0 && !u.TimedOut && u.Interrupted == nil
	switch {
	case err != nil:
		rec.Error = err.Error()
	case u.Interrupted != nil:
		rec.Error = fmt.Sprintf("interrupted (%s)", u.Interrupted)
	case u.TimedOut:
		rec.Error = fmt.Sprintf("timed out after %s", *timeout)
	case u.ExitCode != 0:
		rec.Error = fmt.Sprintf("exit code %d", u.ExitCode)
	}
	if rec.OK && *ref != "" {
		info, ierr := lookupImage(*ref)
		if ierr != nil {
			rec.ImageLookupErr = ierr.Error()
		} else {
			rec.Image = info
		}
	}
	if *recordPath != "" {
		if werr := appendJSONLine(*recordPath, rec); werr != nil {
			return werr
		}
	}
	status := "ok"
	if !rec.OK {
		status = "FAILED: " + rec.Error
		if *logPath != "" {
			status += " (log " + *logPath + ")"
		}
	}
	fmt.Printf("wall %.2fs  cpu %.2fs  rss %.0f MB (tree) %.0f MB (largest process)  %s\n",
		rec.WallS, rec.CPUS, float64(rec.PeakTreeRSSKB)/1024, float64(rec.MaxProcRSSKB)/1024, status)
	if sig, ok := u.Interrupted.(syscall.Signal); ok {
		// Die of the signal, so that the calling shell stops too rather
		// than take it for a failed build and go on to the next.
		signal.Reset(sig)
		syscall.Kill(os.Getpid(), sig)
		time.Sleep(time.Second)
	}
	if !rec.OK {
		os.Exit(1)
	}
	return nil
}

func appendJSONLine(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
