package snapshot

import (
	"time"

	"golang.org/x/sys/unix"
)

// settleTimestamps returns once the clock that stamps file changes has moved
// past walked, the time a walk ended. Files get their mtime and ctime from a
// coarse clock (one tick is 1-10 ms), so a file recorded by the walk and
// changed again within the same tick would keep identical metadata and the
// change would go unseen. After this wait, every later change gets a ctime
// newer than anything the walk recorded. It costs at most one tick.
func settleTimestamps(walked time.Time) {
	for {
		var now unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_REALTIME_COARSE, &now); err != nil {
			time.Sleep(10 * time.Millisecond) // the longest tick
			return
		}
		if time.Unix(now.Unix()).After(walked) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
