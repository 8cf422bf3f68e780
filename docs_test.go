package stampede

// Tests that keep the documentation true to the code: the reference pages in docs/ list every exported
// option with its default, every reason, every Snapshot field and every Prometheus metric; every Go
// snippet in README.md and docs/*.md compiles; every test a document cites exists.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readDoc returns a document of the repository.
func readDoc(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tableRows returns the rows of the Markdown tables in the section of doc under heading (up to the next
// heading of the same or a higher level), each as its cells, header and delimiter rows excluded.
func tableRows(t *testing.T, doc, heading string) [][]string {
	t.Helper()
	lines := strings.Split(doc, "\n")
	start, level := -1, 0
	for i, l := range lines {
		if strings.TrimSpace(l) == heading {
			start, level = i+1, strings.Index(heading, " ")
			break
		}
	}
	if start < 0 {
		t.Fatalf("no heading %q", heading)
	}
	var rows [][]string
	header := true
	for _, l := range lines[start:] {
		if n := strings.Index(l, " "); strings.HasPrefix(l, "#") && n > 0 && n <= level {
			break
		}
		if !strings.HasPrefix(l, "|") {
			header = true // a new table starts with its header row
			continue
		}
		cells := strings.Split(strings.Trim(l, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if header || strings.HasPrefix(cells[0], "---") {
			header = false
			continue
		}
		rows = append(rows, cells)
	}
	return rows
}

// optionConstructors returns the exported functions of the package whose result is Option or
// LoaderOption, by result type.
func optionConstructors(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !fn.Name.IsExported() || fn.Type.Results == nil || len(fn.Type.Results.List) != 1 {
				continue
			}
			if id, ok := fn.Type.Results.List[0].Type.(*ast.Ident); ok && (id.Name == "Option" || id.Name == "LoaderOption") {
				found[fn.Name.Name] = id.Name
				if doc := fn.Doc.Text(); !strings.Contains(doc, "default") && fn.Name.Name != "WithOptions" {
					t.Errorf("%s's doc comment does not state its default", fn.Name.Name)
				}
			}
		}
	}
	return found
}

// docDuration writes d as the reference pages do: "500 ms", "30 s", "10 min".
func docDuration(d time.Duration) string {
	switch {
	case d%time.Minute == 0:
		return fmt.Sprintf("%d min", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%d s", d/time.Second)
	default:
		return fmt.Sprintf("%d ms", d/time.Millisecond)
	}
}

// docBytes writes n as the reference pages do: "8 MiB".
func docBytes(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// docCount writes n with thousands separators: "10,000".
func docCount(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// TestOptionsDocumented: docs/options.md has a row for every exported Option and LoaderOption
// constructor, no row for one that does not exist, and each default the code defines appears in its
// option's row as the code has it.
func TestOptionsDocumented(t *testing.T) {
	t.Parallel()
	doc := readDoc(t, "docs/options.md")
	rows := map[string][]string{} // option name -> its row
	for _, heading := range []string{"## Middleware options (`Option`)", "## Loader options (`LoaderOption`)"} {
		for _, cells := range tableRows(t, doc, heading) {
			name, _, _ := strings.Cut(strings.Trim(cells[0], "`"), "(")
			if _, dup := rows[name]; dup {
				t.Errorf("docs/options.md: %s has two rows", name)
			}
			rows[name] = cells
		}
	}
	options := optionConstructors(t)
	for name := range options {
		if rows[name] == nil {
			t.Errorf("docs/options.md has no row for %s", name)
		}
	}
	for name := range rows {
		if options[name] == "" {
			t.Errorf("docs/options.md has a row for %s, which is not an exported option", name)
		}
	}

	d := defaultConfig()
	var lc loaderConfig
	lc.validate()
	defaults := map[string][]string{
		"WithMaxBodyBytes":             {docBytes(d.maxBodyBytes)},
		"WithKeyBodyLimit":             {docBytes(d.keyBodyLimit)},
		"WithComputeTimeout":           {docDuration(d.computeTimeout)},
		"WithPassTTL":                  {docDuration(d.passTTL)},
		"WithStoreTimeout":             {docDuration(d.storeTimeout)},
		"WithCircuitBreaker":           {fmt.Sprintf("%d failures", d.breakerFails), docDuration(d.breakerBackoff)},
		"WithKeyPrefix":                {"`" + d.keyPrefix + "`"},
		"WithKeyVersion":               {"`" + d.keyVersion + "`"},
		"WithMinUses":                  {fmt.Sprintf("%d use", d.minUses), docDuration(d.minUsesWindow) + " window"},
		"WithKeep":                     {docDuration(d.keep)},
		"WithTargetedCacheControl":     {"`" + strings.Join(d.targets, "`, `") + "`"},
		"WithMethods":                  {"GET, HEAD"},
		"WithCacheStatusName":          {"`stampede`"},
		"WithClock":                    {"`time.Now`"},
		"WithLocalEntries":             {docCount(lc.localEntries) + " entries"},
		"WithLocalTTL":                 {docDuration(lc.localTTL)},
		"WithCodec":                    {"`JSON`"},
		"WithLogger":                   {"`slog.Default()`"},
		"WithMaxAgePolicy":             {"`MaxAgeOverride`"},
		"WithSkipCache":                {"false"},
		"WithHonorRequestCacheControl": {"false"},
		"WithHTTPCacheKeyRequestBody":  {"false"},
	}
	for _, h := range DefaultNeverStoreHeaders {
		defaults["WithNeverStoreHeaders"] = append(defaults["WithNeverStoreHeaders"], "`"+h+"`")
	}
	for _, off := range []string{"WithStaleWhileRevalidate", "WithStaleIfError", "WithEarlyRefresh", "WithFleetCoalescing"} {
		defaults[off] = []string{"0 (off)"}
	}
	if d.cacheStatusName != "" || d.xfetchBeta != 0 || d.fleetLease != 0 || d.staleWhileRevalidate != 0 {
		t.Fatal("a default the table states literally changed: update this test and docs/options.md")
	}
	for name, wants := range defaults {
		row := rows[name]
		if row == nil {
			continue // reported above
		}
		for _, want := range wants {
			if !strings.Contains(strings.ToLower(row[1]), strings.ToLower(want)) { // header names are case-insensitive
				t.Errorf("docs/options.md: default of %s is %q, want it to say %q", name, row[1], want)
			}
		}
	}
}

// TestReasonsDocumented: docs/http-caching.md's reason tables list exactly the code's pass reasons and
// its reasons a response cannot be shared.
func TestReasonsDocumented(t *testing.T) {
	t.Parallel()
	doc := readDoc(t, "docs/http-caching.md")
	var documented []string
	for _, cells := range tableRows(t, doc, "## Reasons") {
		documented = append(documented, strings.Trim(cells[0], "`"))
	}
	code := append([]string(nil), reasons[:]...)
	sort.Strings(code)
	sort.Strings(documented)
	if !slices.Equal(code, documented) {
		t.Errorf("docs/http-caching.md lists the reasons\n%q\nthe code has\n%q", documented, code)
	}
	// The response reasons are the second table; a reason in both would be ambiguous.
	var second []string
	rows := tableRows(t, doc, "## Reasons")
	for _, cells := range rows[len(rows)-len(responseReasons):] {
		second = append(second, strings.Trim(cells[0], "`"))
	}
	want := append([]string(nil), responseReasons[:]...)
	sort.Strings(want)
	sort.Strings(second)
	if !slices.Equal(want, second) {
		t.Errorf("docs/http-caching.md's second table (responses) lists\n%q\nthe code's response reasons are\n%q", second, want)
	}
}

// TestSnapshotDocumented: docs/observability.md's Snapshot table names every field of Snapshot, and no
// other.
func TestSnapshotDocumented(t *testing.T) {
	t.Parallel()
	doc := readDoc(t, "docs/observability.md")
	documented := map[string]bool{}
	for _, cells := range tableRows(t, doc, "## Snapshot") {
		for _, name := range strings.Split(cells[0], ",") {
			documented[strings.Trim(strings.TrimSpace(name), "`")] = true
		}
	}
	typ := reflect.TypeFor[Snapshot]()
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		if !documented[name] {
			t.Errorf("docs/observability.md's Snapshot table has no row for Snapshot.%s", name)
		}
		delete(documented, name)
	}
	for name := range documented {
		t.Errorf("docs/observability.md's Snapshot table names %s, which Snapshot does not have", name)
	}
}

// moduleDirs are the modules of the repository a snippet may need, by the package names that need them.
var snippetImports = map[string]struct{ path, module string }{
	"context": {"context", "."}, "errors": {"errors", "."}, "fmt": {"fmt", "."}, "log": {"log", "."},
	"slog": {"log/slog", "."}, "http": {"net/http", "."}, "time": {"time", "."}, "strings": {"strings", "."},
	"sql":          {"database/sql", "."},
	"stampede":     {"github.com/seed-a1426414/stampede", "."},
	"memstore":     {"github.com/seed-a1426414/stampede/backends/memstore", "."},
	"redisstore":   {"github.com/seed-a1426414/stampede/backends/redisstore", "."},
	"tieredstore":  {"github.com/seed-a1426414/stampede/backends/tieredstore", "."},
	"chi":          {"github.com/go-chi/chi/v5", "."},
	"redis":        {"github.com/redis/go-redis/v9", "."},
	"stampedeprom": {"github.com/seed-a1426414/stampede/metrics/prometheus", "metrics/prometheus"},
	"prometheus":   {"github.com/prometheus/client_golang/prometheus", "metrics/prometheus"},
	"promhttp":     {"github.com/prometheus/client_golang/prometheus/promhttp", "metrics/prometheus"},
	"stampedeotel": {"github.com/seed-a1426414/stampede/metrics/otel", "metrics/otel"},
	"otel":         {"go.opentelemetry.io/otel", "metrics/otel"},
	"pgstore":      {"github.com/seed-a1426414/stampede/backends/pgstore", "backends/pgstore"},
	"pgxpool":      {"github.com/jackc/pgx/v5/pgxpool", "backends/pgstore"},
	"mysqlstore":   {"github.com/seed-a1426414/stampede/backends/mysqlstore", "backends/mysqlstore"},
	"sqlitestore":  {"github.com/seed-a1426414/stampede/backends/sqlitestore", "backends/sqlitestore"},
	"cbor":         {"github.com/seed-a1426414/stampede/codec/cbor", "codec/cbor"},
}

// snippetPrelude declares what the snippets use without declaring it: a logger, handlers, a database.
// Package-level, so a snippet that declares one of them shadows it.
const snippetPrelude = `
import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
)

type User struct {
	ID   int64
	Name string
}

type userDB struct{}

func (userDB) User(ctx context.Context, id int64) (User, error)                   { return User{ID: id}, nil }
func (userDB) UserByID(ctx context.Context, id int64) (User, error)               { return User{ID: id}, nil }
func (userDB) Users(ctx context.Context, ids []int64) (map[int64]User, error)    { return nil, nil }

type router interface {
	Use(middlewares ...func(http.Handler) http.Handler)
	Handle(pattern string, h http.Handler)
}

var (
	db                                                                        userDB
	logger                                                                    = slog.Default()
	ctx                                                                       = context.Background()
	ids                                                                       []int64
	listProducts, showProduct, dashboard, reportHandler, liveHandler, price http.HandlerFunc
	api                                                                       http.Handler
	tenantOf                                                                  func(*http.Request) (string, error)
	keepNotFound                                                              func(error) time.Duration
	loadUser                                                                  = db.User
	store                                                                     stampede.Store
	mem                                                                       *memstore.Store
	products                                                                  *stampede.Cache
	users                                                                     *stampede.Loader[int64, User]
	r                                                                         router
	mux                                                                       = http.NewServeMux()
)

var _ = []any{db, logger, ctx, ids, listProducts, showProduct, dashboard, reportHandler, liveHandler, price, api,
	tenantOf, keepNotFound, loadUser, store, mem, products, users, r, mux}
`

// snippet is a ```go block of a document.
type snippet struct {
	doc  string // the document's path
	line int    // the line of its first line of code
	code string
}

// docSnippets returns the ```go blocks of README.md and docs/*.md, except those preceded by a line
// "<!-- not compiled: why -->", and the code blocks of the package doc.
func docSnippets(t *testing.T) []snippet {
	t.Helper()
	docs, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []snippet
	for _, doc := range append([]string{"README.md"}, docs...) {
		lines := strings.Split(readDoc(t, doc), "\n")
		for i := 0; i < len(lines); i++ {
			trimmed := strings.TrimSpace(lines[i])
			if trimmed != "```go" {
				continue
			}
			indent := lines[i][:strings.Index(lines[i], "`")]
			skip := i > 0 && strings.HasPrefix(strings.TrimSpace(lines[i-1]), "<!-- not compiled:")
			var code []string
			j := i + 1
			for ; j < len(lines) && strings.TrimSpace(lines[j]) != "```"; j++ {
				code = append(code, strings.TrimPrefix(lines[j], indent))
			}
			if !skip {
				out = append(out, snippet{doc: doc, line: i + 2, code: strings.Join(code, "\n")})
			}
			i = j
		}
	}
	// The package doc's code blocks: runs of comment lines indented by a tab.
	lines := strings.Split(readDoc(t, "doc.go"), "\n")
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "//\t") {
			continue
		}
		start := i
		var code []string
		for ; i < len(lines) && (strings.HasPrefix(lines[i], "//\t") || lines[i] == "//"); i++ {
			code = append(code, strings.TrimPrefix(strings.TrimPrefix(lines[i], "//"), "\t"))
		}
		out = append(out, snippet{doc: "doc.go", line: start + 1, code: strings.Join(code, "\n")})
	}
	return out
}

// TestDocSnippetsCompile: every Go snippet of the README, docs/ and the package doc compiles, in the module it needs,
// as a function body (or as declarations, or a file when it starts with a package clause) after a
// prelude that declares the names snippets take for granted. Unused variables and imports are
// allowed: a snippet shows a step, not a program.
func TestDocSnippetsCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds packages with the go command")
	}
	t.Parallel()
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	type pkg struct {
		dir     string // overlay directory
		snippet snippet
		offset  int // lines of the generated file before the snippet's first line
	}
	byModule := map[string][]pkg{}
	overlay := map[string]string{}
	tmp := t.TempDir()
	word := regexp.MustCompile(`\b([a-z][a-z0-9]*)\.`)
	for n, s := range docSnippets(t) {
		module := "."
		imports := map[string]string{} // path → the name the snippet calls it
		for _, m := range word.FindAllStringSubmatch(s.code, -1) {
			imp, ok := snippetImports[m[1]]
			if !ok {
				continue
			}
			imports[imp.path] = m[1]
			if imp.module != "." {
				if module != "." && module != imp.module {
					t.Errorf("%s:%d: the snippet needs the modules %s and %s; split it", s.doc, s.line, module, imp.module)
				}
				module = imp.module
			}
		}
		name := fmt.Sprintf("s%02d", n)
		var b strings.Builder
		body := s.code
		first := strings.TrimSpace(body)
		offset := 0
		if strings.HasPrefix(first, "package ") {
			b.WriteString(body)
		} else {
			fmt.Fprintf(&b, "package %s\n\n", name)
			offset += 2
			// A snippet's own import lines go before the body, which keeps a blank line in their place.
			lines := strings.Split(body, "\n")
			for i, l := range lines {
				if strings.HasPrefix(l, "import ") {
					delete(imports, strings.Trim(l[strings.LastIndex(l, " ")+1:], `"`))
					b.WriteString(l + "\n")
					offset++
					lines[i] = ""
				}
			}
			body = strings.Join(lines, "\n")
			first = strings.TrimSpace(body)
			b.WriteString("import (\n")
			offset++
			paths := make([]string, 0, len(imports))
			for p := range imports {
				paths = append(paths, p)
			}
			sort.Strings(paths)
			for _, p := range paths {
				fmt.Fprintf(&b, "\t%s %q\n", imports[p], p)
				offset++
			}
			b.WriteString(")\n\n")
			offset += 2
			decl := false
			for _, kw := range []string{"type ", "func ", "var ", "const "} {
				decl = decl || strings.HasPrefix(first, kw)
			}
			if decl {
				b.WriteString(body)
			} else {
				b.WriteString("func _() {\n")
				offset++
				b.WriteString(body)
				b.WriteString("\n}\n")
			}
		}
		dir := filepath.Join(root, module, "internal", "docsnippets", name)
		file := filepath.Join(tmp, name+".go")
		prelude := filepath.Join(tmp, name+"_prelude.go")
		for path, text := range map[string]string{file: b.String(), prelude: "package " + name + "\n" + snippetPrelude} {
			if strings.HasPrefix(first, "package ") && path == prelude {
				continue
			}
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		overlay[filepath.Join(dir, "snippet.go")] = file
		if !strings.HasPrefix(first, "package ") {
			overlay[filepath.Join(dir, "prelude.go")] = prelude
		}
		byModule[module] = append(byModule[module], pkg{dir: dir, snippet: s, offset: offset})
	}
	overlayFile := filepath.Join(tmp, "overlay.json")
	ob, err := json.Marshal(map[string]any{"Replace": overlay})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(overlayFile, ob, 0o644); err != nil {
		t.Fatal(err)
	}
	ignored := []string{"declared and not used", "imported and not used", "too many errors"}
	for module, pkgs := range byModule {
		args := []string{"build", "-overlay", overlayFile, "-gcflags=-e"}
		for _, p := range pkgs {
			args = append(args, "./"+filepath.ToSlash(strings.TrimPrefix(p.dir, filepath.Join(root, module)+string(filepath.Separator))))
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = filepath.Join(root, module)
		out, err := cmd.CombinedOutput()
		if err == nil {
			continue
		}
		problems := 0
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "#") || slices.ContainsFunc(ignored, func(s string) bool { return strings.Contains(line, s) }) {
				continue
			}
			problems++
			for _, p := range pkgs {
				name := filepath.Base(p.dir)
				for _, at := range []string{"docsnippets/" + name + "/snippet.go:", "/" + name + ".go:"} {
					i := strings.Index(line, at)
					if i < 0 {
						continue
					}
					rest := line[i+len(at):]
					num, _, _ := strings.Cut(rest, ":")
					if n, err := strconv.Atoi(num); err == nil {
						line = fmt.Sprintf("%s:%d: %s", p.snippet.doc, p.snippet.line+n-1-p.offset, rest[len(num)+1:])
					}
					break
				}
			}
			t.Errorf("%s", line)
		}
		if problems == 0 && !strings.Contains(string(out), "declared and not used") && !strings.Contains(string(out), "imported and not used") {
			t.Errorf("go build in %s failed:\n%s", module, out)
		}
	}
}

