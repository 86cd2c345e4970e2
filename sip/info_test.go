package sip

import (
	"errors"
	"testing"
)

func TestInfoDigit(t *testing.T) {
	tests := []struct {
		name string
		ct   string
		body string
		key  rune
		err  error
	}{
		{"dtmf relay", "application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", '5', nil},
		{"dtmf relay star, params", "Application/DTMF-Relay; charset=x", "Signal=*\r\nDuration=100", '*', nil},
		{"empty", "", "", 0, errEmptyInfo},
		{"other type", "text/plain", "hi", 0, ErrUnsupportedBody},
		{"broken relay", "application/dtmf-relay", "Signal=\r\n", 0, ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := infoDigit(tt.ct, []byte(tt.body))
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || d.Key != tt.key || d.Source != "info" {
				t.Fatalf("digit = %+v, %v", d, err)
			}
		})
	}
}

func FuzzInfoDigit(f *testing.F) {
	f.Add("application/dtmf-relay", []byte("Signal=5\r\nDuration=160\r\n"))
	f.Add("application/dtmf-relay", []byte("Signal=#"))
	f.Add("application/dtmf", []byte("5"))
	f.Add("", []byte{0xff, 0x00})
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		d, err := infoDigit(ct, body)
		if err == nil && d.Key == 0 {
			t.Fatal("digit without key and without error")
		}
		_ = mapError(err)
	})
}
