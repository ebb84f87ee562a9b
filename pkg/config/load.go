package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts the name of every environment variable that overrides a key.
const EnvPrefix = "SLUICE_"

// Load returns the configuration in the file at path, or Sluice's defaults when
// path is "", with environment overrides applied, plus warnings the caller
// should log. The format follows the extension: .yaml or .yml, .toml, and JSON
// for anything else. A key absent from the file keeps its Default value (lal
// would use Go's zero value instead). Every failure is an *Error.
func Load(path string) (*Config, []string, error) {
	v := viper.New()
	v.AllowEmptyEnv(true)
	var warnings []string
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, &Error{Path: path, Err: err, msg: fmt.Sprintf("config: cannot read %q: %v", path, err)}
		}
		data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
		format := formatOf(path)
		// viper reports no position for a syntax error, so the bytes are
		// parsed here first with the format's own library.
		raw, perr := parse(path, format, data)
		if perr != nil {
			return nil, nil, perr
		}
		unknown, kerr := unknownKeys(raw)
		if kerr != nil {
			kerr.Path = path
			return nil, nil, kerr
		}
		if len(unknown) > 0 {
			warnings = append(warnings, "config: unknown keys ignored: "+strings.Join(unknown, ", "))
		}
		v.SetConfigType(format)
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return nil, nil, &Error{Path: path, Err: err, msg: fmt.Sprintf("config: invalid %s in %q: %v", strings.ToUpper(format), path, err)}
		}
	}

	c := defaults()
	present := make(map[string]bool)
	for _, f := range c.fields() {
		env := envVar(f.key)
		_ = v.BindEnv(f.key, env) // fails only when given no key
		val := v.Get(f.key)
		if val == nil {
			continue
		}
		present[f.key] = true
		// viper answers with the environment's string when the variable is
		// set, else with the file's typed value.
		if s, ok := os.LookupEnv(env); ok {
			if err := f.setFromEnv(env, s); err != nil {
				return nil, nil, err
			}
		} else if err := f.set(val); err != nil {
			err.Path = path
			return nil, nil, err
		}
	}
	if err := c.validate(); err != nil {
		return nil, nil, err
	}
	c.applyLalRules(present)
	if c.ConfVersion != ConfVersion {
		warnings = append(warnings, fmt.Sprintf("config: conf_version %q is not %q, the layout this build reads; loading it anyway", c.ConfVersion, ConfVersion))
	}
	return c, warnings, nil
}

// formatOf returns the viper config type for path's extension.
func formatOf(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		return "yaml"
	case ".toml":
		return "toml"
	default:
		return "json"
	}
}

// parse decodes data into a generic map, reporting syntax errors with their
// line and column.
func parse(path, format string, data []byte) (map[string]any, *Error) {
	var raw map[string]any
	switch format {
	case "yaml":
		if err := yaml.Unmarshal(data, &raw); err != nil {
			line, what := yamlPosition(err)
			return nil, syntaxError(path, "YAML", line, 0, what, err)
		}
	case "toml":
		if err := toml.Unmarshal(data, &raw); err != nil {
			var de *toml.DecodeError
			if errors.As(err, &de) {
				line, col := de.Position()
				return nil, syntaxError(path, "TOML", line, col, strings.TrimPrefix(de.Error(), "toml: "), err)
			}
			return nil, syntaxError(path, "TOML", 0, 0, strings.TrimPrefix(err.Error(), "toml: "), err)
		}
	default:
		if err := json.Unmarshal(data, &raw); err != nil {
			var se *json.SyntaxError
			var te *json.UnmarshalTypeError
			switch {
			case errors.As(err, &se):
				off, what := se.Offset, se.Error()
				if what == "unexpected end of JSON input" {
					off = int64(len(data)) + 1
				} else if m := jsonMissingSeparator.FindStringSubmatch(what); m != nil {
					// The mistake is a separator missing right after the
					// previous token, often at the end of an earlier line.
					off = int64(len(bytes.TrimRight(data[:max(off-1, 0)], " \t\r\n"))) + 1
					what = fmt.Sprintf("expected %s after %s, found %s", separators[m[2]], m[2], m[1])
				}
				line, col := position(data, off)
				return nil, syntaxError(path, "JSON", line, col, what, err)
			case errors.As(err, &te) && te.Field == "":
				line, col := position(data, firstByte(data))
				return nil, syntaxError(path, "JSON", line, col, "the top level must be an object, not "+te.Value, err)
			default:
				return nil, syntaxError(path, "JSON", 0, 0, err.Error(), err)
			}
		}
		if raw == nil {
			line, col := position(data, firstByte(data))
			return nil, syntaxError(path, "JSON", line, col, "the top level must be an object, not null", nil)
		}
	}
	return raw, nil
}

