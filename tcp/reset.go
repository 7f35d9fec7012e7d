package tcp

// Reset answers a segment that reached no connection and no listener
// (RFC 9293 §3.10.7.1, CLOSED state): "An incoming segment containing a RST
// is discarded. An incoming segment not containing a RST causes a RST to be
// sent in response. ... If the ACK bit is off, sequence number zero is
// used, <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>. If the ACK bit is on,
// <SEQ=SEG.ACK><CTL=RST>". t is from our side: Local is the segment's
// destination. seg must come from ParseSegment.
func Reset(t Tuple, seg Segment, out Output) {
	if len(seg) < HeaderLen {
		return
	}
	f := seg.Flags()
	if f.Has(FlagRST) {
		return
	}
	h := Header{SrcPort: t.Local.Port(), DstPort: t.Remote.Port()}
	if f.Has(FlagACK) {
		h.Seq, h.Flags = seg.Ack(), FlagRST
	} else {
		h.Ack, h.Flags = seg.Seq().Add(seg.Len()), FlagRST|FlagACK
	}
	buf, off := out.Buffer(HeaderLen)
	b := buf[off : off+HeaderLen]
	h.Encode(b)
	SetChecksum(b, t.Local.Addr(), t.Remote.Addr())
	out.Send(t, buf, off)
}
