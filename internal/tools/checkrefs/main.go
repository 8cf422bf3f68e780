// Command checkrefs checks that the repository's documents refer only to what the repository holds. It
// fails (exit status 1, one line per problem) when:
//
//   - a Markdown link or image with a relative destination (optionally with a #fragment) names a file or
//     directory that is not in the repository, or a fragment that is not a heading (GitHub's slug) or an
//     explicit anchor of the Markdown file it points into;
//   - a tracked text file mentions the directory "shared" next to the checkout (by the relative path
//     that goes up one level into it), which is outside the repository;
//   - an inline code span in a Markdown file is a repository path that does not exist. Only spans made of
//     path characters alone that start with a top-level directory of the repository (or one of a few
//     known names, so that a removed directory is noticed) or with the module path are checked, e.g.
//     `backends/memstore` or `github.com/seed-a1426414/stampede/metrics/prometheus`.
//
// External links (any URL with a scheme, or starting with //) are not checked, nor is anything inside
// fenced code blocks. Usage: go run ./internal/tools/checkrefs [repository root, default "."].
package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode"
)

func main() {
	root := "."
	if len(os.Args) > 1 {
		root = os.Args[1]
	}
	files, err := listFiles(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "checkrefs:", err)
		os.Exit(2)
	}
	r := newRepo(root, files)
	problems := r.check()
	for _, p := range problems {
		fmt.Println(p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "checkrefs: %d problem(s) in %d files\n", len(problems), len(files))
		os.Exit(1)
	}
	fmt.Printf("checkrefs: %d files, %d Markdown files, %d local links and %d paths checked: ok\n",
		len(files), r.markdownFiles, r.links, r.paths)
}

// listFiles returns the repository's files, slash-separated and relative to root: the files git tracks
// or would track (untracked but not ignored), or, outside a git work tree, every file but .git's.
func listFiles(root string) ([]string, error) {
	cmd := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	if out, err := cmd.Output(); err == nil {
		var files []string
		for _, f := range strings.Split(string(out), "\x00") {
			if f == "" {
				continue
			}
			if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(f))); err == nil { // not deleted
				files = append(files, f)
			}
		}
		sort.Strings(files)
		return files, nil
	}
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

// knownTopDirs are checked as path prefixes even when the repository has no such directory (any more).
var knownTopDirs = []string{"docs", "backends", "_example", "internal", "bench", "metrics", "conformance",
	"scripts", "test", "testdata"}

type repo struct {
	root    string
	files   []string
	exists  map[string]bool // files and their parent directories, slash-separated, "" excluded
	topDirs map[string]bool
	module  string // module path of the root go.mod, or ""
	anchors map[string]map[string]bool

	markdownFiles, links, paths int
}

