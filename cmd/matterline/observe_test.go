package main

import "testing"

func TestClioEndpoint(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/api/v4/contacts.json", "contacts"},
		{"/api/v4/matters.json", "matters"},
		{"/api/v4/users.json", "users"},
		{"/api/v4/users/who_am_i.json", "who_am_i"},
		{"/api/v4/users/501.json", "users"},
		{"/oauth/token", "token"},
		{"/eu/api/v4/contacts.json", "contacts"},
		{"/somewhere/else", "other"},
	} {
		if got := clioEndpoint(tc.path); got != tc.want {
			t.Errorf("clioEndpoint(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}
