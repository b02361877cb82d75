package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// userNSEnv marks kiln re-executed in its user namespace by
// EnterUserNamespace.
const userNSEnv = "_KILN_USERNS"

const (
	// userNSWait: wait until the parent has written the ID maps, then
	// re-execute (see initUserNamespace).
	userNSWait = "wait"
	// userNSReady: the ID maps were written before the process started.
	userNSReady = "ready"
)

// userNSSyncFD is where a userNSWait process reads one byte once the
// parent has written its ID maps.
const userNSSyncFD = 3

// inUserNamespace is set by Init in kiln re-executed in its user namespace.
var inUserNamespace bool

// subIDHint says how to give a user subordinate ids.
const subIDHint = "give the user subordinate ids in /etc/subuid and /etc/subgid, and install newuidmap and newgidmap (Debian package uidmap)"

// EnterUserNamespace re-executes kiln, with the same arguments and
// environment, as root of a new user namespace (with its own mount
// namespace), for rootless isolation: the whole build then runs as that
// root, which owns the files it extracts and may create the namespaces and
// mounts of a RUN.
//
// Root of the namespace is the invoking user. When newuidmap and newgidmap
// are installed and /etc/subuid and /etc/subgid give the user subordinate
// ids, those are mapped too, from 1 on. Otherwise root is the only id
// mapped: a chown to any other id fails with EINVAL (callers must ignore
// those errors: files are then owned by root of the image), a RUN cannot
// run as another user, and supplementary groups cannot be set.
//
// In the original process EnterUserNamespace does not return unless the
// re-execution could not be started: it waits for it, forwarding SIGTERM,
// and exits with its status. In the re-executed process (after Init) it
// returns nil at once.
func EnterUserNamespace() error {
	if inUserNamespace {
		return nil
	}
	uid, gid := os.Getuid(), os.Getgid()
	var name string
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		name = u.Username
	}
	plan := planIDMaps(uid, gid, name, "/etc")

	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
	}
	var syncR, syncW *os.File
	if plan.helpers {
		var err error
		if syncR, syncW, err = os.Pipe(); err != nil {
			return err
		}
		defer syncW.Close()
		cmd.ExtraFiles = []*os.File{syncR} // userNSSyncFD
		cmd.Env = append(os.Environ(), userNSEnv+"="+userNSWait)
	} else {
		cmd.Env = append(os.Environ(), userNSEnv+"="+userNSReady)
		cmd.SysProcAttr.UidMappings = plan.uids.sysProcIDMaps()
		cmd.SysProcAttr.GidMappings = plan.gids.sysProcIDMaps()
		// Unprivileged gid maps need setgroups(2) denied.
		cmd.SysProcAttr.GidMappingsEnableSetgroups = false
	}

	// The re-execution takes over. It is in kiln's process group, so the
	// terminal's signals (SIGINT, SIGQUIT, SIGHUP) reach it directly:
	// forwarding them would deliver them twice. SIGTERM, which
	// supervisors send to one process, is forwarded.
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT)
	var err error
	if plan.helpers {
		// The child executes before newuidmap writes its maps, which
		// resets its dumpable flag.
		err = cmd.Start()
	} else {
		// Here this process writes the child's maps before the child
		// executes: until then the child is a copy of this process, and
		// its /proc files belong to root unless it is dumpable.
		err = whileDumpable(cmd.Start)
	}
	if syncR != nil {
		syncR.Close()
	}
	if err != nil {
		signal.Stop(signals)
		return fmt.Errorf("re-executing kiln in a user namespace: %w", err)
	}
	if plan.helpers {
		err := plan.write(cmd.Process.Pid)
		if err == nil {
			_, err = syncW.Write([]byte{1})
		}
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			signal.Stop(signals)
			return fmt.Errorf("starting kiln in its user namespace: %w", err)
		}
		syncW.Close()
	}
	exitWithChild(cmd, signals)
	return nil
}

