package link

// WaitBlocked exports waitBlocked to the external test package.
var WaitBlocked = waitBlocked

// RefuseKernelOffloads makes t's device as if the kernel had refused
// TUNSETOFFLOAD when it was opened (an older kernel; ethtool -K off): the
// kernel is told to hand over no super-segments and no partial checksums,
// and Offloads reports so, as openVnet does when the ioctl fails.
func RefuseKernelOffloads(t *TAP) error {
	return t.dev.v.refuseOffloads()
}
