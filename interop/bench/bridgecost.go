package bench

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// RunBridgeCost measures what the bridge itself costs: the kernel echoing
// and downloading size bytes through ustack over a TAP device ustack
// holds directly, and over the same topology as RunLossy with a bridge
// that impairs nothing (and so starts no delay queue) between the TAP
// device and ustack's pipe. It runs each count times, interleaved, and
// writes the medians and their ratio.
func RunBridgeCost(cfg LossyConfig, count int, w io.Writer) error {
	if err := TAPAvailable(); err != nil {
		return fmt.Errorf("bench: bridge cost: %w", err)
	}
	defer closeLive()
	fmt.Fprintf(w, "bridge cost: kernel client, ustack server, %s per transfer, MTU %d, median of %d interleaved runs\n", FormatSize(cfg.Size), cfg.MTU, count)
	table := [][]string{{"workload", "direct TAP (s)", "through the bridge (s)", "bridge/direct"}}
	var errs []error
	for _, wl := range []string{WorkloadEcho, WorkloadHTTP} {
		var direct, bridged []float64
		for range count {
			d, err := directRun(cfg, wl)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s direct: %w", wl, err))
				continue
			}
			direct = append(direct, d.Seconds())
			r := runLossy(cfg, LossyCase{Name: "none"}, wl, lossyRun{client: StackLinux, server: StackUstack}, cfg.Size)
			if r.err != nil {
				errs = append(errs, fmt.Errorf("%s bridged: %w", wl, r.err))
				continue
			}
			bridged = append(bridged, r.elapsed.Seconds())
		}
		if len(direct) == 0 || len(bridged) == 0 {
			continue
		}
		d, b := median(direct), median(bridged)
		table = append(table, []string{wl, fmt.Sprintf("%.3f", d), fmt.Sprintf("%.3f", b), fmt.Sprintf("%.2f", b/d)})
	}
	writeTable(w, table)
	return errors.Join(append(errs, closeLive())...)
}

// directRun is one transfer of workload from the kernel to ustack on the
// kernel side's TAP device, no bridge between.
func directRun(cfg LossyConfig, workload string) (time.Duration, error) {
	k, err := kernelSide(KernelPrefix, cfg.MTU)
	if err != nil {
		return 0, err
	}
	s, err := newUstack(k.ep, StackPrefix)
	if err != nil {
		k.stop()
		k.ep.Close()
		return 0, errors.Join(err, closeNS(k.ns))
	}
	el, err := transfer(workload, k.peer, ustackPeer{s, StackPrefix.Addr()}, StackPrefix.Addr(), cfg.Size, cfg.Timeout)
	return el, errors.Join(err, k.stop(), s.Close(), closeNS(k.ns))
}
