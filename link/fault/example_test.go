package fault_test

import (
	"fmt"

	"github.com/ustack/ustack/link"
	"github.com/ustack/ustack/link/fault"
)

// A link that loses a fifth of the frames one end sends, the same fifth
// for the same seed every run.
func ExampleNew() {
	a, _ := link.NewPipe(link.PipeOptions{QueueLen: 1000})
	lossy := fault.New(a, fault.Config{Seed: 1, Tx: fault.Impairment{Drop: 0.2}})
	defer lossy.Close()

	frame := make([]byte, 60)
	for range 1000 {
		lossy.WriteFrame(frame)
	}
	fmt.Println("dropped:", lossy.Stats().Tx.Dropped, "passed on:", a.Stats().TxFrames)
	// Output: dropped: 207 passed on: 793
}
