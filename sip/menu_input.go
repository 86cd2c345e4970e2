package sip

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/routing"
)

// maxExtensionDigits bounds an extension dialled from the menu.
const maxExtensionDigits = 8

// collectIntent turns the first menu digit into an intent. A mapped digit acts at
// once unless some rule extension starts with it; otherwise digits are collected
// (inter-digit timeout Config.DigitTimeout, '#' ends) into an extension:N intent.
// Extensions are dialled only when the Router lists them (ExtensionLister): an
// unknown number is refused here, before routing. ok false means invalid input.
func (c *call) collectIntent(first media.Digit) (routing.Intent, bool) {
	key := string(first.Key)
	mappedText, mapped := c.srv.cfg.Menu[key]
	var mappedIntent routing.Intent
	if mapped {
		in, err := routing.ParseIntent(mappedText)
		if err != nil { // validated in NewServer
			return routing.Intent{}, false
		}
		mappedIntent = in
	}
	exts, listed := c.extensions()
	if !listed || !isDialDigit(first.Key) || !anyHasPrefix(exts, key) {
		return mappedIntent, mapped
	}
	digits := key
	sess := c.session()
	if sess == nil {
		return routing.Intent{}, false
	}
	t := time.NewTimer(c.srv.cfg.DigitTimeout)
	defer t.Stop()
collect:
	for len(digits) < maxExtensionDigits {
		if slices.Contains(exts, digits) && countPrefix(exts, digits) == 1 {
			break // complete and unambiguous
		}
		select {
		case <-c.ctx.Done():
			return routing.Intent{}, false
		case ev := <-c.events:
			c.handle(ev)
		case d, ok := <-sess.DTMF():
			if !ok {
				return routing.Intent{}, false
			}
			if d.Key == '#' {
				break collect
			}
			if !isDialDigit(d.Key) {
				return routing.Intent{}, false
			}
			digits += string(d.Key)
			t.Reset(c.srv.cfg.DigitTimeout)
		case <-t.C:
			break collect
		}
	}
	if slices.Contains(exts, digits) {
		return routing.Intent{Kind: routing.IntentExtension, Arg: digits}, true
	}
	if digits == key && mapped {
		return mappedIntent, true
	}
	c.log.Info("extension not known", "digits", len(digits))
	return routing.Intent{}, false
}

// extensions asks the Router for the rule extensions, when it can list them.
func (c *call) extensions() ([]string, bool) {
	l, ok := c.srv.router.(ExtensionLister)
	if !ok || l == nil {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(c.ctx, routerTimeout)
	defer cancel()
	return l.Extensions(ctx), true
}

func isDialDigit(r rune) bool { return r >= '0' && r <= '9' }

func anyHasPrefix(list []string, prefix string) bool {
	return countPrefix(list, prefix) > 0
}

// countPrefix counts the entries that start with prefix (itself included).
func countPrefix(list []string, prefix string) int {
	n := 0
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}
