package workdir

import (
	"context"
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Lock takes an exclusive lock on the file p (created if missing), held
// until the returned function runs. The lock is flock(2)'s, which belongs
// to the open file: it excludes other processes on the same volume and
// other callers in this one alike, and dies with the process. Waiting ends
// with ctx; onWait, if set, is called once when the lock is busy.
func Lock(ctx context.Context, p string, onWait func()) (unlock func() error, err error) {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	delay := 10 * time.Millisecond
	for waited := false; ; waited = true {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f.Close, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		if !waited && onWait != nil {
			onWait()
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}

// TryLock takes the lock of Lock only if it is free.
func TryLock(p string) (unlock func() error, ok bool, err error) {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, false, err
	}
	ok, err = tryFlock(f)
	if !ok {
		f.Close()
		return nil, false, err
	}
	return f.Close, true, nil
}

func tryFlock(f *os.File) (bool, error) {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}
