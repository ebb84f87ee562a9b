package config

import (
	"reflect"
	"slices"
)

// ChangedKeys returns the dotted keys whose values differ between a and b,
// in declaration order. An empty list and an absent one are equal.
func ChangedKeys(a, b *Config) []string {
	fa, fb := a.fields(), b.fields()
	var out []string
	for i, f := range fa {
		va, vb := f.v, fb[i].v
		same := false
		if va.Kind() == reflect.Slice {
			sa, _ := va.Interface().([]string)
			sb, _ := vb.Interface().([]string)
			same = slices.Equal(sa, sb)
		} else {
			same = va.Interface() == vb.Interface()
		}
		if !same {
			out = append(out, f.key)
		}
	}
	return out
}
