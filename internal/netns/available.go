package netns

// Available reports, as an error saying what is missing, whether this
// process can create namespaces and TAP devices: root, /dev/net/tun and the
// ip command. Programs such as `ustack demo` call it before they start.
func Available() error { return available() }