// TestDocTestsExist: every test or benchmark a document names in a code span (`TestX`, `BenchmarkX`)
// is a function of a _test.go file of the repository.
func TestDocTestsExist(t *testing.T) {
	t.Parallel()
	docs, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, "README.md", "SECURITY.md", "BENCHMARKS.md")
	cited := map[string]string{}
	span := regexp.MustCompile("`((?:Test|Benchmark|Fuzz)[A-Z][A-Za-z0-9_]*)\\*?`")
	for _, doc := range docs {
		for _, m := range span.FindAllStringSubmatch(readDoc(t, doc), -1) {
			cited[m[1]] = doc
		}
	}
	defined := map[string]bool{}
	fn := regexp.MustCompile(`(?m)^func ((?:Test|Benchmark|Fuzz)[A-Za-z0-9_]*)\(`)
	err = filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") && path != "." {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range fn.FindAllStringSubmatch(string(b), -1) {
				defined[m[1]] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, doc := range cited {
		if !defined[name] {
			t.Errorf("%s cites %s, which no _test.go file defines", doc, name)
		}
	}
}

// describeMetrics is a program, built in the metrics/prometheus module, that prints the fully qualified
// name of every metric its Collector describes.
const describeMetrics = `package main

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a1426414/stampede"
	stampedeprom "github.com/seed-a1426414/stampede/metrics/prometheus"
)

func main() {
	c := stampedeprom.NewCollector(stampede.New(nil, nil, 0, stampede.WithName("docs")))
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	for d := range ch {
		fmt.Println(d.String())
	}
}
`

