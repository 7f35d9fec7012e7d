package pcap_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/pcap"
)

// Record what one end of a pipe sends and receives; the file opens in
// tcpdump (tcpdump -r capture.pcap -nn -e) and Wireshark.
func ExampleNew() {
	dir, _ := os.MkdirTemp("", "pcap-example")
	defer os.RemoveAll(dir)
	f, err := os.Create(filepath.Join(dir, "capture.pcap"))
	if err != nil {
		panic(err)
	}
	defer f.Close()

	a, b := link.NewPipe(link.PipeOptions{})
	ep, err := pcap.New(a, f, pcap.Options{})
	if err != nil {
		panic(err)
	}
	defer ep.Close()

	frame := make([]byte, 60)
	link.PutEthernetHeader(frame, b.HardwareAddr(), a.HardwareAddr(), 0x88b5)
	ep.WriteFrame(frame)
	fmt.Println("records:", ep.Stats().Records)
	// Output: records: 1
}
