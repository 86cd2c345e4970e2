package main

// `matterline health`: asks a running server's /healthz, for container and
// systemd health checks and for an admin at a shell.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// healthTimeout bounds the whole health request.
const healthTimeout = 3 * time.Second

func (c *cli) newHealthCmd() *cobra.Command {
	var url string
	cmd := &cobra.Command{
		Use:   "health [--url URL]",
		Short: "Ask a running server whether it is healthy",
		Long: `GET http://<http.listen>/healthz of the running server (on loopback when
http.listen is 0.0.0.0 or ::) with a 3 s timeout. Exit status 0 when it answers
200, 1 otherwise with the reason (not running, draining, timeout).`,
		Example: "  matterline health -config /etc/matterline/matterline.yaml\n  matterline health --url http://127.0.0.1:8080/healthz",
		Args:    wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if url == "" {
				cfg, err := c.load()
				if err != nil {
					return err
				}
				if url, err = healthURL(cfg.HTTP.Listen); err != nil {
					return err
				}
			}
			return c.health(cmd.Context(), url)
		},
	}
	cmd.Flags().StringVar(&url, "url", "", "health URL to ask instead of http.listen's /healthz")
	return cmd
}

// healthURL is the /healthz URL of http.listen, on loopback when it listens on
// every address.
func healthURL(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("http.listen: %w", err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::", "[::]":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}

func (c *cli) health(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("health url: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s: no answer within %s", url, healthTimeout)
		}
		return fmt.Errorf("%s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	text := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		if text != "" {
			return fmt.Errorf("%s: %s: %s", url, resp.Status, text)
		}
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	if text == "" {
		text = resp.Status
	}
	fmt.Fprintf(c.out, "healthy: %s\n", text)
	return nil
}
