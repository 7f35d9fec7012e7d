package tsg

import (
	"fmt"
	"math"
	"strings"
)

// stepLine draws a step function (the ACK line, the window edge) as one
// path. Points that land on the same half-pixel column collapse into one
// vertical move: for a line that only climbs that loses nothing visible.
type stepLine struct {
	b       strings.Builder
	n       int
	lastX   float64
	lastY   float64
	started bool
}

func (s *stepLine) add(x, y float64) {
	x, y = math.Round(x*2)/2, math.Round(y*2)/2
	switch {
	case !s.started:
		fmt.Fprintf(&s.b, "M%s %s", f(x), f(y))
		s.started = true
	case x == s.lastX && y == s.lastY:
		return
	default:
		if x != s.lastX {
			fmt.Fprintf(&s.b, "H%s", f(x))
		}
		if y != s.lastY {
			fmt.Fprintf(&s.b, "V%s", f(y))
		}
	}
	s.lastX, s.lastY = x, y
	s.n++
}

// bars collects the vertical bars of one kind of mark and merges those in
// the same pixel column that overlap or touch.
type bars struct {
	st   style
	col  float64
	open [][2]float64 // bars of the current column: top and bottom y
	b    strings.Builder
	n    int
}

const maxOpen = 8 // distinct bars kept open per column before flushing

func (bs *bars) add(x, top, bottom float64) {
	col := math.Round(x)
	if col != bs.col || len(bs.open) == 0 {
		bs.flush()
		bs.col = col
	}
	if m := bs.st.minLen; bottom-top < m {
		// Keep short marks (a 1-byte probe, one segment among megabytes)
		// visible.
		mid := (top + bottom) / 2
		top, bottom = mid-m/2, mid+m/2
	}
	for i := range bs.open {
		o := &bs.open[i]
		if top <= o[1]+1 && bottom >= o[0]-1 {
			o[0], o[1] = min(o[0], top), max(o[1], bottom)
			return
		}
	}
	if len(bs.open) == maxOpen {
		bs.flush()
	}
	bs.open = append(bs.open, [2]float64{top, bottom})
}

func (bs *bars) flush() {
	for _, o := range bs.open {
		fmt.Fprintf(&bs.b, "M%s %sV%s", f(bs.col), f(o[0]), f(o[1]))
		bs.n++
	}
	bs.open = bs.open[:0]
}

func (bs *bars) path(p *plot, offset float64) {
	bs.flush()
	if bs.n == 0 {
		return
	}
	tr := ""
	if offset != 0 {
		tr = fmt.Sprintf(` transform="translate(%s 0)"`, f(offset))
	}
	p.printf(`<path d="%s" stroke="%s" stroke-width="%s"%s/>`+"\n", bs.b.String(), bs.st.stroke, f(bs.st.width), tr)
}

// markers collects the glyphs drawn at the top of RTO and TLP bars, one
// per pixel cell.
type markers struct {
	seen map[[2]int]bool
	b    strings.Builder
}

func (m *markers) add(x, y float64, glyph func(x, y float64) string) {
	k := [2]int{int(x / 3), int(y / 3)}
	if m.seen == nil {
		m.seen = make(map[[2]int]bool)
	}
	if m.seen[k] {
		return
	}
	m.seen[k] = true
	m.b.WriteString(glyph(x, y))
}

// circle and triangle are the RTO and TLP glyphs, as path data.
func circle(x, y float64) string {
	return fmt.Sprintf("M%s %sa4 4 0 1 0 8 0a4 4 0 1 0 -8 0", f(x-4), f(y-6))
}

func triangle(x, y float64) string {
	return fmt.Sprintf("M%s %sl5 -9h-10z", f(x), f(y-2))
}

func (p *plot) lines() {
	g := p.g
	var ack, win stepLine
	prev := -1
	for i, k := range g.Acks {
		if k.T < p.from {
			prev = i
			continue
		}
		if k.T > p.to {
			break
		}
		if !ack.started && prev >= 0 {
			// Start the lines at the left edge with the last values before it.
			ack.add(p.x0, p.y(g.Acks[prev].Ack))
			win.add(p.x0, p.y(g.Acks[prev].Window))
		}
		x := p.x(k.T)
		ack.add(x, p.y(k.Ack))
		win.add(x, p.y(k.Window))
	}
	if ack.started {
		ack.add(p.x1, ack.lastY)
		win.add(p.x1, win.lastY)
		p.printf(`<path d="%s" stroke="%s" stroke-width="%s"/>`+"\n", win.b.String(), styleWindow.stroke, f(styleWindow.width))
		p.printf(`<path d="%s" stroke="%s" stroke-width="%s"/>`+"\n", ack.b.String(), styleAck.stroke, f(styleAck.width))
	}
}

