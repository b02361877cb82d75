package copier

import (
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/pkg/fsview"
)

// chmod is a parsed --chmod value: octal replaces the permission bits
// (setuid, setgid and sticky included), symbolic edits them like chmod(1).
type chmod struct {
	octal   bool
	bits    uint32 // octal form
	clauses []clause
}

// clause is one comma-separated part of a symbolic mode: "go+rX", "u=g".
type clause struct {
	who uint32 // the bits the clause may touch: u=04700, g=02070, o=01007
	ops []modeOp
}

type modeOp struct {
	op    byte   // '+', '-' or '='
	perms string // letters of "rwxXst", or one of "u", "g", "o" to copy
}

// Masks of the bits each class owns, special bits included.
const (
	whoUser  = 0o4700
	whoGroup = 0o2070
	whoOther = 0o1007
	whoAll   = whoUser | whoGroup | whoOther
)

var whoMasks = map[byte]uint32{'u': whoUser, 'g': whoGroup, 'o': whoOther, 'a': whoAll}

// parseChmod parses a --chmod value: octal ("755", "0644", "4755") or
// symbolic ("u+x,g-w", "a=rX", "g=u", "+x"). A symbolic clause without
// "who" applies to all classes; there is no umask at build time.
func parseChmod(s string) (*chmod, error) {
	if s != "" && strings.Trim(s, "0123456789") == "" {
		n, err := strconv.ParseUint(s, 8, 32)
		if err != nil || n > 0o7777 {
			return nil, fmt.Errorf("invalid --chmod value %q: an octal mode is between 0 and 7777", s)
		}
		return &chmod{octal: true, bits: uint32(n)}, nil
	}
	c := &chmod{}
	for _, part := range strings.Split(s, ",") {
		cl, err := parseClause(part)
		if err != nil {
			return nil, fmt.Errorf("invalid --chmod value %q: %w", s, err)
		}
		c.clauses = append(c.clauses, cl)
	}
	return c, nil
}

func parseClause(s string) (clause, error) {
	var cl clause
	i := 0
	for ; i < len(s) && whoMasks[s[i]] != 0; i++ {
		cl.who |= whoMasks[s[i]]
	}
	if cl.who == 0 {
		cl.who = whoAll
	}
	if i == len(s) {
		return cl, fmt.Errorf("%q has no operator (+, - or =)", s)
	}
	for i < len(s) {
		op := s[i]
		if op != '+' && op != '-' && op != '=' {
			return cl, fmt.Errorf("unexpected %q in %q", op, s)
		}
		i++
		j := i
		for j < len(s) && s[j] != '+' && s[j] != '-' && s[j] != '=' {
			j++
		}
		perms := s[i:j]
		if perms != "u" && perms != "g" && perms != "o" && strings.Trim(perms, "rwxXst") != "" {
			return cl, fmt.Errorf("invalid permissions %q in %q: use letters of rwxXst or one of u, g, o", perms, s)
		}
		cl.ops = append(cl.ops, modeOp{op: op, perms: perms})
		i = j
	}
	return cl, nil
}

// apply returns m with its permissions changed; the type bits are kept.
func (c *chmod) apply(m fs.FileMode) fs.FileMode {
	bits := uint32(fsview.TarMode(m))
	if c.octal {
		bits = c.bits
	} else {
		for _, cl := range c.clauses {
			for _, op := range cl.ops {
				bits = op.apply(bits, cl.who, m.IsDir())
			}
		}
	}
	return m.Type() | fileMode(bits)
}

func (o modeOp) apply(bits, who uint32, isDir bool) uint32 {
	var set uint32
	switch o.perms {
	case "u":
		set = (bits >> 6 & 7) * 0o111
	case "g":
		set = (bits >> 3 & 7) * 0o111
	case "o":
		set = (bits & 7) * 0o111
	default:
		for _, p := range o.perms {
			switch p {
			case 'r':
				set |= 0o444
			case 'w':
				set |= 0o222
			case 'x':
				set |= 0o111
			case 'X':
				if isDir || bits&0o111 != 0 {
					set |= 0o111
				}
			case 's':
				set |= 0o6000
			case 't':
				set |= 0o1000
			}
		}
	}
	set &= who
	switch o.op {
	case '+':
		return bits | set
	case '-':
		return bits &^ set
	default: // '='
		return bits&^who | set
	}
}

// fileMode converts numeric permission bits (with setuid, setgid and sticky)
// to the Go representation; it is the inverse of fsview.TarMode.
func fileMode(bits uint32) fs.FileMode {
	m := fs.FileMode(bits & 0o777)
	if bits&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if bits&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if bits&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}
