package tcp

import "fmt"

func (c *Conn) debugString() string {
	dataEnd := c.sndHead.Add(uint32(c.sndBuf.Len()))
	return fmt.Sprintf("rec=%d q.n=%d lost=%d sacked=%d retr=%d pipe=%d budget=%d flight=%d wnd=%d unsent=%d cwnd=%d finSent=%v shut=%v frto=%d timers=%+v", c.recovery, c.q.n(), c.q.lost, c.q.sacked, c.q.retrans, c.pipe(), c.budget(), c.snd.NXT.Sub(c.snd.UNA), c.snd.WND, dataEnd.Sub(c.snd.NXT), c.ctrl().Window(), c.finSent, c.shutWrite, c.frto, c.timer)
}