// TestMetricsDocumented: docs/observability.md names every metric the Prometheus collector describes,
// and no metric it does not.
func TestMetricsDocumented(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program with the go command")
	}
	t.Parallel()
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	program := filepath.Join(tmp, "main.go")
	if err := os.WriteFile(program, []byte(describeMetrics), 0o644); err != nil {
		t.Fatal(err)
	}
	module := filepath.Join(root, "metrics", "prometheus")
	ob, err := json.Marshal(map[string]any{"Replace": map[string]string{
		filepath.Join(module, "internal", "docsmetrics", "main.go"): program}})
	if err != nil {
		t.Fatal(err)
	}
	overlayFile := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(overlayFile, ob, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "run", "-overlay", overlayFile, "./internal/docsmetrics")
	cmd.Dir = module
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("describing the collector's metrics: %v\n%s%s", err, out, stderr.String())
	}
	fq := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	described := map[string]bool{}
	for _, m := range fq.FindAllStringSubmatch(string(out), -1) {
		described[m[1]] = true
	}
	if len(described) < 10 {
		t.Fatalf("the collector describes %d metrics:\n%s", len(described), out)
	}
	doc := readDoc(t, "docs/observability.md")
	named := map[string]bool{}
	for _, m := range regexp.MustCompile("`(stampede_[a-z_]+)(?:\\{[^`]*\\})?`").FindAllStringSubmatch(doc, -1) {
		named[m[1]] = true
	}
	for name := range described {
		if !named[name] {
			t.Errorf("docs/observability.md does not name the metric %s", name)
		}
	}
	for name := range named {
		base := name
		for _, suffix := range []string{"_count", "_sum", "_bucket"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && described[b] {
				base = b
			}
		}
		if !described[base] {
			t.Errorf("docs/observability.md names %s, which the collector does not describe", name)
		}
	}
}