// exitWithChild waits for cmd, kiln re-executed, forwarding SIGTERM to it
// (it is in kiln's process group: the terminal's signals reach it
// directly), and exits with its status.
func exitWithChild(cmd *exec.Cmd, signals chan os.Signal) {
	go func() {
		for s := range signals {
			if s == unix.SIGTERM {
				cmd.Process.Signal(s)
			}
		}
	}()
	cmd.Wait()
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		os.Exit(128 + int(ws.Signal()))
	}
	os.Exit(ws.ExitStatus())
}

// initUserNamespace is Init's part for kiln re-executed by
// EnterUserNamespace.
func initUserNamespace() {
	switch os.Getenv(userNSEnv) {
	case userNSWait:
		sync := os.NewFile(userNSSyncFD, "sync")
		var b [1]byte
		if n, _ := sync.Read(b[:]); n != 1 {
			os.Exit(1) // the parent failed, and says why
		}
		sync.Close()
		// The maps were written after this process started, so it has no
		// capabilities in the namespace: executing as its root grants them.
		os.Setenv(userNSEnv, userNSReady)
		err := syscall.Exec("/proc/self/exe", os.Args, os.Environ())
		fmt.Fprintf(os.Stderr, "kiln: re-executing in the user namespace: %v\n", err)
		os.Exit(1)
	case userNSReady:
		os.Unsetenv(userNSEnv)
		inUserNamespace = true
	}
}

// idRange maps Size ids from NS on in a user namespace to Host on in its
// parent namespace: a line of /proc/PID/uid_map.
type idRange struct {
	NS, Host, Size uint32
}

type idRanges []idRange

func (rs idRanges) maps(id uint32) bool {
	for _, r := range rs {
		if uint64(r.NS) <= uint64(id) && uint64(id) < uint64(r.NS)+uint64(r.Size) {
			return true
		}
	}
	return false
}

func (rs idRanges) String() string {
	var parts []string
	for _, r := range rs {
		if r.Size == 1 {
			parts = append(parts, fmt.Sprintf("%d→%d", r.NS, r.Host))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d→%d-%d", r.NS, uint64(r.NS)+uint64(r.Size)-1, r.Host, uint64(r.Host)+uint64(r.Size)-1))
		}
	}
	return strings.Join(parts, ", ")
}

func (rs idRanges) sysProcIDMaps() []syscall.SysProcIDMap {
	var maps []syscall.SysProcIDMap
	for _, r := range rs {
		maps = append(maps, syscall.SysProcIDMap{ContainerID: int(r.NS), HostID: int(r.Host), Size: int(r.Size)})
	}
	return maps
}

// args returns the ranges as arguments of newuidmap and newgidmap.
func (rs idRanges) args() []string {
	var args []string
	for _, r := range rs {
		args = append(args, strconv.FormatUint(uint64(r.NS), 10), strconv.FormatUint(uint64(r.Host), 10), strconv.FormatUint(uint64(r.Size), 10))
	}
	return args
}

// idMapPlan is how EnterUserNamespace maps ids.
type idMapPlan struct {
	uids, gids idRanges
	// helpers says the maps are written with newuidmap and newgidmap.
	helpers bool
}

// planIDMaps maps root to uid and gid and, when the setuid helpers exist
// and the subordinate id files in etcDir give the user (name or uid) ids,
// those from 1 on. Otherwise the namespace gets the single mapping an
// unprivileged process may write itself.
func planIDMaps(uid, gid int, name, etcDir string) idMapPlan {
	plan := idMapPlan{
		uids: idRanges{{NS: 0, Host: uint32(uid), Size: 1}},
		gids: idRanges{{NS: 0, Host: uint32(gid), Size: 1}},
	}
	if _, err := exec.LookPath("newuidmap"); err != nil {
		return plan
	}
	if _, err := exec.LookPath("newgidmap"); err != nil {
		return plan
	}
	subUIDs := readSubIDs(etcDir+"/subuid", name, uid)
	subGIDs := readSubIDs(etcDir+"/subgid", name, gid)
	if len(subUIDs) == 0 || len(subGIDs) == 0 {
		return plan
	}
	plan.uids = append(plan.uids, stack(subUIDs)...)
	plan.gids = append(plan.gids, stack(subGIDs)...)
	plan.helpers = true
	return plan
}

