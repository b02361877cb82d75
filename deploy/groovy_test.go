package deploy_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// groovyString is a string literal of a Groovy source.
type groovyString struct {
	value   string // decoded, for single-quoted strings; raw for GStrings
	gstring bool   // double-quoted: Groovy interpolates ${...}
}

// groovySource is a Groovy source with its comments removed and each string
// literal replaced by «N», N indexing strings, so that the code can be
// matched with regular expressions without tripping over the contents of
// strings or comments.
type groovySource struct {
	code    string
	strings []groovyString
}

// lexGroovy splits src into code and string literals. It knows the forms a
// Jenkinsfile uses: '...', ”'...”', "...", """...""", // and /* */
// comments.
func lexGroovy(src string) (*groovySource, error) {
	g := &groovySource{}
	var code strings.Builder
	for i := 0; i < len(src); {
		rest := src[i:]
		switch {
		case strings.HasPrefix(rest, "//"):
			end := strings.IndexByte(rest, '\n')
			if end < 0 {
				end = len(rest)
			}
			i += end
		case strings.HasPrefix(rest, "/*"):
			end := strings.Index(rest, "*/")
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated comment", lineOf(src, i))
			}
			i += end + 2
		case rest[0] == '\'' || rest[0] == '"':
			delim := rest[:1]
			if strings.HasPrefix(rest, strings.Repeat(delim, 3)) {
				delim = strings.Repeat(delim, 3)
			}
			end := closingQuote(rest[len(delim):], delim)
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated string", lineOf(src, i))
			}
			raw := rest[len(delim) : len(delim)+end]
			s := groovyString{value: raw, gstring: delim[0] == '"'}
			if !s.gstring {
				var err error
				if s.value, err = unescapeGroovy(raw); err != nil {
					return nil, fmt.Errorf("line %d: %w", lineOf(src, i), err)
				}
			}
			fmt.Fprintf(&code, "«%d»", len(g.strings))
			g.strings = append(g.strings, s)
			i += len(delim) + end + len(delim)
		default:
			code.WriteByte(src[i])
			i++
		}
	}
	g.code = code.String()
	return g, nil
}

// closingQuote returns the index of the delimiter that ends a string body,
// skipping escaped characters; -1 if there is none.
func closingQuote(body, delim string) int {
	for i := 0; i < len(body); i++ {
		switch {
		case body[i] == '\\':
			i++
		case strings.HasPrefix(body[i:], delim):
			return i
		case len(delim) == 1 && body[i] == '\n':
			return -1
		}
	}
	return -1
}

// unescapeGroovy decodes the escapes of a single-quoted Groovy string; a
// backslash before a newline joins the lines.
func unescapeGroovy(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i++; i == len(s) {
			return "", fmt.Errorf("string ends with a backslash")
		}
		switch c := s[i]; c {
		case '\n':
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case '\\', '\'', '"', '$':
			b.WriteByte(c)
		case 'u':
			if i+5 > len(s) {
				return "", fmt.Errorf("bad \\u escape")
			}
			r, err := strconv.ParseUint(s[i+1:i+5], 16, 16)
			if err != nil {
				return "", fmt.Errorf("bad \\u escape: %w", err)
			}
			b.WriteRune(rune(r))
			i += 4
		default:
			return "", fmt.Errorf("unknown escape \\%c", c)
		}
	}
	return b.String(), nil
}

func lineOf(src string, offset int) int { return strings.Count(src[:offset], "\n") + 1 }

var stringRef = regexp.MustCompile(`«(\d+)»`)

// str returns the string literal a «N» reference stands for.
func (g *groovySource) str(ref string) groovyString {
	n, _ := strconv.Atoi(stringRef.FindStringSubmatch(ref)[1])
	return g.strings[n]
}

// block returns the code between the braces that follow the first match of
// opening (a regular expression), and where that code starts and ends in
// g.code; "" and -1, -1 if opening does not occur.
func (g *groovySource) block(opening string) (body string, start, end int, err error) {
	loc := regexp.MustCompile(opening + `\s*\{`).FindStringIndex(g.code)
	if loc == nil {
		return "", -1, -1, nil
	}
	depth := 0
	for i := loc[1] - 1; i < len(g.code); i++ {
		switch g.code[i] {
		case '{':
			depth++
		case '}':
			if depth--; depth == 0 {
				return g.code[loc[1]:i], loc[1], i, nil
			}
		}
	}
	return "", -1, -1, fmt.Errorf("%s: unbalanced braces", opening)
}
