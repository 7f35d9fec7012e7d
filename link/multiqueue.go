package link

// MultiQueue is an Endpoint with several queues, each an Endpoint of its
// own (a TAP or TUN device opened with IFF_MULTI_QUEUE: one file
// descriptor per queue). Each queue is to be read by its own goroutine.
// The kernel picks the queue of a frame it hands over by its own flow
// hash; on a TAP or TUN device (drivers/net/tun.c, tun_select_queue and
// tun_flow_update) it steers a flow to the queue the flow's frames were
// last written on, so a writer that sends each flow's frames on one
// queue gets that flow's frames back on it. Queue(0) is the endpoint
// itself; closing it closes them all.
type MultiQueue interface {
	Endpoint
	// NumQueues is the number of queues, at least 1.
	NumQueues() int
	// Queue returns queue i, 0 <= i < NumQueues().
	Queue(i int) Endpoint
}

var (
	_ MultiQueue = (*TAP)(nil)
	_ MultiQueue = (*TUN)(nil)
)

// NumQueues is the number of the device's queues (MultiQueue).
func (t *TAP) NumQueues() int { return max(len(t.queues), 1) }

// Queue returns queue i of the device (MultiQueue); see Queues.
func (t *TAP) Queue(i int) Endpoint { return t.Queues()[i] }

// NumQueues is the number of the device's queues (MultiQueue).
func (t *TUN) NumQueues() int { return max(len(t.queues), 1) }

// Queue returns queue i of the device (MultiQueue); see Queues.
func (t *TUN) Queue(i int) Endpoint { return t.Queues()[i] }
