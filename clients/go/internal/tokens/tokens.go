// Package tokens reads the token book: {identity: token} as JSON (what the
// testbed writes) or as a flat YAML mapping of `identity: token` lines, like
// the Python tools and the Node client accept.
package tokens

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"xenmca.dev/clients/go/internal/jsobj"
	"xenmca.dev/clients/go/internal/oserr"
)

// FileEnv names the token file when --token-file is not given.
const FileEnv = "XENMCA_TOKEN_FILE"

// FileError is a token file that cannot be used; its message names the file.
type FileError struct{ Message string }

func (e *FileError) Error() string { return e.Message }

const jsSpace = `[\t\n\v\f\r \x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}\x{feff}]`

var (
	yamlComment = regexp.MustCompile(jsSpace + `+#[^\n\r\x{2028}\x{2029}]*$`)
	yamlEntry   = regexp.MustCompile(`^([A-Za-z0-9_.-]+)` + jsSpace + `*:` + jsSpace + `*([^\n\r\x{2028}\x{2029}]+)$`)
	lineBreak   = regexp.MustCompile(`\r?\n`)
)

// parseFlatYAML reads `identity: token` lines, or returns nil if text is not such a mapping.
func parseFlatYAML(text string) *jsobj.Object {
	book := jsobj.NewObject()
	for _, raw := range lineBreak.Split(text, -1) {
		line := raw
		if loc := yamlComment.FindStringIndex(line); loc != nil {
			line = line[:loc[0]]
		}
		line = strings.TrimRightFunc(line, jsobj.IsJSSpace)
		if strings.TrimFunc(line, jsobj.IsJSSpace) == "" || strings.HasPrefix(strings.TrimLeftFunc(line, jsobj.IsJSSpace), "#") || line == "---" {
			continue
		}
		m := yamlEntry.FindStringSubmatch(line)
		if m == nil {
			return nil
		}
		value := strings.TrimFunc(m[2], jsobj.IsJSSpace)
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
			value = value[1 : len(value)-1]
		}
		book.Set(m[1], value)
	}
	return book
}

// LoadBook reads a token book; the error names the file and the problem.
func LoadBook(path string) (*jsobj.Object, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &FileError{fmt.Sprintf("%s: cannot read token file: %s", path, oserr.Code(err))}
	}
	text := strings.ToValidUTF8(string(data), "\uFFFD")
	var book *jsobj.Object
	if v, err := jsobj.Parse(text); err == nil {
		book, _ = v.(*jsobj.Object)
		if book == nil {
			return nil, &FileError{path + ": expected a mapping of identity: token"}
		}
	} else {
		book = parseFlatYAML(text)
	}
	if book == nil || book.Len() == 0 {
		return nil, &FileError{path + ": expected a mapping of identity: token"}
	}
	for _, identity := range book.Keys() {
		token, _ := book.Get(identity)
		if s, ok := token.(string); !ok || jsobj.JSLength(s) < 8 {
			return nil, &FileError{fmt.Sprintf("%s: entry '%s' must map a name to a token of 8+ characters", path, identity)}
		}
	}
	return book, nil
}

// Resolve is the token to present: the first of identities found in the book
// named by path (or $XENMCA_TOKEN_FILE). No file at all means no token ("", a
// testbed without identity checks); a file without any of them is an error.
func Resolve(path string, identities []string) (string, error) {
	chosen := path
	if chosen == "" {
		chosen = os.Getenv(FileEnv)
	}
	if chosen == "" {
		return "", nil
	}
	book, err := LoadBook(chosen)
	if err != nil {
		return "", err
	}
	for _, identity := range identities {
		if token, ok := book.Get(identity); ok && token.(string) != "" {
			return token.(string), nil
		}
	}
	return "", &FileError{fmt.Sprintf("%s: no '%s' entry", chosen, strings.Join(identities, "' or '"))}
}