// stack maps subordinate ranges (NS unset) one after the other from id 1.
func stack(sub idRanges) idRanges {
	next := uint32(1)
	var out idRanges
	for _, r := range sub {
		out = append(out, idRange{NS: next, Host: r.Host, Size: r.Size})
		next += r.Size
	}
	return out
}

func (p *idMapPlan) write(pid int) error {
	for _, tool := range []struct {
		name   string
		ranges idRanges
	}{{"newuidmap", p.uids}, {"newgidmap", p.gids}} {
		args := append([]string{strconv.Itoa(pid)}, tool.ranges.args()...)
		if out, err := exec.Command(tool.name, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %w: %s", tool.name, strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// readSubIDs returns the ranges of the subordinate id file path that belong
// to the user, by name or id; an unreadable file gives none.
func readSubIDs(path, name string, id int) idRanges {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	return parseSubIDs(f, name, id)
}

// parseSubIDs parses /etc/subuid and /etc/subgid ("user:start:count"
// lines, user being a name or a numeric id) for the ranges of the user.
// Malformed lines are skipped, as shadow's tools do.
func parseSubIDs(r io.Reader, name string, id int) idRanges {
	var out idRanges
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(fields) != 3 {
			continue
		}
		if owner := fields[0]; owner == "" || (owner != name && owner != strconv.Itoa(id)) {
			continue
		}
		start, err1 := strconv.ParseUint(fields[1], 10, 32)
		count, err2 := strconv.ParseUint(fields[2], 10, 32)
		if err1 != nil || err2 != nil || count == 0 {
			continue
		}
		out = append(out, idRange{Host: uint32(start), Size: uint32(count)})
	}
	return out
}

// idMaps are the id maps of a process's user namespace.
type idMaps struct {
	uids, gids idRanges
	// setgroupsDenied is set where setgroups(2) is denied, as in a
	// namespace whose gid map an unprivileged process wrote.
	setgroupsDenied bool
}

// readIDMaps reads the maps of the process whose /proc directory is dir.
func readIDMaps(dir string) (*idMaps, error) {
	var m idMaps
	var err error
	if m.uids, err = readIDMap(dir + "/uid_map"); err != nil {
		return nil, err
	}
	if m.gids, err = readIDMap(dir + "/gid_map"); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(dir + "/setgroups")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	m.setgroupsDenied = strings.TrimSpace(string(b)) == "deny"
	return &m, nil
}

func readIDMap(path string) (idRanges, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rs idRanges
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("%s: malformed line %q", path, line)
		}
		var n [3]uint64
		for i := range n {
			if n[i], err = strconv.ParseUint(f[i], 10, 32); err != nil {
				return nil, fmt.Errorf("%s: malformed line %q", path, line)
			}
		}
		rs = append(rs, idRange{NS: uint32(n[0]), Host: uint32(n[1]), Size: uint32(n[2])})
	}
	return rs, nil
}

func (m *idMaps) unmapped(kind string, id uint32) error {
	ranges := m.uids
	if kind == "gid" {
		ranges = m.gids
	}
	return fmt.Errorf("%s %d is not mapped in kiln's user namespace, which maps %s: %s", kind, id, ranges, subIDHint)
}

// describeUserNamespace describes kiln's user namespace for the log.
func describeUserNamespace() string {
	m, err := readIDMaps("/proc/self")
	if err != nil || len(m.uids) == 0 {
		return "running in a user namespace"
	}
	if len(m.uids) == 1 && m.uids[0].Size == 1 {
		return fmt.Sprintf("running in a user namespace where only root is mapped (to uid %d): "+
			"RUN as another user and chown to other ids fail; %s", m.uids[0].Host, subIDHint)
	}
	return fmt.Sprintf("running in a user namespace mapping uids %s, gids %s", m.uids, m.gids)
}
