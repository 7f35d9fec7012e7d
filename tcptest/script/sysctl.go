package script

import (
	"strings"

	"github.com/ustack/ustack/tcp"
)

// sysctl carries out a shell command of the form
// `sysctl [-q] [-w] net.ipv4.tcp_syncookies=N`, the one Linux setting a
// script can change in ustack: the SYN cookie mode of listeners created
// afterwards (N = 0 never, 1 when the SYN queue is full, 2 always, as
// Linux's net.ipv4.tcp_syncookies). It reports whether it understood the
// command; anything else is skipped with a note.
func (r *runner) sysctl(cmd string) bool {
	f := strings.Fields(cmd)
	if len(f) < 2 || f[0] != "sysctl" {
		return false
	}
	var mode tcp.SYNCookieMode
	set := false
	for _, a := range f[1:] {
		switch a {
		case "-q", "-w":
			continue
		case "net.ipv4.tcp_syncookies=0":
			mode = tcp.SYNCookiesNever
		case "net.ipv4.tcp_syncookies=1":
			mode = tcp.SYNCookiesWhenFull
		case "net.ipv4.tcp_syncookies=2":
			mode = tcp.SYNCookiesAlways
		default:
			return false
		}
		set = true
	}
	if set {
		r.st.Config().SYNCookies = mode
	}
	return set
}
