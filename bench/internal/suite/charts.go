package suite

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/seed-a1426414/stampede/bench/internal/units"
)

// Chart file names, under the docs directory.
const (
	chartRuns = "bench-handler-runs.png"
	chartWall = "bench-wall-time.png"
)

var configColors = map[string]color.Color{
	cfgNone:      color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	cfgFloor:     color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	cfgGoChi:     color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
	cfgMemory:    color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	cfgRedis:     color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	cfgRedisSlow: color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
}

var (
	lightGray = color.Gray{Y: 0xc8}
	darkGray  = color.Gray{Y: 0x30}
)

// drawCharts writes two charts over the worker counts (log scale): origin handler runs per configuration
// against the distinct keys, and wall time (log scale) per configuration against the lower bound and a
// cost-free middleware.
func drawCharts(rows []traceRow, dir string) error {
	var cfgs []string
	byCfg := map[string][]traceRow{}
	for _, r := range rows {
		if byCfg[r.config] == nil {
			cfgs = append(cfgs, r.config)
		}
		byCfg[r.config] = append(byCfg[r.config], r)
	}
	first := byCfg[cfgs[0]]
	var workers []int
	for _, r := range first {
		workers = append(workers, r.res.Workers)
	}
	subtitle := fmt.Sprintf("%s requests, Zipf(s=1.001, v=10) keys, origin sleeps %v",
		units.Group(int64(first[0].res.Requests)), first[0].res.Sleep)

	runs := newChart("Origin handler runs\n"+subtitle, "concurrent workers", "handler runs", workers)
	runs.Y.Scale = plot.LinearScale{} // a few distinct counts: a linear axis from zero reads best
	runs.Y.Tick.Marker = groupedTicks{}
	wall := newChart("Wall time\n"+subtitle, "concurrent workers", "wall time (s)", workers)

	// The references first, wide and light, so that a configuration on top of one stays visible.
	var distinct, bound, ideal plotter.XYs
	for _, r := range first {
		distinct = append(distinct, plotter.XY{X: float64(r.res.Workers), Y: float64(r.res.Distinct)})
		bound = append(bound, plotter.XY{X: float64(r.res.Workers), Y: r.res.LowerBound().Seconds()})
		ideal = append(ideal, plotter.XY{X: float64(r.res.Workers), Y: r.res.Ideal.Seconds()})
	}
	if err := addReference(runs, "distinct keys: the fewest runs possible", distinct, lightGray, nil); err != nil {
		return err
	}
	if err := addReference(wall, "lower bound: distinct keys × sleep / workers", bound, lightGray, nil); err != nil {
		return err
	}
	if err := addReference(wall, "a cost-free middleware (simulated)", ideal, darkGray, []vg.Length{vg.Points(5), vg.Points(3)}); err != nil {
		return err
	}

	for i, cfg := range cfgs {
		var runPts, wallPts plotter.XYs
		for _, r := range byCfg[cfg] {
			runPts = append(runPts, plotter.XY{X: float64(r.res.Workers), Y: float64(r.res.Runs)})
			wallPts = append(wallPts, plotter.XY{X: float64(r.res.Workers), Y: r.res.Wall.Seconds()})
		}
		if err := addSeries(runs, cfg, runPts, configColors[cfg], i); err != nil {
			return err
		}
		if err := addSeries(wall, cfg, wallPts, configColors[cfg], i); err != nil {
			return err
		}
	}
	var most float64
	for _, r := range rows {
		most = math.Max(most, float64(r.res.Runs))
	}
	runs.Y.Min, runs.Y.Max = 0, most*1.5 // room above for the legend
	fitY(wall, rows, func(r traceRow) []float64 { return []float64{r.res.Wall.Seconds(), r.res.LowerBound().Seconds()} })

	if err := runs.Save(16*vg.Centimeter, 11*vg.Centimeter, filepath.Join(dir, chartRuns)); err != nil {
		return err
	}
	return wall.Save(16*vg.Centimeter, 11*vg.Centimeter, filepath.Join(dir, chartWall))
}

func newChart(title, x, y string, workers []int) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.X.Scale = plot.LogScale{}
	p.Y.Scale = plot.LogScale{}
	var ticks []plot.Tick
	for _, w := range workers {
		ticks = append(ticks, plot.Tick{Value: float64(w), Label: units.Group(int64(w))})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Tick.Marker = logTicks{}
	p.X.Min, p.X.Max = float64(workers[0])/1.5, float64(workers[len(workers)-1])*1.5
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = false
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	return p
}

func addSeries(p *plot.Plot, name string, pts plotter.XYs, c color.Color, i int) error {
	l, s, err := plotter.NewLinePoints(pts)
	if err != nil {
		return err
	}
	l.Color = c
	l.Width = vg.Points(1.5)
	s.Color = c
	s.Shape = shapes[i%len(shapes)]
	s.Radius = vg.Points(3.5)
	p.Add(l, s)
	p.Legend.Add(name, l, s)
	return nil
}

// addReference draws a line that is not a measurement: wide, grey, without points.
func addReference(p *plot.Plot, name string, pts plotter.XYs, c color.Color, dashes []vg.Length) error {
	l, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	l.Color = c
	l.Width = vg.Points(5)
	if dashes != nil {
		l.Width = vg.Points(1.5)
		l.Dashes = dashes
	}
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

var shapes = []draw.GlyphDrawer{draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.CrossGlyph{},
	draw.RingGlyph{}, draw.PlusGlyph{}}

// fitY sets the Y range to whole decades around every value, with room above for the legend.
func fitY(p *plot.Plot, rows []traceRow, values func(traceRow) []float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range rows {
		for _, v := range values(r) {
			if v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	p.Y.Min = math.Pow(10, math.Floor(math.Log10(lo)))
	p.Y.Max = math.Pow(10, math.Ceil(math.Log10(hi))+1) // a decade of headroom for the legend
}

// groupedTicks are plot.DefaultTicks labelled with thousands separators.
type groupedTicks struct{}

func (groupedTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = units.Group(int64(ticks[i].Value))
		}
	}
	return ticks
}

// logTicks labels each decade, and 2 and 5 within it, in plain numbers.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		d := math.Pow(10, e)
		for _, m := range []float64{1, 2, 5} {
			v := m * d
			if v < lo || v > hi {
				continue
			}
			label := ""
			if m == 1 || hi/lo < 1e4 {
				label = strconv.FormatFloat(v, 'g', -1, 64)
				if v >= 1000 {
					label = units.Group(int64(v))
				}
			}
			ticks = append(ticks, plot.Tick{Value: v, Label: label})
		}
	}
	return ticks
}