// syntaxError returns the *Error of a file that cannot be parsed; line and
// col are 1-based, 0 when unknown.
func syntaxError(path, format string, line, col int, what string, err error) *Error {
	at := ""
	switch {
	case line > 0 && col > 0:
		at = fmt.Sprintf(" at line %d, column %d", line, col)
	case line > 0:
		at = fmt.Sprintf(" at line %d", line)
	}
	return &Error{Path: path, Line: line, Column: col, Err: err,
		msg: fmt.Sprintf("config: invalid %s in %q%s: %s", format, path, at, what)}
}

// position converts the offset encoding/json reports (bytes read when the
// error was found) into the 1-based line and column, in characters, of the
// byte that caused it.
func position(data []byte, offset int64) (line, col int) {
	i := int(min(max(offset-1, 0), int64(len(data))))
	start := bytes.LastIndexByte(data[:i], '\n') + 1
	return bytes.Count(data[:i], []byte("\n")) + 1, utf8.RuneCount(data[start:i]) + 1
}

// firstByte returns the offset, as encoding/json counts it, of the first
// non-space byte of data.
func firstByte(data []byte) int64 {
	return int64(len(data)-len(bytes.TrimLeft(data, " \t\r\n"))) + 1
}

// jsonMissingSeparator matches the encoding/json errors that mean a comma,
// closing bracket or colon is missing.
var jsonMissingSeparator = regexp.MustCompile(`^invalid character (.+) after (object key:value pair|array element|object key)$`)

// separators names what may follow each kind of token in jsonMissingSeparator.
var separators = map[string]string{
	"object key:value pair": "',' or '}'",
	"array element":         "',' or ']'",
	"object key":            "':'",
}

// yamlLine splits a go-yaml message around its "line N: ".
var yamlLine = regexp.MustCompile(`(?s)^(.*?)line (\d+): (.*)$`)

// yamlPosition splits a go-yaml error into its line, 0 when it has none, and
// its message.
func yamlPosition(err error) (int, string) {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
		if s, ok := strings.CutSuffix(msg, " into map[string]interface {}"); ok {
			msg = strings.Replace(s, "cannot unmarshal", "the top level must be a mapping, not", 1)
		}
	}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[2])
		return line, strings.TrimPrefix(m[1]+m[3], "yaml: ")
	}
	return 0, strings.TrimPrefix(msg, "yaml: ")
}

// unknownKeys returns the keys of raw that are no config key, as sorted
// dotted paths, skipping the "# ..." comment keys lal's file uses. A known
// section that is not an object is an error.
func unknownKeys(raw map[string]any) ([]string, *Error) {
	var unknown []string
	for k, val := range raw {
		if strings.HasPrefix(k, "#") {
			continue
		}
		lk := strings.ToLower(k)
		// A dotted top-level key such as "rtmp.addr" is a full path; viper
		// applies it.
		if knownKeys[lk] {
			continue
		}
		if !sections[lk] {
			unknown = append(unknown, k)
			continue
		}
		if val == nil {
			continue
		}
		m, ok := asMap(val)
		if !ok {
			return nil, keyErrorf(lk, "expected object, got %s", describe(val))
		}
		for k2 := range m {
			if !strings.HasPrefix(k2, "#") && !knownKeys[lk+"."+strings.ToLower(k2)] {
				unknown = append(unknown, k+"."+k2)
			}
		}
	}
	sort.Strings(unknown)
	return unknown, nil
}

// asMap returns val as a map with string keys, if it is a map.
func asMap(val any) (map[string]any, bool) {
	switch m := val.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[fmt.Sprint(k)] = v
		}
		return out, true
	}
	return nil, false
}

// field is one leaf of a Config: its dotted key and its settable value.
type field struct {
	key string
	v   reflect.Value
}

// fields returns every key of c in declaration order, named by the
// mapstructure tags.
func (c *Config) fields() []field {
	var out []field
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		t := v.Type()
		for i := range t.NumField() {
			name, opts, _ := strings.Cut(t.Field(i).Tag.Get("mapstructure"), ",")
			switch fv := v.Field(i); {
			case opts == "squash":
				walk(fv, prefix)
			case fv.Kind() == reflect.Struct:
				walk(fv, prefix+name+".")
			default:
				out = append(out, field{prefix + name, fv})
			}
		}
	}
	walk(reflect.ValueOf(c).Elem(), "")
	return out
}

