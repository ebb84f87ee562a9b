//go:build linux

package netx

import (
	"net"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// Writer writes to one TCP connection without waiting. TryWrite and
// WriteAll must not be called concurrently with each other; Peer may be.
type Writer struct {
	c  *net.TCPConn
	rc syscall.RawConn

	// The callbacks given to rc and their arguments and results, bound once
	// so that a write allocates nothing.
	tryFn, allFn, peerFn func(uintptr) bool
	bufs                 [][]byte
	n                    int
	errno                syscall.Errno
	closed, sent         bool
}

// New returns a Writer for c, which must be a *net.TCPConn, possibly under
// Transparent wrappers.
func New(c net.Conn) (*Writer, error) {
	tc, ok := tcpConn(c)
	if !ok {
		return nil, ErrUnsupported
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	w := &Writer{c: tc, rc: rc}
	w.tryFn, w.allFn, w.peerFn = w.try, w.all, w.peer
	return w, nil
}

// iovBatch is how many buffers one writev takes; more go in further calls.
const iovBatch = 64

// writevAt writes bufs from byte off of bufs[i] on, once, taking at most
// iovBatch buffers: it returns the bytes written and the bytes it offered.
// EAGAIN is (0, want, 0).
func writevAt(fd uintptr, bufs [][]byte, i, off int) (n, want int, errno syscall.Errno) {
	var iov [iovBatch]syscall.Iovec
	k := 0
	for ; i < len(bufs) && k < iovBatch; i++ {
		b := bufs[i][off:]
		off = 0
		if len(b) == 0 {
			continue
		}
		iov[k].Base = &b[0]
		iov[k].SetLen(len(b))
		want += len(b)
		k++
	}
	if k == 0 {
		return 0, 0, 0
	}
	for {
		r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(k))
		switch e {
		case 0:
			return int(r), want, 0
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, want, 0
		default:
			return 0, want, e
		}
	}
}

// advance moves (i, off) n bytes forward in bufs.
func advance(bufs [][]byte, i, off, n int) (int, int) {
	for n > 0 && i < len(bufs) {
		if left := len(bufs[i]) - off; n >= left {
			n -= left
			i, off = i+1, 0
		} else {
			off += n
			n = 0
		}
	}
	return i, off
}

// write writes bufs until done or until writev writes less than offered;
// bufs is not modified.
func write(fd uintptr, bufs [][]byte) (n int, full bool, errno syscall.Errno) {
	i, off := 0, 0
	for i < len(bufs) {
		m, want, e := writevAt(fd, bufs, i, off)
		if e != 0 {
			return n, false, e
		}
		if want == 0 {
			break
		}
		n += m
		if m < want {
			return n, true, 0
		}
		i, off = advance(bufs, i, off, m)
	}
	return n, false, 0
}

// TryWrite writes as much of bufs as the socket takes now, never waiting,
// and returns the bytes written. A full socket is not an error: n is then
// less than Buffered(bufs) and err nil. bufs is not modified.
func (w *Writer) TryWrite(bufs [][]byte) (n int, err error) {
	w.bufs, w.n, w.errno = bufs, 0, 0
	err = w.rc.Write(w.tryFn)
	return w.result(err)
}

func (w *Writer) try(fd uintptr) bool {
	w.n, _, w.errno = write(fd, w.bufs)
	return true
}

// result returns the outcome of a write and forgets its buffers.
func (w *Writer) result(err error) (int, error) {
	n, errno := w.n, w.errno
	w.bufs = nil
	if err != nil {
		return n, err
	}
	if errno != 0 {
		return n, &net.OpError{Op: "write", Net: "tcp", Addr: w.c.RemoteAddr(), Err: errno}
	}
	return n, nil
}

// WriteAll writes all of bufs, waiting for room in the socket through Go's
// network poller, until deadline (zero: none). It returns the bytes written.
func (w *Writer) WriteAll(bufs [][]byte, deadline time.Time) (n int, err error) {
	if err := w.c.SetWriteDeadline(deadline); err != nil {
		return 0, err
	}
	defer w.c.SetWriteDeadline(time.Time{})
	w.bufs, w.n, w.errno = bufs, 0, 0
	err = w.rc.Write(w.allFn)
	return w.result(err)
}

func (w *Writer) all(fd uintptr) bool {
	m, full, e := write(fd, w.bufs)
	w.n += m
	if e != 0 {
		w.errno = e
		return true
	}
	if full {
		w.bufs = Rest(nil, w.bufs, m) // wait until writable, then go on
		return false
	}
	return true
}

// Peer says what the peer did, without waiting: closed is true when it
// closed its side (or the connection failed), sent when it sent bytes that
// are waiting to be read.
func (w *Writer) Peer() (closed, sent bool) {
	w.closed, w.sent = false, false
	if err := w.rc.Read(w.peerFn); err != nil {
		return true, false
	}
	return w.closed, w.sent
}

func (w *Writer) peer(fd uintptr) bool {
	var b [1]byte
	for {
		r, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
		case errno != 0, r == 0:
			w.closed = true
		default:
			w.sent = true
		}
		return true
	}
}

