package rtsp

import (
	"errors"
	"strconv"

	"github.com/bluenviron/gortsplib/v5/pkg/base"
)

// refusalResponse answers a Handler's refusal: the status of its
// RTSPStatus() int method (e.g. 503 Service Unavailable for a limit), else
// 403 Forbidden, with a Retry-After header when the error has a
// RetryAfterSeconds() int method.
func refusalResponse(err error) *base.Response {
	res := status(base.StatusForbidden)
	var se interface{ RTSPStatus() int }
	if errors.As(err, &se) {
		res.StatusCode = base.StatusCode(se.RTSPStatus())
	}
	var ra interface{ RetryAfterSeconds() int }
	if errors.As(err, &ra) {
		res.Header = base.Header{"Retry-After": base.HeaderValue{strconv.Itoa(ra.RetryAfterSeconds())}}
	}
	return res
}
