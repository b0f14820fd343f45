package wsconn

import (
	"bytes"
	"sync"
)

// bufPool recycles the buffers frames are read into and written from.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// GetBuf returns an empty buffer from the pool, for a frame handed to Send, Deliver or Push.
func GetBuf() *bytes.Buffer { return bufPool.Get().(*bytes.Buffer) }

// PutBuf returns a buffer to the pool unless it grew large (a 1 MiB frame should not pin a
// megabyte per idle pool slot). b must not be used afterwards.
func PutBuf(b *bytes.Buffer) {
	if b.Cap() > 64<<10 {
		return
	}
	b.Reset()
	bufPool.Put(b)
}