// Watcher tells, without a goroutine per connection, when the peer of a
// connection that nobody reads closes it, resets it or sends bytes: one
// goroutine waits in epoll for all of them.
type Watcher struct {
	epfd   int
	wakeR  int // read end of a pipe in the epoll set: Close wakes the wait
	wakeW  int
	mu     sync.Mutex
	fns    map[uint64]func()
	next   uint64
	closed bool
	done   chan struct{}
}

const watchWakeID = 0

// NewWatcher starts a watcher; Close stops it.
func NewWatcher() (*Watcher, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	setEventID(&ev, watchWakeID)
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p[0], &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(p[0])
		syscall.Close(p[1])
		return nil, err
	}
	w := &Watcher{epfd: epfd, wakeR: p[0], wakeW: p[1], fns: map[uint64]func(){}, next: watchWakeID + 1, done: make(chan struct{})}
	go w.run()
	return w, nil
}

// setEventID stores id in the event's data (Fd and Pad hold 8 bytes).
func setEventID(ev *syscall.EpollEvent, id uint64) {
	ev.Fd = int32(id)
	ev.Pad = int32(id >> 32)
}

func eventID(ev *syscall.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// Add watches c's connection: fn is called once, from the watcher's
// goroutine, when its peer closes, fails or sends bytes; fn must not block
// and must not call Close. It returns an id for Remove.
func (w *Watcher) Add(c *Writer, fn func()) (uint64, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return 0, net.ErrClosed
	}
	id := w.next
	w.next++
	w.fns[id] = fn
	w.mu.Unlock()
	// One shot: the first event disarms the connection, so a peer's bytes
	// that nobody reads do not wake the watcher again and again.
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT}
	setEventID(&ev, id)
	var cerr error
	if err := c.rc.Control(func(fd uintptr) {
		cerr = syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	}); err != nil {
		cerr = err
	}
	if cerr != nil {
		w.mu.Lock()
		delete(w.fns, id)
		w.mu.Unlock()
		return 0, cerr
	}
	return id, nil
}

// Remove stops watching c (id from Add); fn is not called after it returns
// unless it was already running. Call it before closing the connection.
func (w *Watcher) Remove(c *Writer, id uint64) {
	w.mu.Lock()
	delete(w.fns, id)
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return
	}
	c.rc.Control(func(fd uintptr) {
		syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
	})
}

// Close stops the watcher and waits for its goroutine; pending callbacks are
// dropped.
func (w *Watcher) Close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return
	}
	w.closed = true
	w.fns = nil
	w.mu.Unlock()
	syscall.Write(w.wakeW, []byte{0})
	<-w.done
	syscall.Close(w.epfd)
	syscall.Close(w.wakeR)
	syscall.Close(w.wakeW)
}

func (w *Watcher) run() {
	defer close(w.done)
	events := make([]syscall.EpollEvent, 128)
	for {
		n, err := syscall.EpollWait(w.epfd, events, -1)
		if err != nil && err != syscall.EINTR {
			return
		}
		for i := 0; i < n; i++ {
			id := eventID(&events[i])
			if id == watchWakeID {
				return // Close
			}
			w.mu.Lock()
			fn := w.fns[id]
			delete(w.fns, id)
			w.mu.Unlock()
			if fn != nil {
				fn()
			}
		}
	}
}
