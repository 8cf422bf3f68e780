package suite

import (
	"bytes"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede/bench/internal/hit"
	"github.com/seed-a1426414/stampede/bench/internal/trace"
)

// The adapter is outside the module's packages, so go vet and go build never see it: check at least
// that it is a formatted main package that plugs go-chi/stampede into peers and runs the suite.
func TestAdapterSource(t *testing.T) {
	formatted, err := format.Source(adapterSource)
	if err != nil {
		t.Fatalf("adapter: %v", err)
	}
	if !bytes.Equal(formatted, adapterSource) {
		t.Error("adapter: not gofmt-formatted")
	}
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", adapterSource, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	if f.Name.Name != "main" {
		t.Errorf("adapter: package %s, want main", f.Name.Name)
	}
	imports := map[string]bool{}
	for _, i := range f.Imports {
		p, _ := strconv.Unquote(i.Path.Value)
		imports[p] = true
	}
	for _, want := range []string{goChiModule, benchModule + "/internal/peers", benchModule + "/internal/suite"} {
		if !imports[want] {
			t.Errorf("adapter: does not import %s", want)
		}
	}
	if !strings.HasPrefix(adapterModule, benchModule+"/") {
		t.Errorf("adapter module %s is not under %s: it could not import internal packages", adapterModule, benchModule)
	}
}

func TestProcCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	d, err := procCPU(os.Getpid())
	if err != nil || d < 0 {
		t.Fatalf("procCPU: %v, %v", d, err)
	}
}

func TestWrkCPUAdded(t *testing.T) {
	w := &wrkResult{runs: []wrkRun{
		{route: wrkBare, rps: 100, requests: 1000, cpu: 10 * time.Millisecond},
		{route: wrkFloor, rps: 90, requests: 1000, cpu: 12 * time.Millisecond},
		{route: wrkFloor, rps: 70, requests: 1000, cpu: 12 * time.Millisecond},
		{route: wrkBare, rps: 100, requests: 1000, cpu: 10 * time.Millisecond},
	}}
	if r := w.ratioOf(wrkFloor); r != 0.8 {
		t.Errorf("ratio %v, want 0.8", r)
	}
	if d, ok := w.cpuAdded(wrkFloor); !ok || d != 2*time.Microsecond {
		t.Errorf("cpu added %v %v, want 2µs", d, ok)
	}
	w.runs[0].cpu = -1
	if _, ok := w.cpuAdded(wrkFloor); ok {
		t.Error("cpu added known with an unknown bare run")
	}
}

// The report renders with and without go-chi/stampede, and says when it was not measured.
func TestPeerSection(t *testing.T) {
	rep := &report{opts: options{workers: []int{100}, hitRounds: 1}}
	for _, size := range hit.Sizes {
		for _, v := range []string{hitBare, hitFloor, hitGoChi, hitMem} {
			rep.hits = append(rep.hits, hitRow{variant: v, size: size, nsPerOp: 100, ratio: 1.5, allocsPerOp: 9})
		}
	}
	for _, c := range []string{cfgNone, cfgFloor, cfgGoChi, cfgMemory} {
		rep.traces = append(rep.traces, traceRow{config: c, res: trace.Result{Workers: 100, Runs: 10, Distinct: 10, Wall: time.Second}})
	}
	rep.do = []hitRow{{variant: doFloor, nsPerOp: 20}, {variant: doGoChi, nsPerOp: 200, ratio: 10},
		{variant: doStampede, nsPerOp: 25, ratio: 1.25}}
	var b strings.Builder
	rep.peerSection(&b)
	if !strings.Contains(b.String(), "go-chi/stampede: not measured, pass -gochi DIR") || strings.Contains(b.String(), "stand-in map store)¹") {
		t.Errorf("without go-chi:\n%s", b.String())
	}
	rep.gochi = &goChiCheckout{version: "v0.9.1", about: "test"}
	b.Reset()
	rep.peerSection(&b)
	for _, want := range []string{"| measurement | bare | floor | go-chi/stampede v0.9.1 (stand-in map store)¹ | stampede |",
		"10.00× floor", "1.25× floor", "**stand-in**"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("with go-chi: no %q in\n%s", want, b.String())
		}
	}
}

func TestGoChiSource(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/stampede.go", []byte("package stampede\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/stampede_test.go", []byte("package stampede\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := goChiSource(dir)
	if c.version != "" || !strings.Contains(c.about, "its 1 non-test .go files do not match v0.9.1's") || strings.Contains(c.about, dir) {
		t.Errorf("goChiSource: %+v", c)
	}
}