func newRepo(root string, files []string) *repo {
	r := &repo{root: root, files: files, exists: map[string]bool{}, topDirs: map[string]bool{},
		anchors: map[string]map[string]bool{}}
	for _, d := range knownTopDirs {
		r.topDirs[d] = true
	}
	for _, f := range files {
		r.exists[f] = true
		for d := path.Dir(f); d != "."; d = path.Dir(d) {
			r.exists[d] = true
			if !strings.Contains(d, "/") {
				r.topDirs[d] = true
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err == nil {
		if m := regexp.MustCompile(`(?m)^module\s+(\S+)`).FindSubmatch(b); m != nil {
			r.module = string(m[1])
		}
	}
	return r
}

// problem is one broken reference.
type problem struct {
	file string
	line int
	msg  string
}

func (p problem) String() string { return fmt.Sprintf("%s:%d: %s", p.file, p.line, p.msg) }

// outside is the parent-directory path no file may mention; split so that this file does not.
var outside = "../" + "shared"

func (r *repo) check() []problem {
	var problems []problem
	for _, f := range r.files {
		b, err := os.ReadFile(filepath.Join(r.root, filepath.FromSlash(f)))
		if err != nil {
			problems = append(problems, problem{f, 0, err.Error()})
			continue
		}
		if isBinary(b) {
			continue
		}
		for i, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, outside) {
				problems = append(problems, problem{f, i + 1, "mentions " + outside + ", which is outside the repository"})
			}
		}
		if strings.HasSuffix(f, ".md") {
			r.markdownFiles++
			problems = append(problems, r.checkMarkdown(f, string(b))...)
		}
	}
	sort.SliceStable(problems, func(i, j int) bool {
		if problems[i].file != problems[j].file {
			return problems[i].file < problems[j].file
		}
		return problems[i].line < problems[j].line
	})
	return problems
}

// isBinary is git's test: a NUL byte in the first 8000 bytes.
func isBinary(b []byte) bool { return bytes.IndexByte(b[:min(len(b), 8000)], 0) >= 0 }

var (
	refDef  = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:\s*(\S+)`)
	htmlRef = regexp.MustCompile(`(?i)<(?:a|img|source)\b[^>]*?\b(?:href|src)\s*=\s*["']([^"']*)["']`)
	// pathSpan is a code span made of path characters only, without a leading dash or dot run.
	pathSpan = regexp.MustCompile(`^(?:\./)?[A-Za-z0-9_][A-Za-z0-9_.\-]*(?:/[A-Za-z0-9_.\-]+)*/?$`)
)

func (r *repo) checkMarkdown(file, text string) []problem {
	var problems []problem
	for _, l := range markdownLines(text) {
		if l.fenced {
			continue
		}
		prose, spans := splitCode(l.text)
		var dests []string
		for i := 0; i+1 < len(prose); i++ {
			if prose[i] == ']' && prose[i+1] == '(' {
				if d, ok := destination(prose[i+2:]); ok {
					dests = append(dests, d)
				}
			}
		}
		if m := refDef.FindStringSubmatch(prose); m != nil {
			dests = append(dests, strings.Trim(m[1], "<>"))
		}
		for _, m := range htmlRef.FindAllStringSubmatch(prose, -1) {
			dests = append(dests, m[1])
		}
		for _, d := range dests {
			if msg := r.checkLink(file, d); msg != "" {
				problems = append(problems, problem{file, l.n, msg})
			}
		}
		for _, s := range spans {
			if msg := r.checkPath(s); msg != "" {
				problems = append(problems, problem{file, l.n, msg})
			}
		}
	}
	return problems
}

// destination parses a link destination after "](": "<dest>" or dest up to white space or the ")"
// that closes the link (balanced parentheses inside are part of it).
func destination(s string) (string, bool) {
	s = strings.TrimLeft(s, " \t")
	if strings.HasPrefix(s, "<") {
		end := strings.IndexByte(s, '>')
		if end < 0 {
			return "", false
		}
		return s[1:end], true
	}
	depth := 0
	for i, c := range s {
		switch {
		case c == '(':
			depth++
		case c == ')' && depth == 0:
			return s[:i], true
		case c == ')':
			depth--
		case c == ' ' || c == '\t':
			return s[:i], true // a title follows
		}
	}
	return "", false // the link does not close on this line: not a link
}

var scheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.\-]*:`)

// checkLink returns what is wrong with a link destination in file, or "".
func (r *repo) checkLink(file, dest string) string {
	if dest == "" || scheme.MatchString(dest) || strings.HasPrefix(dest, "//") {
		return ""
	}
	r.links++
	target, fragment, _ := strings.Cut(dest, "#")
	if i := strings.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	if t, err := url.PathUnescape(target); err == nil {
		target = t
	}
	resolved := file
	if target != "" {
		if strings.HasPrefix(target, "/") {
			resolved = path.Clean(strings.TrimPrefix(target, "/"))
		} else {
			resolved = path.Join(path.Dir(file), target)
		}
		if resolved == "." {
			resolved = ""
		}
		if resolved == ".." || strings.HasPrefix(resolved, "../") {
			return fmt.Sprintf("link %q points outside the repository", dest)
		}
		if resolved != "" && !r.exists[resolved] {
			return fmt.Sprintf("link %q: %s is not in the repository", dest, resolved)
		}
	}
	if fragment == "" || !strings.HasSuffix(resolved, ".md") {
		return ""
	}
	if f, err := url.PathUnescape(fragment); err == nil {
		fragment = f
	}
	if !r.anchorsOf(resolved)[strings.ToLower(fragment)] {
		return fmt.Sprintf("link %q: %s has no heading or anchor %q", dest, resolved, "#"+fragment)
	}
	return ""
}

// checkPath returns what is wrong with an inline code span that looks like a repository path, or "".
func (r *repo) checkPath(span string) string {
	span = strings.TrimSpace(span)
	p := span
	if r.module != "" && strings.HasPrefix(p, r.module+"/") {
		p = strings.TrimPrefix(p, r.module+"/")
	} else if !strings.Contains(strings.TrimPrefix(p, "./"), "/") {
		return "" // a word, not a path
	}
	if !pathSpan.MatchString(p) {
		return ""
	}
	p = strings.TrimSuffix(strings.TrimPrefix(p, "./"), "/")
	top, _, _ := strings.Cut(p, "/")
	if !r.topDirs[top] {
		return ""
	}
	r.paths++
	if !r.exists[path.Clean(p)] {
		return fmt.Sprintf("`%s`: %s is not in the repository", span, p)
	}
	return ""
}

// anchorsOf returns the fragments that reach into a Markdown file: its headings' GitHub slugs and its
// explicit id and name attributes.
func (r *repo) anchorsOf(file string) map[string]bool {
	if a, ok := r.anchors[file]; ok {
		return a
	}
	a := map[string]bool{}
	r.anchors[file] = a
	b, err := os.ReadFile(filepath.Join(r.root, filepath.FromSlash(file)))
	if err != nil {
		return a
	}
	for _, slug := range headingSlugs(string(b)) {
		a[slug] = true
	}
	for _, m := range explicitAnchor.FindAllStringSubmatch(string(b), -1) {
		a[strings.ToLower(m[1])] = true
	}
	return a
}

var explicitAnchor = regexp.MustCompile(`(?i)<[a-z]+\b[^>]*?\b(?:id|name)\s*=\s*["']([^"']+)["']`)

type mdLine struct {
	n      int // 1-based
	text   string
	fenced bool // inside a fenced code block, or its fence
}

// markdownLines splits text into lines and marks those of fenced code blocks.
func markdownLines(text string) []mdLine {
	var lines []mdLine
	fence := "" // the opening fence while inside a block
	for i, t := range strings.Split(text, "\n") {
		l := mdLine{n: i + 1, text: t}
		trimmed := strings.TrimLeft(t, " ")
		indent := len(t) - len(trimmed)
		switch {
		case fence != "":
			l.fenced = true
			if indent < 4 && strings.HasPrefix(trimmed, fence) && strings.Trim(trimmed, fence[:1]+" \t") == "" {
				fence = ""
			}
		case indent < 4 && (strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~")):
			l.fenced = true
			c := trimmed[:1]
			n := len(trimmed) - len(strings.TrimLeft(trimmed, c))
			fence = strings.Repeat(c, n)
		}
		lines = append(lines, l)
	}
	return lines
}

// splitCode returns line with its code spans blanked out, and the spans' contents.
func splitCode(line string) (prose string, spans []string) {
	var b strings.Builder
	for i := 0; i < len(line); {
		if line[i] != '`' {
			b.WriteByte(line[i])
			i++
			continue
		}
		n := 0
		for i+n < len(line) && line[i+n] == '`' {
			n++
		}
		ticks := line[i : i+n]
		end := -1
		for j := i + n; j < len(line); {
			k := strings.Index(line[j:], ticks)
			if k < 0 {
				break
			}
			k += j
			m := 0
			for k+m < len(line) && line[k+m] == '`' {
				m++
			}
			if m == n {
				end = k
				break
			}
			j = k + m
		}
		if end < 0 { // no closing run: the backticks are literal
			b.WriteString(ticks)
			i += n
			continue
		}
		spans = append(spans, line[i+n:end])
		b.WriteString(strings.Repeat(" ", end+n-i))
		i = end + n
	}
	return b.String(), spans
}

var (
	atxHeading   = regexp.MustCompile(`^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$`)
	setextBelow  = regexp.MustCompile(`^ {0,3}(?:=+|-+)[ \t]*$`)
	mdImage      = regexp.MustCompile(`!\[([^\]]*)\]\([^)]*\)`)
	mdLink       = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
	htmlTag      = regexp.MustCompile(`<[^>]+>`)
	listOrQuote  = regexp.MustCompile(`^ {0,3}(?:[-*+>]|\d+[.)])(?:[ \t]|$)`)
	thematicLine = regexp.MustCompile(`^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$`)
)

// headingSlugs returns the GitHub anchors of text's headings, in order, duplicates numbered "-1", "-2".
func headingSlugs(text string) []string {
	var slugs []string
	seen := map[string]int{}
	add := func(heading string) {
		s := slug(heading)
		if n, ok := seen[s]; ok {
			seen[s] = n + 1
			s = fmt.Sprintf("%s-%d", s, n+1)
		} else {
			seen[s] = 0
		}
		slugs = append(slugs, s)
	}
	lines := markdownLines(text)
	for i, l := range lines {
		if l.fenced {
			continue
		}
		if m := atxHeading.FindStringSubmatch(l.text); m != nil {
			add(m[1])
			continue
		}
		// Setext: a paragraph line underlined with = or -.
		if i+1 < len(lines) && !lines[i+1].fenced && setextBelow.MatchString(lines[i+1].text) &&
			strings.TrimSpace(l.text) != "" && !listOrQuote.MatchString(l.text) && !thematicLine.MatchString(l.text) &&
			!atxHeading.MatchString(l.text) && (i == 0 || strings.TrimSpace(lines[i-1].text) == "") {
			add(l.text)
		}
	}
	return slugs
}

// slug is GitHub's anchor for a heading's text: the rendered text lower-cased, with every character but
// letters, marks, digits, spaces, hyphens and underscores dropped, and each space made a hyphen.
func slug(heading string) string {
	text := strings.ReplaceAll(heading, "`", "") // a code span's text stays
	text = mdImage.ReplaceAllString(text, "$1")
	text = mdLink.ReplaceAllString(text, "$1")
	text = htmlTag.ReplaceAllString(text, "")
	text = strings.ReplaceAll(text, "*", "")
	text = strings.TrimSpace(strings.ToLower(text))
	var b strings.Builder
	for _, c := range text {
		switch {
		case c == ' ':
			b.WriteByte('-')
		case c == '-' || c == '_' || unicode.IsLetter(c) || unicode.IsDigit(c) || unicode.IsMark(c) || unicode.IsNumber(c):
			b.WriteRune(c)
		}
	}
	return b.String()
}
