package api

import "net/http"

// LimitStats is the data of /api/stat/limits (a Sluice extension): how many
// clients each configured limit refused since the start, by config key.
type LimitStats struct {
	Refused map[string]uint64 `json:"refused"`
}

// limitStats answers /api/stat/limits.
func (a *Server) limitStats(w http.ResponseWriter, r *http.Request) {
	st := LimitStats{Refused: map[string]uint64{}}
	if a.LimitRefusals != nil {
		for k, n := range a.LimitRefusals() {
			st.Refused[k] = n
		}
	}
	a.reply(w, struct {
		Code int        `json:"error_code"`
		Desp string     `json:"desp"`
		Data LimitStats `json:"data"`
	}{CodeSucc, DespSucc, st})
}