func (p *plot) bars() {
	g := p.g
	kinds := map[Kind]*bars{
		New:        {st: styleNew},
		Retransmit: {st: styleRetx},
		RTOLike:    {st: styleRTO},
		TLPLike:    {st: styleTLP},
		Duplicate:  {st: styleDup},
	}
	timeouts := bars{st: styleTimeout}
	var rto, tlp markers
	for _, d := range g.Data {
		if !p.visible(d.T) {
			continue
		}
		x, top, bottom := p.x(d.T), p.y(d.End), p.y(d.Seq)
		kinds[d.Kind].add(x, top, bottom)
		switch d.Kind {
		case RTOLike:
			// A faint line down the whole height finds timeouts in a long run.
			timeouts.add(x, p.y1, p.y0)
			rto.add(x, top, circle)
		case TLPLike:
			tlp.add(x, top, triangle)
		}
	}
	sack, dsack := bars{st: styleSACK}, bars{st: styleDSACK}
	for _, b := range g.SACKs {
		if !p.visible(b.T) {
			continue
		}
		x, top, bottom := p.x(b.T), p.y(b.Right), p.y(b.Left)
		if b.DSACK {
			dsack.add(x, top, bottom)
		} else {
			sack.add(x, top, bottom)
		}
	}
	timeouts.flush()
	if timeouts.n > 0 {
		p.printf(`<path d="%s" stroke="%s" stroke-width="%s" stroke-dasharray="%s" opacity="0.5"/>`+"\n",
			timeouts.b.String(), styleTimeout.stroke, f(styleTimeout.width), styleTimeout.dash)
	}
	// SACK blocks sit 2 px right of the ACK that carried them, clear of the
	// data bars; D-SACKs 2 px further.
	sack.path(p, 2)
	dsack.path(p, 4)
	for _, k := range []Kind{Duplicate, New, Retransmit, TLPLike, RTOLike} {
		kinds[k].path(p, 0)
	}
	if rto.b.Len() > 0 {
		p.printf(`<path d="%s" fill="%s" stroke="none"/>`+"\n", rto.b.String(), styleRTO.stroke)
	}
	if tlp.b.Len() > 0 {
		p.printf(`<path d="%s" fill="%s" stroke="none"/>`+"\n", tlp.b.String(), styleTLP.stroke)
	}
}

// legendItem is one entry of the legend.
type legendItem struct {
	st    style
	glyph func(x, y float64) string
	line  bool // a horizontal sample (the step lines) instead of a bar
}

var legendItems = []legendItem{
	{st: styleNew}, {st: styleRetx}, {st: styleRTO, glyph: circle}, {st: styleTLP, glyph: triangle}, {st: styleDup},
	{st: styleAck, line: true}, {st: styleWindow, line: true}, {st: styleSACK}, {st: styleDSACK},
}

// legend draws a sample of every mark below the time axis, in as many
// rows as the width needs.
func (p *plot) legend() {
	colW := float64(p.width-2*textLeft) / float64(p.legendPerRow)
	p.printf(`<g id="legend" fill="none">` + "\n")
	for i, it := range legendItems {
		x := textLeft + colW*float64(i%p.legendPerRow)
		y := p.y0 + 62 + legendRowH*float64(i/p.legendPerRow)
		if it.line {
			p.printf(`<path d="M%s %sh10v-8h10" stroke="%s" stroke-width="%s"/>`, f(x), f(y+2), it.st.stroke, f(it.st.width+0.6))
		} else {
			p.printf(`<path d="M%s %sV%s" stroke="%s" stroke-width="%s"/>`, f(x+10), f(y+4), f(y-7), it.st.stroke, f(it.st.width))
		}
		if it.glyph != nil {
			p.printf(`<path d="%s" fill="%s"/>`, it.glyph(x+10, y-5), it.st.stroke)
		}
		p.printf(`<text x="%s" y="%s" fill="#000000">%s</text>`+"\n", f(x+28), f(y), esc(it.st.label))
	}
	p.printf("</g>\n")
}