// knownKeys holds every dotted key; sections holds every section name.
var knownKeys, sections = func() (map[string]bool, map[string]bool) {
	keys, secs := make(map[string]bool), make(map[string]bool)
	for _, f := range new(Config).fields() {
		keys[f.key] = true
		if s, _, ok := strings.Cut(f.key, "."); ok {
			secs[s] = true
		}
	}
	return keys, secs
}()

// envVar returns the environment variable that overrides key.
func envVar(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// typeName returns how messages name the type of f.
func (f field) typeName() string {
	switch f.v.Kind() {
	case reflect.Bool:
		return "boolean"
	case reflect.Int:
		return "integer"
	case reflect.Slice:
		return "list of strings"
	default:
		return "string"
	}
}

// set stores a value decoded from the file, which must already have f's
// type: no string is taken for a number or a boolean.
func (f field) set(val any) *Error {
	mismatch := func() *Error {
		return keyErrorf(f.key, "expected %s, got %s", f.typeName(), describe(val))
	}
	switch f.v.Kind() {
	case reflect.String:
		s, ok := val.(string)
		if !ok {
			return mismatch()
		}
		f.v.SetString(s)
	case reflect.Bool:
		b, ok := val.(bool)
		if !ok {
			return mismatch()
		}
		f.v.SetBool(b)
	case reflect.Int:
		n, ok := toInt(val)
		if !ok || f.v.OverflowInt(n) {
			return mismatch()
		}
		f.v.SetInt(n)
	case reflect.Slice:
		list, ok := val.([]any)
		if !ok {
			if ss, isStrings := val.([]string); isStrings {
				f.v.Set(reflect.ValueOf(append([]string{}, ss...)))
				return nil
			}
			return mismatch()
		}
		out := make([]string, len(list))
		for i, e := range list {
			s, ok := e.(string)
			if !ok {
				return keyErrorf(fmt.Sprintf("%s[%d]", f.key, i), "expected string, got %s", describe(e))
			}
			out[i] = s
		}
		f.v.Set(reflect.ValueOf(out))
	}
	return nil
}

// setFromEnv parses the value of environment variable name for f: integers in
// decimal, booleans as strconv.ParseBool takes them, lists comma separated.
func (f field) setFromEnv(name, s string) *Error {
	var ok bool
	switch f.v.Kind() {
	case reflect.String:
		f.v.SetString(s)
		ok = true
	case reflect.Bool:
		var b bool
		var err error
		if b, err = strconv.ParseBool(strings.TrimSpace(s)); err == nil {
			f.v.SetBool(b)
			ok = true
		}
	case reflect.Int:
		var n int64
		var err error
		if n, err = strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil && !f.v.OverflowInt(n) {
			f.v.SetInt(n)
			ok = true
		}
	case reflect.Slice:
		list := []string{}
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e != "" {
				list = append(list, e)
			}
		}
		f.v.Set(reflect.ValueOf(list))
		ok = true
	}
	if ok {
		return nil
	}
	return &Error{Key: f.key, msg: fmt.Sprintf("config: environment variable %s=%q for key %q: expected %s", name, s, f.key, f.typeName())}
}

// toInt returns val as an integer if it is one, including a float without a
// fraction (JSON numbers decode as float64).
func toInt(val any) (int64, bool) {
	switch x := val.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint:
		return int64(x), uint64(x) <= math.MaxInt64
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		return int64(x), x <= math.MaxInt64
	case float32:
		return floatToInt(float64(x))
	case float64:
		return floatToInt(x)
	}
	return 0, false
}

// floatToInt returns f as an int64 if it has no fraction and fits.
func floatToInt(f float64) (int64, bool) {
	if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
}

// describe names the type and value of a decoded value for an error message.
func describe(val any) string {
	switch x := val.(type) {
	case nil:
		return "null"
	case string:
		if utf8.RuneCountInString(x) > 64 {
			x = string([]rune(x)[:64]) + "…"
		}
		return fmt.Sprintf("string %q", x)
	case bool:
		return fmt.Sprintf("boolean %t", x)
	case float32:
		return "number " + strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		return "number " + strconv.FormatFloat(x, 'g', -1, 64)
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprintf("integer %d", x)
	case []any:
		return "array"
	case map[string]any, map[any]any:
		return "object"
	}
	return fmt.Sprintf("%T %v", val, val)
}
