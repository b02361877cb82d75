package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// procReader reads small /proc files with one buffer and no allocation per
// file: the sampler runs on the cores it measures, so it keeps its share small.
type procReader struct {
	buf []byte
}

func newProcReader() *procReader { return &procReader{buf: make([]byte, 64<<10)} }

func (r *procReader) read(path string) []byte {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil // exited meanwhile
	}
	defer unix.Close(fd)
	n, err := unix.Read(fd, r.buf)
	if err != nil || n <= 0 {
		return nil
	}
	return r.buf[:n]
}

// tasks lists a process's threads.
func (r *procReader) tasks(pid int) []string {
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/task", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	var names []string
	for {
		n, err := unix.Getdents(fd, r.buf)
		if err != nil || n <= 0 {
			return names
		}
		_, _, names = unix.ParseDirent(r.buf[:n], -1, names)
	}
}

// descendants lists every process below pid, read from
// /proc/PID/task/TID/children (one file per thread: a multi-threaded builder
// forks from any of its threads). The caller is a child subreaper, so
// orphans of the tree are re-parented to it and stay in the walk.
func (r *procReader) descendants(pid int) []int {
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		dir := "/proc/" + strconv.Itoa(p) + "/task/"
		for _, t := range r.tasks(p) {
			for _, f := range bytes.Fields(r.read(dir + t + "/children")) {
				if c, err := strconv.Atoi(string(f)); err == nil {
					out = append(out, c)
					queue = append(queue, c)
				}
			}
		}
	}
	return out
}

func descendants(pid int) []int { return newProcReader().descendants(pid) }

// checkProcChildren fails when the kernel has no /proc/PID/task/TID/children
// (CONFIG_PROC_CHILDREN): the process tree could not be walked.
func checkProcChildren() error {
	pid := os.Getpid()
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children"); err != nil {
		return fmt.Errorf("cannot walk process trees: %w (the kernel needs CONFIG_PROC_CHILDREN)", err)
	}
	return nil
}

// rss is a process's resident set in bytes (/proc/PID/statm, second field),
// 0 when it has exited. Pages shared between processes of the tree (a shared
// libc, say) count once per process, as in ps and top.
func (r *procReader) rss(pid int) int64 {
	f := bytes.Fields(r.read("/proc/" + strconv.Itoa(pid) + "/statm"))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// treeSampler records the largest sum of the RSS of every process below
// root, sampled at a fixed interval. A peak shorter than the interval can be
// missed; the largest single process is exact (rusage) and reported beside it.
type treeSampler struct {
	root     int
	interval time.Duration
	proc     *procReader
	stop     chan struct{}
	done     sync.WaitGroup

	mu       sync.Mutex
	peak     int64
	samples  int
	maxProcs int
}

func startSampler(root int, interval time.Duration) *treeSampler {
	s := &treeSampler{root: root, interval: interval, proc: newProcReader(), stop: make(chan struct{})}
	s.done.Add(1)
	go s.loop()
	return s
}

func (s *treeSampler) loop() {
	defer s.done.Done()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		s.sample()
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

func (s *treeSampler) sample() {
	procs := s.proc.descendants(s.root)
	var sum int64
	for _, p := range procs {
		sum += s.proc.rss(p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples++
	s.peak = max(s.peak, sum)
	s.maxProcs = max(s.maxProcs, len(procs))
}

// Stop ends sampling and returns the peak in bytes, the number of samples and
// the largest number of processes seen at once.
func (s *treeSampler) Stop() (peak int64, samples, maxProcs int) {
	close(s.stop)
	s.done.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak, s.samples, s.maxProcs
}
