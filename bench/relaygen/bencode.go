package main

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
)

// errBencode is returned for any malformed bencoded input.
var errBencode = errors.New("relaygen: bad bencode")

// maxBencodeDepth bounds nesting in decoded replies.
const maxBencodeDepth = 32

// bencode appends the bencoding (BitTorrent BEP 3, as used by rtpengine's ng
// protocol) of v to dst. Supported: string, []byte, int, int64, []any,
// []string and map[string]any (keys written in sorted order).
func bencode(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		dst = strconv.AppendInt(dst, int64(len(x)), 10)
		dst = append(dst, ':')
		return append(dst, x...), nil
	case []byte:
		dst = strconv.AppendInt(dst, int64(len(x)), 10)
		dst = append(dst, ':')
		return append(dst, x...), nil
	case int:
		return bencode(dst, int64(x))
	case int64:
		dst = append(dst, 'i')
		dst = strconv.AppendInt(dst, x, 10)
		return append(dst, 'e'), nil
	case []string:
		dst = append(dst, 'l')
		for _, s := range x {
			dst, _ = bencode(dst, s)
		}
		return append(dst, 'e'), nil
	case []any:
		dst = append(dst, 'l')
		for _, e := range x {
			var err error
			if dst, err = bencode(dst, e); err != nil {
				return nil, err
			}
		}
		return append(dst, 'e'), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		dst = append(dst, 'd')
		for _, k := range keys {
			dst, _ = bencode(dst, k)
			var err error
			if dst, err = bencode(dst, x[k]); err != nil {
				return nil, err
			}
		}
		return append(dst, 'e'), nil
	}
	return nil, fmt.Errorf("relaygen: bencode: unsupported type %T", v)
}

// bdecode decodes one bencoded value from the whole of b: strings come back as
// string, integers as int64, lists as []any, dictionaries as map[string]any.
func bdecode(b []byte) (any, error) {
	v, rest, err := bdecodeValue(b, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBencode, len(rest))
	}
	return v, nil
}

func bdecodeValue(b []byte, depth int) (any, []byte, error) {
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("%w: unexpected end", errBencode)
	}
	if depth > maxBencodeDepth {
		return nil, nil, fmt.Errorf("%w: nested too deep", errBencode)
	}
	switch c := b[0]; {
	case c == 'i':
		end := bytes.IndexByte(b, 'e')
		if end < 2 {
			return nil, nil, fmt.Errorf("%w: integer", errBencode)
		}
		n, err := strconv.ParseInt(string(b[1:end]), 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: integer: %w", errBencode, err)
		}
		return n, b[end+1:], nil
	case c >= '0' && c <= '9':
		colon := bytes.IndexByte(b, ':')
		if colon < 1 {
			return nil, nil, fmt.Errorf("%w: string length", errBencode)
		}
		n, err := strconv.Atoi(string(b[:colon]))
		if err != nil || n < 0 || n > len(b)-colon-1 {
			return nil, nil, fmt.Errorf("%w: string length %q", errBencode, b[:colon])
		}
		s := b[colon+1 : colon+1+n]
		return string(s), b[colon+1+n:], nil
	case c == 'l':
		var list []any
		rest := b[1:]
		for {
			if len(rest) == 0 {
				return nil, nil, fmt.Errorf("%w: unterminated list", errBencode)
			}
			if rest[0] == 'e' {
				return list, rest[1:], nil
			}
			var v any
			var err error
			if v, rest, err = bdecodeValue(rest, depth+1); err != nil {
				return nil, nil, err
			}
			list = append(list, v)
		}
	case c == 'd':
		dict := map[string]any{}
		rest := b[1:]
		for {
			if len(rest) == 0 {
				return nil, nil, fmt.Errorf("%w: unterminated dictionary", errBencode)
			}
			if rest[0] == 'e' {
				return dict, rest[1:], nil
			}
			k, r, err := bdecodeValue(rest, depth+1)
			if err != nil {
				return nil, nil, err
			}
			key, ok := k.(string)
			if !ok {
				return nil, nil, fmt.Errorf("%w: dictionary key is not a string", errBencode)
			}
			var v any
			if v, rest, err = bdecodeValue(r, depth+1); err != nil {
				return nil, nil, err
			}
			dict[key] = v
		}
	}
	return nil, nil, fmt.Errorf("%w: unexpected byte %q", errBencode, b[0])
}
