package userdb

import (
	"errors"
	"fmt"
	"strings"

	"github.com/kiln-build/kiln/pkg/fsview"
)

// Errors wrapped when a name has no entry; test with errors.Is.
var (
	ErrNoSuchUser  = errors.New("no matching entries in passwd file")
	ErrNoSuchGroup = errors.New("no matching entries in group file")
)

// User is the identity a process runs with.
type User struct {
	// Name is the passwd name, empty for a uid that has no entry.
	Name     string
	UID, GID int
	// Home is the home directory from /etc/passwd, "/" when unknown.
	Home string
	// Groups are the supplementary gids: the groups of /etc/group that list
	// the user as a member. Set only when the spec names no group.
	Groups []int
}

// LookupUser resolves a USER value ("name", "uid", "name:group", "uid:gid",
// ...) for running a process, the way Docker's runtime does: a user found in
// /etc/passwd brings its primary gid, home and supplementary groups; a
// numeric uid without an entry runs with gid 0 and home "/"; an explicit
// group replaces the primary gid and disables supplementary groups. Numeric
// ids need no database, so they work on scratch images, and so does the name
// root (uid 0, gid 0) when the database lacks it. An empty user part is uid 0
// (no USER at all is root) and an empty group part is no group.
func LookupUser(fsys fsview.FS, spec string) (*User, error) {
	userPart, groupPart, _ := strings.Cut(spec, ":")
	if userPart == "" {
		userPart = "0"
	}
	hasGroup := groupPart != ""
	u := &User{Home: "/"}
	uid, numeric, err := numericID(userPart, "uid")
	if err != nil {
		return nil, err
	}
	users, err := readPasswd(fsys)
	if err != nil {
		return nil, err
	}
	var found *passwdEntry
	for i := range users {
		if (numeric && users[i].uid == uid) || (!numeric && users[i].name == userPart) {
			found = &users[i]
			break
		}
	}
	switch {
	case found != nil:
		u.Name, u.UID, u.GID = found.name, found.uid, found.gid
		if found.home != "" {
			u.Home = found.home
		}
	case numeric:
		u.UID = uid
	case userPart == rootName:
		// uid 0 without an entry, as a numeric uid: gid 0, home "/".
	default:
		return nil, noSuchUser(userPart, users)
	}

	if hasGroup {
		if u.GID, err = lookupGroup(fsys, groupPart); err != nil {
			return nil, err
		}
		return u, nil
	}
	if found == nil {
		return u, nil
	}
	groups, err := readGroup(fsys)
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		for _, m := range g.members {
			if m == u.Name {
				u.Groups = append(u.Groups, g.gid)
				break
			}
		}
	}
	return u, nil
}

// LookupOwner resolves a COPY/ADD --chown value to the uid and gid given to
// the copied files, as BuildKit does: a name takes its uid and primary gid
// from /etc/passwd, a numeric uid without a group is also the gid (no lookup,
// even if /etc/passwd says otherwise), a group may be a name or a gid, and
// an empty part ("1000:" or ":staff") is the default (the uid's gid, or uid
// 0).
func LookupOwner(fsys fsview.FS, spec string) (uid, gid int, err error) {
	userPart, groupPart, _ := strings.Cut(spec, ":")
	if userPart == "" && groupPart == "" {
		return 0, 0, fmt.Errorf("invalid --chown value %q: no user or group", spec)
	}
	if userPart != "" {
		n, numeric, err := numericID(userPart, "uid")
		if err != nil {
			return 0, 0, err
		}
		if numeric {
			uid, gid = n, n
		} else if uid, gid, err = lookupUserByName(fsys, userPart); err != nil {
			return 0, 0, err
		}
	}
	if groupPart != "" {
		if gid, err = lookupGroup(fsys, groupPart); err != nil {
			return 0, 0, err
		}
	}
	return uid, gid, nil
}

func lookupUserByName(fsys fsview.FS, name string) (uid, gid int, err error) {
	users, err := readPasswd(fsys)
	if err != nil {
		return 0, 0, err
	}
	for _, u := range users {
		if u.name == name {
			return u.uid, u.gid, nil
		}
	}
	if name == rootName {
		return 0, 0, nil
	}
	return 0, 0, noSuchUser(name, users)
}

// rootName is uid 0 and gid 0 even where /etc/passwd or /etc/group does
// not say so (a scratch stage, a distroless image): Docker resolves
// "root:root" without the files, and no image means anything else by it.
const rootName = "root"

// noSuchUser is the error for a user name /etc/passwd does not have;
// users are its entries, to tell a missing file from a missing name.
func noSuchUser(name string, users []passwdEntry) error {
	if len(users) == 0 {
		return fmt.Errorf("unable to find user %q: %w (%s is missing or empty: use a numeric uid such as 1000, or create the user first)", name, ErrNoSuchUser, passwdPath)
	}
	return fmt.Errorf("unable to find user %q: %w", name, ErrNoSuchUser)
}

// lookupGroup resolves a group name or gid; a gid needs no entry.
func lookupGroup(fsys fsview.FS, spec string) (int, error) {
	gid, numeric, err := numericID(spec, "gid")
	if err != nil || numeric {
		return gid, err
	}
	groups, err := readGroup(fsys)
	if err != nil {
		return 0, err
	}
	for _, g := range groups {
		if g.name == spec {
			return g.gid, nil
		}
	}
	if spec == rootName {
		return 0, nil
	}
	if len(groups) == 0 {
		return 0, fmt.Errorf("unable to find group %q: %w (%s is missing or empty: use a numeric gid)", spec, ErrNoSuchGroup, groupPath)
	}
	return 0, fmt.Errorf("unable to find group %q: %w", spec, ErrNoSuchGroup)
}

// numericID reports whether s is a decimal id and parses it; an id that is
// all digits but does not fit is an error rather than a name to look up.
func numericID(s, what string) (int, bool, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false, nil
	}
	n, err := parseID(s)
	if err != nil {
		return 0, false, fmt.Errorf("%s %q out of range 0-2147483647", what, s)
	}
	return n, true, nil
}
