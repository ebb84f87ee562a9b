package config

import (
	"os"
	"path/filepath"
	"testing"
)

func TestZZExp(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ name, body string }{
		{"a.json", "{\n  \"rtmp\": {\n    \"addr\": \":1936\"\n    \"enable\": true\n  }\n}\n"},
		{"b.json", "{\n  \"rtmp\": {\n    \"addr\": \":1936\" \"enable\": true\n  }\n}\n"},
		{"c.json", "[1,2]"},
		{"d.json", "  null "},
		{"e.json", ""},
		{"f.json", "{\"rtmp\": {\"addr\": \"é\u00e9x\" x}}"},
		{"g.json", "{\"rtmp\": {\"gop_num\": \"abc\"}}"},
		{"h.json", "{\"rtmp\": {\"gop_num\": 1.5}}"},
		{"i.json", "{\"rtmp\": 5, \"foo\": 1}"},
		{"j.json", "{\"relay_push\": {\"enable\": true, \"addr_list\": [\"a:1\", 5]}}"},
		{"a.yaml", "rtmp:\n  addr: :1936\n  gop_num: 2\n"},
		{"b.yaml", "rtmp:\n  addr: \":1936\"\n gop_num: 2\n"},
		{"c.yaml", "foo"},
		{"d.yaml", "rtmp:\n  enable: yes\n"},
		{"e.yaml", "rtmp:\n  addr: x\n  addr: y\n"},
		{"a.toml", "[rtmp]\naddr = \":1936\"\ngop_num = 2\n"},
		{"b.toml", "[rtmp]\naddr = \":1936\n"},
		{"c.toml", "[rtmp]\ngop_num = 'x'\n"},
		{"d.toml", "[rtmp]\ngop_num = 2\n[rtmp]\n"},
	} {
		p := filepath.Join(dir, c.name)
		os.WriteFile(p, []byte(c.body), 0o644)
		cfg, w, err := Load(p)
		if err != nil {
			t.Logf("%s: ERR %v", c.name, err)
		} else {
			t.Logf("%s: addr=%q gop=%d warn=%q", c.name, cfg.RTMP.Addr, cfg.RTMP.GOPNum, w)
		}
	}
}
