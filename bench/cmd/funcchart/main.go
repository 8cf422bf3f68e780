// Command funcchart draws the function API's instruction counts (the Markdown table that
// scripts/callgrind.sh prints, read from stdin) as a bar chart of each contender's instructions per op
// against otter v2's, one group of bars per benchmark, with the goals as reference lines:
//
//	scripts/callgrind.sh | tee /tmp/instr.md
//	cd bench && go run ./cmd/funcchart -out ../docs/bench-function-api.png < /tmp/instr.md
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"io"
	"log"
	"os"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// reference is the contender every bar is divided by.
const reference = "otter"

// benchmarks are the table's columns after the contender's name, in order.
var benchmarks = []string{"hit, 1,024 keys", "hit, 65,536 keys", "GetMany(100, 80 cached)"}

var colors = map[string]color.Color{
	"stampede-loader": color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	"stampede-do":     color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	"otter":           color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	"sturdyc":         color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
	"floor":           color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
}

func main() {
	out := flag.String("out", "../docs/bench-function-api.png", "PNG to write")
	title := flag.String("title", "", "a line under the title (the run: date, commit)")
	flag.Parse()
	names, rows, err := parse(os.Stdin)
	if err != nil {
		log.Fatal(err)
	}
	if err := draw(names, rows, *title, *out); err != nil {
		log.Fatal(err)
	}
}

// parse reads the table's rows: contender -> instructions per op of each benchmark (0 when "–").
func parse(r io.Reader) ([]string, map[string][]float64, error) {
	var names []string
	rows := map[string][]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		cells := strings.Split(strings.Trim(strings.TrimSpace(sc.Text()), "|"), "|")
		if len(cells) != 1+len(benchmarks) {
			continue
		}
		name := strings.TrimSpace(cells[0])
		if _, known := colors[name]; !known {
			continue // the header, the rule, anything else
		}
		vals := make([]float64, len(benchmarks))
		for i, c := range cells[1:] {
			v, err := strconv.ParseFloat(strings.ReplaceAll(strings.TrimSpace(c), ",", ""), 64)
			if err == nil && v > 0 {
				vals[i] = v
			}
		}
		names = append(names, name)
		rows[name] = vals
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	if rows[reference] == nil {
		return nil, nil, errors.New("funcchart: the table has no row for " + reference)
	}
	return names, rows, nil
}

// draw writes the chart: per benchmark, each contender's instructions per op divided by otter's.
func draw(names []string, rows map[string][]float64, subtitle, out string) error {
	p := plot.New()
	p.Title.Text = "Function API: instructions per op, relative to otter v2 (callgrind)"
	if subtitle != "" {
		p.Title.Text += "\n" + subtitle
	}
	p.Y.Label.Text = "× otter v2's instructions per op"
	p.Add(plotter.NewGrid())
	width := vg.Points(14)
	ref := rows[reference]
	for i, name := range names {
		vals := make(plotter.Values, len(benchmarks))
		for j := range benchmarks {
			if ref[j] > 0 {
				vals[j] = rows[name][j] / ref[j]
			}
		}
		bars, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return err
		}
		bars.Color = colors[name]
		bars.LineStyle.Width = 0
		bars.Offset = width * vg.Length(float64(i)-float64(len(names)-1)/2)
		p.Add(bars)
		p.Legend.Add(name, bars)
	}
	// The goals, each over the benchmarks it is set for: a hit (groups 0 and 1), GetMany (group 2).
	for _, g := range []struct {
		label    string
		at       float64
		from, to int
		dashes   []vg.Length
	}{
		{"goal: Loader hit ≤ 2×", 2, 0, 1, []vg.Length{vg.Points(4), vg.Points(3)}},
		{"goal: Do hit ≤ 2.5×", 2.5, 0, 1, []vg.Length{vg.Points(1), vg.Points(2)}},
		{"goal: GetMany ≤ 1.5×", 1.5, 2, 2, []vg.Length{vg.Points(4), vg.Points(3)}},
	} {
		l, err := plotter.NewLine(plotter.XYs{{X: float64(g.from) - 0.45, Y: g.at}, {X: float64(g.to) + 0.45, Y: g.at}})
		if err != nil {
			return err
		}
		l.Color = color.Gray{Y: 0x50}
		l.Dashes = g.dashes
		p.Add(l)
		p.Legend.Add(g.label, l)
	}
	p.NominalX(benchmarks...)
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	if err := p.Save(18*vg.Centimeter, 11*vg.Centimeter, out); err != nil {
		return fmt.Errorf("funcchart: %w", err)
	}
	return nil
}
