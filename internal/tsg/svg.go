package tsg

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// DrawOptions tunes WriteSVG.
type DrawOptions struct {
	// Width and Height of the picture in pixels; zero means 1280 by 800.
	Width, Height int
	// From and To limit the time axis (since Graph.Start); To zero means
	// the end of the connection.
	From, To time.Duration
}

// Picture layout, in pixels. The top margin grows with the lines of the
// summary, the bottom one with the rows of the legend.
const (
	marginLeft  = 80
	marginRight = 24
	textLeft    = 16  // where the title, summary and legend begin
	charWidth   = 6.8 // a generous average advance of the 12 px font
	titleChar   = 9.6 // the same for the 16 px bold title
	lineHeight  = 16
	legendItemW = 185 // room for a legend sample and its longest label
	legendRowH  = 22
	minWidth    = 640
	minHeight   = 400
	maxSide     = 20000
)

// Colours and glyphs of the marks, which the legend repeats.
type style struct {
	label  string
	stroke string
	width  float64
	dash   string
	minLen float64 // shortest bar drawn, in pixels
}

var (
	// Retransmissions are at least 4 px tall, so that one segment in a
	// picture of megabytes still shows as a red mark.
	styleNew     = style{"data sent", "#000000", 1.3, "", 1}
	styleRetx    = style{"retransmission", "#e00000", 2.2, "", 4}
	styleRTO     = style{"RTO-like retransmission", "#8a2be2", 2.2, "", 4}
	styleTLP     = style{"TLP-like probe", "#ff8c00", 2.2, "", 4}
	styleDup     = style{"network duplicate", "#a0a0a0", 1.3, "", 1}
	styleAck     = style{"ACK", "#00a000", 1.2, "", 0}
	styleWindow  = style{"receive window edge", "#b8a000", 1.2, "", 0}
	styleSACK    = style{"SACK block", "#1e64ff", 2.6, "", 2}
	styleDSACK   = style{"D-SACK block", "#ff00c8", 3.4, "", 3}
	styleTimeout = style{"", "#8a2be2", 0.8, "4 3", 0}
)

// errDraw begins the error for an unusable DrawOptions field.
const errDraw = "tsg: bad draw option: "

// WriteSVG draws the graph as a self-contained SVG document (no scripts,
// no external resources). Marks that fall on the same pixel column and
// overlap are merged, so a connection of millions of segments still makes
// a picture of a few megabytes at most.
func (g *Graph) WriteSVG(w io.Writer, opts DrawOptions) error {
	if opts.Width == 0 {
		opts.Width = 1280
	}
	if opts.Height == 0 {
		opts.Height = 800
	}
	if opts.Width < minWidth || opts.Width > maxSide || opts.Height < minHeight || opts.Height > maxSide {
		return fmt.Errorf("%ssize %dx%d: width and height must be %d..%d and %d..%d pixels",
			errDraw, opts.Width, opts.Height, minWidth, maxSide, minHeight, maxSide)
	}
	from, to := opts.From, opts.To
	if to == 0 {
		to = g.Duration
	}
	if from < 0 || to < from {
		return fmt.Errorf("%stime range %v to %v", errDraw, from, to)
	}
	if to == from {
		to = from + time.Millisecond
	}
	p := newPlot(g, opts.Width, opts.Height, from, to)
	bw := bufio.NewWriter(w)
	p.w = bw
	p.draw()
	return bw.Flush()
}

type plot struct {
	g            *Graph
	w            *bufio.Writer
	width        int
	height       int
	from, to     time.Duration
	lo, hi       int64 // sequence range
	x0, x1       float64
	y0, y1       float64 // y0 is the bottom (lo), y1 the top (hi)
	clipped      bool    // the window line leaves the top
	title        string
	summary      []string // lines under the title
	legendPerRow int
}

