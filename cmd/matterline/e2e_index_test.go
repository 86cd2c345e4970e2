package main

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/config"
)

// clioRequests sums matterline_clio_requests_total for one endpoint from the
// server's /metrics.
func (s *e2eServer) clioRequests(endpoint string) int {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(res.Body)
	n := 0
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "matterline_clio_requests_total{") || !strings.Contains(line, `endpoint="`+endpoint+`"`) {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		n += int(v)
	}
	return n
}

// TestE2EIndexAnswersKnownCallers: serve with clio.index builds the index at
// start; from then on Ada's calls are looked up in it with no request to Clio,
// while a number the index does not know still asks Clio.
func TestE2EIndexAnswersKnownCallers(t *testing.T) {
	t.Parallel()
	s := startE2E(t, e2eOptions{configure: func(c *config.Config) { c.Clio.Index = true }})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	waitFor(t, "the first index pass", func() bool { return strings.Contains(s.logs.String(), "clio index synced") })
	// call places a call from number and returns its lookup status.
	call := func(number, name string) string {
		c := s.dial(newE2ECaller(t, number, name, false, nil))
		live := s.waitCall()
		if err := c.Hangup(ctx); err != nil {
			t.Fatal(err)
		}
		s.waitIdle()
		return live.Lookup.Status
	}
	synced := s.clioRequests("contacts") + s.clioRequests("matters")
	if synced == 0 {
		t.Fatal("the metrics counted no Clio request for the index pass")
	}
	if st := call(e2eCaller, e2eCallerName); st != "found" {
		t.Fatalf("Ada's lookup: %s, want found", st)
	}
	known := s.clioRequests("contacts") + s.clioRequests("matters")
	if known != synced {
		t.Fatalf("a caller the index knows cost %d Clio requests, want 0", known-synced)
	}
	// A number nobody in Clio has: the index does not know it, Clio is asked.
	if st := call("+12175559876", "Stranger"); st != "not_found" {
		t.Fatalf("the stranger's lookup: %s, want not_found", st)
	}
	if unknown := s.clioRequests("contacts") + s.clioRequests("matters"); unknown == known {
		t.Fatal("an unknown number was not looked up in Clio")
	}
}
