package main

import (
	"context"
	"errors"
)

func cmdServe(ctx context.Context, s stdio, args []string) error {
	return errors.New("not implemented yet")
}

func cmdDemo(ctx context.Context, s stdio, args []string) error {
	return errors.New("not implemented yet")
}
