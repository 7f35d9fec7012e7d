//go:build !linux

package link

import (
	"sync/atomic"

	"github.com/ustack/ustack/ip"
	"github.com/ustack/ustack/link/vnet"
)

// vnetDev exists on Linux only; elsewhere devices open through water.
type vnetDev struct {
	ofl   Offloads
	plain plainer
	drops atomic.Uint64
}

func (v *vnetDev) readFrame(b []byte) (int, error)              { return 0, errNoTAP }
func (v *vnetDev) readRaw(b []byte, o *ip.Offload) (int, error) { return 0, errNoTAP }
func (v *vnetDev) readFrames(buf []byte, lens []int, ofl []ip.Offload, maxLen int) (int, error) {
	return 0, errNoTAP
}
func (v *vnetDev) write(b []byte, h *vnet.Header) error { return errNoTAP }

func (v *vnetDev) refuseOffloads() error { return errNoTAP }
