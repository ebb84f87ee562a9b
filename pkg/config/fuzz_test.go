package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func FuzzLoadJSON(f *testing.F) {
	for _, path := range []string{"testdata/lalserver.conf.json", "../../conf/sluice.conf.json"} {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	clearEnv(f)
	// Each fuzz process runs the target sequentially, so one file will do.
	path := filepath.Join(f.TempDir(), "c.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		c, warnings, err := Load(path)
		if err != nil {
			var cerr *Error
			if c != nil || warnings != nil || !errors.As(err, &cerr) || !strings.HasPrefix(err.Error(), "config: ") {
				t.Fatalf("config %v, warnings %q, error %T %v", c, warnings, err, err)
			}
			return
		}
		if c == nil {
			t.Fatal("nil config without error")
		}
		again, _, err := Load(path)
		if err != nil || !reflect.DeepEqual(c, again) {
			t.Fatalf("second load differs: %v", err)
		}
		if err := c.validate(); err != nil {
			t.Fatalf("loaded config fails validation: %v", err)
		}
		for _, p := range []string{c.HTTPFLV.URLPattern, c.HTTPTS.URLPattern, c.HLS.URLPattern} {
			if !strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/") {
				t.Fatalf("url_pattern %q", p)
			}
		}
		for _, l := range c.Listeners() {
			if l.Addr == "" {
				t.Fatalf("listener %s without address", l.Key)
			}
		}
	})
}