func newPlot(g *Graph, width, height int, from, to time.Duration) *plot {
	p := &plot{g: g, width: width, height: height, from: from, to: to}
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	see := func(v int64) { lo, hi = min(lo, v), max(hi, v) }
	var wmax int64 = math.MinInt64
	for _, d := range g.Data {
		if d.T >= from && d.T <= to {
			see(d.Seq)
			see(d.End)
		}
	}
	for _, k := range g.Acks {
		if k.T >= from && k.T <= to {
			see(k.Ack)
			wmax = max(wmax, k.Window)
		}
	}
	for _, b := range g.SACKs {
		if b.T >= from && b.T <= to {
			see(b.Left)
			see(b.Right)
		}
	}
	if lo > hi {
		lo, hi = 0, 1
	}
	// The window edge joins the range unless it would squash the data to
	// less than half the height; beyond that it is clipped at the top.
	if wmax > hi {
		if wmax-lo <= 2*(hi-lo)+1 {
			hi = wmax
		} else {
			p.clipped = true
		}
	}
	// Room below, and above for the RTO and TLP glyphs over the top bars.
	span := max(hi-lo, 1)
	p.lo, p.hi = lo-span/50, hi+span/25+1
	if p.lo < 0 && lo >= 0 {
		p.lo = 0
	}

	// Layout: title, summary lines, plot, axis labels, legend rows.
	p.title = fmt.Sprintf("%s \u2192 %s", g.Sender, g.Receiver)
	if from > 0 || to < g.Duration {
		p.title += fmt.Sprintf(" from %s to %s", durLabel(from), durLabel(to))
	}
	if more := ": time-sequence graph"; float64(len(p.title)+len(more))*titleChar < float64(width-2*textLeft) {
		p.title += more
	}
	p.summary = wrap(p.summaryParts(), int(float64(width-2*textLeft)/charWidth))
	p.legendPerRow = max(1, (width-2*textLeft)/legendItemW)
	rows := (len(legendItems) + p.legendPerRow - 1) / p.legendPerRow
	p.x0, p.x1 = marginLeft, float64(width-marginRight)
	p.y1 = float64(44 + lineHeight*len(p.summary))
	p.y0 = float64(height - 56 - legendRowH*rows)
	return p
}

