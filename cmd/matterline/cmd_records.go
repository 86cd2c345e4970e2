package main

import (
	"context"
	"errors"
)

func cmdCalls(ctx context.Context, s stdio, args []string) error {
	return errors.New("not implemented yet")
}

func cmdMessages(ctx context.Context, s stdio, args []string) error {
	return errors.New("not implemented yet")
}
