package link_test

import (
	"fmt"

	"github.com/ustack/ustack/link"
)

// Two ends of an in-memory Ethernet link.
func ExampleNewPipe() {
	a, b := link.NewPipe(link.PipeOptions{})
	defer a.Close()

	frame := make([]byte, 60)
	link.PutEthernetHeader(frame, b.HardwareAddr(), a.HardwareAddr(), link.EtherTypeIPv4)
	if err := a.WriteFrame(frame); err != nil {
		panic(err)
	}

	buf := make([]byte, b.MTU()+link.EthernetHeaderLen)
	n, _ := b.ReadFrame(buf)
	e, _ := link.ParseEthernet(buf[:n])
	fmt.Println(e.Source(), ">", e.Destination(), fmt.Sprintf("%#04x", e.Type()), len(e.Payload()))
	// Output: 02:00:00:00:00:01 > 02:00:00:00:00:02 0x0800 46
}
