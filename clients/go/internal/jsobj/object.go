package jsobj

import "sort"

// Object is a JavaScript object: string keys in the order JavaScript keeps
// them (array-index keys first, ascending; then the others in insertion order).
// Values are nil, bool, float64 (a JS number), string, []any or *Object.
type Object struct {
	keys   []string
	values map[string]any
}

// NewObject returns an empty object.
func NewObject() *Object { return &Object{values: map[string]any{}} }

// Set assigns key; a key already present keeps its place, as in JavaScript.
func (o *Object) Set(key string, value any) *Object {
	if _, ok := o.values[key]; !ok {
		o.keys = append(o.keys, key)
	}
	o.values[key] = value
	return o
}

// Get returns the value of key and whether it is present.
func (o *Object) Get(key string) (any, bool) {
	v, ok := o.values[key]
	return v, ok
}

// Len is the number of keys.
func (o *Object) Len() int { return len(o.keys) }

// Keys are the keys in JavaScript's enumeration order.
func (o *Object) Keys() []string {
	var indices []string
	var names []string
	for _, k := range o.keys {
		if _, ok := arrayIndex(k); ok {
			indices = append(indices, k)
		} else {
			names = append(names, k)
		}
	}
	sort.Slice(indices, func(i, j int) bool {
		a, _ := arrayIndex(indices[i])
		b, _ := arrayIndex(indices[j])
		return a < b
	})
	return append(indices, names...)
}

// arrayIndex reports whether key is a canonical array index ("0" .. "4294967294").
func arrayIndex(key string) (uint64, bool) {
	if key == "" || len(key) > 10 || (len(key) > 1 && key[0] == '0') {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, n < 4294967295
}
