package config

import "fmt"

// Error is a configuration that cannot be used: an unreadable or malformed
// file, a value of the wrong type, or a value that fails validation.
type Error struct {
	Path   string // config file, "" when the problem is not in a file
	Key    string // dotted key the problem is about, "" when not about one key
	Line   int    // 1-based position in Path of a syntax error, 0 when unknown
	Column int    // 1-based, 0 when unknown
	Err    error  // underlying cause, if any
	msg    string
}

// Error returns the message, which starts with "config: ".
func (e *Error) Error() string { return e.msg }

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// keyErrorf returns an *Error about one key, formatted as
// `config: key "<key>": <message>`.
func keyErrorf(key, format string, args ...any) *Error {
	return &Error{Key: key, msg: fmt.Sprintf("config: key %q: ", key) + fmt.Sprintf(format, args...)}
}
