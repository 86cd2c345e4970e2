package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"
)

// pprofTokenEnv names the environment variable holding the admin bearer token
// for the profile request (kept out of the command line).
const pprofTokenEnv = "RELAYGEN_PPROF_TOKEN"

// maxProfile bounds the profile body read.
const maxProfile = 64 << 20

// captureProfile fetches a CPU profile of d from the relay's
// /debug/pprof/profile endpoint (loopback only) and writes it to out.
func captureProfile(ctx context.Context, rawURL, out string, d time.Duration) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("relaygen: pprof url: %w", err)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() || u.Scheme != "http" {
		return fmt.Errorf("relaygen: pprof url %q: want http://LOOPBACK-IP:PORT/...", rawURL)
	}
	secs := int(d.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	q := u.Query()
	q.Set("seconds", strconv.Itoa(secs))
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, d+15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("relaygen: pprof: %w", err)
	}
	if tok := os.Getenv(pprofTokenEnv); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("relaygen: pprof: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return fmt.Errorf("relaygen: pprof: %s: %s", res.Status, b)
	}
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("relaygen: pprof: %w", err)
	}
	if _, err := io.Copy(f, io.LimitReader(res.Body, maxProfile)); err != nil {
		_ = f.Close()
		return fmt.Errorf("relaygen: pprof: %w", err)
	}
	return f.Close()
}
