package main

import (
	"context"
	"errors"
)

func cmdRules(ctx context.Context, s stdio, args []string) error {
	return errors.New("not implemented yet")
}

func cmdClosures(ctx context.Context, s stdio, args []string) error {
	return errors.New("not implemented yet")
}
