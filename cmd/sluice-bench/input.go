package main

import (
	"bufio"
	"io"
	"net"
	"sync/atomic"
	"syscall"
)

// input is a subscriber's byte source: a small bufio.Reader over the
// connection for the headers the parsers look at, and, on a TCP socket, a
// way to skip media bodies inside the kernel (recv with MSG_TRUNC, which on
// TCP drops the bytes without copying them to user space). Most of what a
// subscriber receives is never copied into the tool, which is what lets one
// core run thousands of subscribers.
type input struct {
	br      *bufio.Reader
	rc      syscall.RawConn // nil: skipping reads through br
	skipped atomic.Uint64   // bytes dropped in the kernel
}

func newInput(br *bufio.Reader, c net.Conn) *input {
	in := &input{br: br}
	if tc, ok := c.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			in.rc = rc
		}
	}
	return in
}

// skip drops the next n bytes of the stream.
func (in *input) skip(n int) error {
	buffered := in.br.Buffered()
	if n <= buffered || in.rc == nil {
		_, err := in.br.Discard(n)
		return err
	}
	in.br.Discard(buffered)
	n -= buffered
	for n > 0 {
		var got int
		var errno syscall.Errno
		err := in.rc.Read(func(fd uintptr) bool {
			r, _, e := syscall.Syscall6(syscall.SYS_RECVFROM, fd, 0, uintptr(n),
				syscall.MSG_TRUNC|syscall.MSG_DONTWAIT, 0, 0)
			for e == syscall.EINTR {
				r, _, e = syscall.Syscall6(syscall.SYS_RECVFROM, fd, 0, uintptr(n),
					syscall.MSG_TRUNC|syscall.MSG_DONTWAIT, 0, 0)
			}
			if e == syscall.EAGAIN {
				return false // wait until readable
			}
			got, errno = int(r), e
			return true
		})
		if err != nil {
			return err
		}
		if errno != 0 {
			return errno
		}
		if got == 0 {
			return io.ErrUnexpectedEOF
		}
		in.skipped.Add(uint64(got))
		n -= got
	}
	return nil
}