// wrap joins parts with " · " into lines of at most n characters (a part
// longer than n gets a line of its own).
func wrap(parts []string, n int) []string {
	var lines []string
	cur := ""
	for _, part := range parts {
		switch {
		case cur == "":
			cur = part
		case len([]rune(cur))+3+len([]rune(part)) <= n:
			cur += " \u00b7 " + part
		default:
			lines = append(lines, cur)
			cur = part
		}
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

func (p *plot) x(t time.Duration) float64 {
	return p.x0 + (p.x1-p.x0)*float64(t-p.from)/float64(p.to-p.from)
}

func (p *plot) y(v int64) float64 {
	return p.y0 - (p.y0-p.y1)*float64(v-p.lo)/float64(p.hi-p.lo)
}

func (p *plot) visible(t time.Duration) bool { return t >= p.from && t <= p.to }

func (p *plot) printf(format string, args ...any) { fmt.Fprintf(p.w, format, args...) }

// f formats a coordinate with one decimal.
func f(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

func (p *plot) draw() {
	g := p.g
	p.printf(`<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Arial, Helvetica, sans-serif" font-size="12">
`, p.width, p.height, p.width, p.height)
	p.printf("<title>%s</title>\n", esc(fmt.Sprintf("%s \u2192 %s: time-sequence graph", g.Sender, g.Receiver)))
	p.printf(`<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", p.width, p.height)
	p.printf(`<text x="%d" y="24" font-size="16" font-weight="bold">%s</text>`+"\n", textLeft, esc(p.title))
	for i, l := range p.summary {
		p.printf(`<text x="%d" y="%d" fill="#333333">%s</text>`+"\n", textLeft, 42+lineHeight*i, esc(l))
	}
	p.printf(`<defs><clipPath id="plot"><rect x="%s" y="%s" width="%s" height="%s"/></clipPath></defs>`+"\n",
		f(p.x0), f(p.y1), f(p.x1-p.x0), f(p.y0-p.y1))
	p.axes()
	p.printf(`<g clip-path="url(#plot)" fill="none" stroke-linecap="butt">` + "\n")
	p.lines()
	p.bars()
	p.printf("</g>\n")
	p.legend()
	p.printf("</svg>\n")
}

// summaryParts are the facts under the title.
func (p *plot) summaryParts() []string {
	g := p.g
	parts := []string{
		fmt.Sprintf("%s sent in %d segments over %s", seqLabel(g.Bytes), g.DataSegments, durLabel(g.Duration)),
		fmt.Sprintf("%d retransmissions (%d RTO-like, %d TLP-like)", g.Retransmissions, g.RTOs, g.TLPs),
		fmt.Sprintf("%d SACK blocks (%d D-SACK)", g.SACKBlocks, g.DSACKBlocks),
	}
	if g.Duplicates > 0 {
		parts = append(parts, fmt.Sprintf("%d network duplicates", g.Duplicates))
	}
	if g.RTT > 0 {
		parts = append(parts, "RTT \u2248 "+durLabel(g.RTT))
	}
	if g.WindowScaleKnown {
		parts = append(parts, fmt.Sprintf("window scale %d", g.WindowScale))
	} else {
		parts = append(parts, "window scale unknown (no SYNs): windows drawn unscaled")
	}
	if !g.SYN {
		parts = append(parts, "no SYN: sequence relative to the first seen")
	}
	if g.BadChecksums > 0 {
		parts = append(parts, fmt.Sprintf("%d segments with bad checksums left out", g.BadChecksums))
	}
	if p.clipped {
		parts = append(parts, "window edge runs above the top")
	}
	return parts
}

func (p *plot) axes() {
	p.printf(`<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="#000000" stroke-width="1"/>`+"\n",
		f(p.x0), f(p.y1), f(p.x1-p.x0), f(p.y0-p.y1))
	// Time axis.
	step := niceStep(float64(p.to-p.from), 10)
	unit, div := timeUnit(step)
	dec := decimals(step / div)
	var grid strings.Builder
	for v := math.Ceil(float64(p.from)/step) * step; v <= float64(p.to)+step/1e6; v += step {
		x := p.x(time.Duration(v))
		fmt.Fprintf(&grid, "M%s %sV%s", f(x), f(p.y0), f(p.y1))
		p.printf(`<text x="%s" y="%s" text-anchor="middle">%s</text>`+"\n", f(x), f(p.y0+16), tick(v/div, dec))
	}
	p.printf(`<text x="%s" y="%s" text-anchor="middle">time (%s) since %s</text>`+"\n", f((p.x0+p.x1)/2), f(p.y0+34), unit,
		esc(p.g.Start.Format("2006-01-02 15:04:05.000000 UTC")))
	// Sequence axis.
	sstep := niceStep(float64(p.hi-p.lo), 8)
	sunit, sdiv := seqUnit(sstep)
	sdec := decimals(sstep / sdiv)
	for v := math.Ceil(float64(p.lo)/sstep) * sstep; v <= float64(p.hi); v += sstep {
		y := p.y(int64(v))
		fmt.Fprintf(&grid, "M%s %sH%s", f(p.x0), f(y), f(p.x1))
		p.printf(`<text x="%s" y="%s" text-anchor="end">%s</text>`+"\n", f(p.x0-6), f(y+4), tick(v/sdiv, sdec))
	}
	p.printf(`<text transform="translate(%d %s) rotate(-90)" text-anchor="middle">relative sequence number (%s)</text>`+"\n",
		18, f((p.y0+p.y1)/2), sunit)
	p.printf(`<path d="%s" stroke="#e4e4e4" stroke-width="1" fill="none"/>`+"\n", grid.String())
}

// tick formats a tick value, without the "-0" that rounding can leave.
func tick(v float64, dec int) string {
	s := strconv.FormatFloat(v, 'f', dec, 64)
	if strings.Trim(s, "-0.") == "" {
		return strings.TrimPrefix(s, "-")
	}
	return s
}

// niceStep returns a 1, 2 or 5 times a power of ten step that cuts span
// into about n parts.
func niceStep(span float64, n int) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

// decimals is how many decimals a tick step needs.
func decimals(step float64) int {
	if step >= 1 {
		return 0
	}
	return min(int(math.Ceil(-math.Log10(step)-1e-9)), 9)
}

func timeUnit(step float64) (string, float64) {
	switch {
	case step >= float64(time.Second):
		return "s", float64(time.Second)
	case step >= float64(time.Millisecond):
		return "ms", float64(time.Millisecond)
	case step >= float64(time.Microsecond):
		return "\u00b5s", float64(time.Microsecond)
	}
	return "ns", 1
}

func seqUnit(step float64) (string, float64) {
	switch {
	case step >= 1e6:
		return "MB", 1e6
	case step >= 1e3:
		return "KB", 1e3
	}
	return "bytes", 1
}

func seqLabel(n int64) string {
	switch {
	case n >= 1e6:
		return fmt.Sprintf("%.2f MB", float64(n)/1e6)
	case n >= 10e3:
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d bytes", n)
}

func durLabel(d time.Duration) string {
	switch {
	case d == 0:
		return "0 s"
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.3f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.3g ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.3g \u00b5s", float64(d)/1e3)
}
