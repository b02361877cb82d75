package cache

// SetMaxHeadersBytes lowers the byte bound of a headers list for a test,
// and returns what puts it back.
func SetMaxHeadersBytes(n int64) func() {
	old := maxHeadersBytes
	maxHeadersBytes = n
	return func() { maxHeadersBytes = old }
}
