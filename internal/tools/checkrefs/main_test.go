package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSlug(t *testing.T) {
	for heading, want := range map[string]string{
		"1. Public surface (fixed names; more may be added)":               "1-public-surface-fixed-names-more-may-be-added",
		"HTTP freshness: Cache-Control, Vary, stale serving, revalidation": "http-freshness-cache-control-vary-stale-serving-revalidation",
		"See it in half a minute: `make demo`":                             "see-it-in-half-a-minute-make-demo",
		"The fleet: one origin load per key across all replicas":           "the-fleet-one-origin-load-per-key-across-all-replicas",
		"Why not go-chi/stampede?":                                         "why-not-go-chistampede",
		"**Bold** and [a link](x.md) with_underscore":                      "bold-and-a-link-with_underscore",
		"Ünïcode  two spaces":                                              "ünïcode--two-spaces",
	} {
		if got := slug(heading); got != want {
			t.Errorf("slug(%q) = %q, want %q", heading, got, want)
		}
	}
}

func TestHeadingSlugs(t *testing.T) {
	text := strings.Join([]string{
		"# Title",
		"## Options",
		"```sh",
		"# not a heading",
		"```",
		"## Options",
		"",
		"Setext heading",
		"--------------",
		"- list item",
		"---",
		"## Closed ##",
	}, "\n")
	want := []string{"title", "options", "options-1", "setext-heading", "closed"}
	if got := headingSlugs(text); !slices.Equal(got, want) {
		t.Fatalf("headingSlugs = %q, want %q", got, want)
	}
}

func TestSplitCode(t *testing.T) {
	prose, spans := splitCode("a `b` c ``d ` e`` `f")
	if want := []string{"b", "d ` e"}; !slices.Equal(spans, want) {
		t.Errorf("spans = %q, want %q", spans, want)
	}
	if want := "a     c" + strings.Repeat(" ", 11) + "`f"; prose != want {
		t.Errorf("prose = %q, want %q", prose, want)
	}
}

// TestCheck runs the checker on a small repository with one reference of each kind, good and bad.
func TestCheck(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/m\n\ngo 1.26\n",
		"README.md": strings.Join([]string{
			"# Example",
			"[ok](docs/guide.md#rules) [ok](docs/guide.md) [ok](#example) [ok](docs/) ![ok](docs/pic.png)",
			"[external](https://example.com/nope.md) [mail](mailto:a@b.c) [ok](<docs/guide.md> \"title\")",
			"[missing](docs/nope.md)",
			"[bad anchor](docs/guide.md#nope)",
			"[bad self anchor](#nope)",
			"[outside](../x.md)",
			"![missing image](docs/nope.png)",
			`<img src="docs/nope.svg">`,
			"[ref]: docs/gone.md",
			"Paths: `backends/mem` `docs/guide.md` `example.com/m/backends/mem` `./docs/` `backends/*.go`",
			"Bad paths: `backends/gone` `example.com/m/metrics/x` `conformance/`",
			"Not paths: `a/b` `go test ./...` `x.y/z` `backends/tieredstore.New(l1, l2)` `[docs/nope](x)`",
			"See " + outside + "/SPEC.md.",
			"```",
			"[in a block](nope.md) `backends/gone`",
			"```",
		}, "\n"),
		"docs/guide.md":          "# Guide\n\n## Rules\n\n<a id=\"custom\"></a>\n[back](../README.md#example) [custom](#custom)\n",
		"docs/pic.png":           "\x89PNG\x00" + outside,
		"backends/mem/mem.go":    "package mem\n",
		"internal/x/notes.txt":   "no references here\n",
		"internal/x/mention.txt": "see " + outside + "\n",
	}
	var names []string
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	slices.Sort(names)

	var got []string
	for _, p := range newRepo(root, names).check() {
		got = append(got, p.String())
	}
	want := []string{
		`README.md:4: link "docs/nope.md": docs/nope.md is not in the repository`,
		`README.md:5: link "docs/guide.md#nope": docs/guide.md has no heading or anchor "#nope"`,
		`README.md:6: link "#nope": README.md has no heading or anchor "#nope"`,
		`README.md:7: link "../x.md" points outside the repository`,
		`README.md:8: link "docs/nope.png": docs/nope.png is not in the repository`,
		`README.md:9: link "docs/nope.svg": docs/nope.svg is not in the repository`,
		`README.md:10: link "docs/gone.md": docs/gone.md is not in the repository`,
		"README.md:12: `backends/gone`: backends/gone is not in the repository",
		"README.md:12: `example.com/m/metrics/x`: metrics/x is not in the repository",
		"README.md:12: `conformance/`: conformance is not in the repository",
		"README.md:14: mentions " + outside + ", which is outside the repository",
		"internal/x/mention.txt:1: mentions " + outside + ", which is outside the repository",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRepository: the repository itself passes (make test also runs the command).
func TestRepository(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	files, err := listFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range newRepo(root, files).check() {
		t.Error(p)
	}
}
