package routing

import (
	"fmt"
	"strings"
	"time"
)

// Hours is a weekly schedule, evaluated in wall-clock time of a zone. The zero
// value is always open.
//
// Syntax (case-insensitive): groups separated by ';', each "DAYS SPANS".
// DAYS is a comma list of days (mon tue wed thu fri sat sun) and day ranges
// (mon-fri; a range may wrap: fri-mon). SPANS is a comma list of HH:MM-HH:MM
// ranges; the start is included and the end excluded; 24:00 is the end of the
// day; an end before the start runs overnight into the next day (22:00-06:00 on
// fri is open from Friday 22:00 to Saturday 06:00). "" and "24/7" mean always.
//
//	mon-fri 09:00-12:30,13:30-17:00; sat 10:00-12:00
type Hours struct {
	groups []hoursGroup
}

type hoursGroup struct {
	days  uint8 // bit i = time.Weekday(i)
	spans []span
}

// span is a time range in seconds since midnight; end may be below start
// (overnight) and is at most 86400.
type span struct{ start, end int }

var dayNames = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseHours parses the Hours syntax. Errors give the 1-based position in s.
func ParseHours(s string) (Hours, error) {
	t := strings.TrimSpace(s)
	if t == "" || t == "24/7" {
		return Hours{}, nil
	}
	var h Hours
	pos := 0
	for _, part := range strings.Split(s, ";") {
		start := pos
		pos += len(part) + 1
		if strings.TrimSpace(part) == "" {
			return Hours{}, hoursErr(start, "empty group (want DAYS HH:MM-HH:MM, e.g. mon-fri 09:00-17:00)")
		}
		g, err := parseGroup(part, start)
		if err != nil {
			return Hours{}, err
		}
		h.groups = append(h.groups, g)
	}
	return h, nil
}

func hoursErr(pos int, format string, a ...any) error {
	return fmt.Errorf("at position %d: %s", pos+1, fmt.Sprintf(format, a...))
}

// parseGroup parses "DAYS SPANS"; off is the group's offset in the whole input.
func parseGroup(g string, off int) (hoursGroup, error) {
	lead := len(g) - len(strings.TrimLeft(g, " \t"))
	body := strings.TrimRight(g[lead:], " \t")
	off += lead
	i := strings.IndexAny(body, " \t")
	if i < 0 {
		return hoursGroup{}, hoursErr(off, "%q needs days and times (e.g. mon-fri 09:00-17:00)", body)
	}
	daysText := body[:i]
	rest := body[i:]
	spanOff := off + i + len(rest) - len(strings.TrimLeft(rest, " \t"))
	spansText := strings.TrimLeft(rest, " \t")
	days, err := parseDays(daysText, off)
	if err != nil {
		return hoursGroup{}, err
	}
	grp := hoursGroup{days: days}
	p := spanOff
	for _, sp := range strings.Split(spansText, ",") {
		item := strings.TrimSpace(sp)
		itemOff := p + len(sp) - len(strings.TrimLeft(sp, " \t"))
		p += len(sp) + 1
		a, b, ok := strings.Cut(item, "-")
		if !ok {
			return hoursGroup{}, hoursErr(itemOff, "%q is not a time range HH:MM-HH:MM", item)
		}
		st, err := parseClock(strings.TrimSpace(a), false)
		if err != nil {
			return hoursGroup{}, hoursErr(itemOff, "%v", err)
		}
		en, err := parseClock(strings.TrimSpace(b), true)
		if err != nil {
			return hoursGroup{}, hoursErr(itemOff+len(a)+1, "%v", err)
		}
		if st == en {
			return hoursGroup{}, hoursErr(itemOff, "%q is an empty range", item)
		}
		grp.spans = append(grp.spans, span{st, en})
	}
	return grp, nil
}

func parseDays(s string, off int) (uint8, error) {
	var mask uint8
	p := off
	for _, item := range strings.Split(s, ",") {
		itemOff := p
		p += len(item) + 1
		a, b, isRange := strings.Cut(item, "-")
		d1, ok := parseDay(a)
		if !ok {
			return 0, hoursErr(itemOff, "unknown day %q (want mon, tue, wed, thu, fri, sat, sun or a range like mon-fri)", a)
		}
		if !isRange {
			mask |= 1 << d1
			continue
		}
		d2, ok := parseDay(b)
		if !ok {
			return 0, hoursErr(itemOff+len(a)+1, "unknown day %q (want mon, tue, wed, thu, fri, sat, sun)", b)
		}
		for d := d1; ; d = (d + 1) % 7 {
			mask |= 1 << d
			if d == d2 {
				break
			}
		}
	}
	return mask, nil
}

func parseDay(s string) (int, bool) {
	s = strings.ToLower(s)
	for i, n := range dayNames {
		if s == n {
			return i, true
		}
	}
	return 0, false
}

// parseClock reads HH:MM (00:00-23:59, or 24:00 when end is true) as seconds.
func parseClock(s string, end bool) (int, error) {
	if len(s) != 5 || s[2] != ':' || !isDigit(s[0]) || !isDigit(s[1]) || !isDigit(s[3]) || !isDigit(s[4]) {
		return 0, fmt.Errorf("bad time %q (want HH:MM, 24-hour)", s)
	}
	hh := int(s[0]-'0')*10 + int(s[1]-'0')
	mm := int(s[3]-'0')*10 + int(s[4]-'0')
	if mm > 59 || hh > 24 || (hh == 24 && (mm != 0 || !end)) {
		return 0, fmt.Errorf("bad time %q (00:00-23:59, 24:00 only as an end)", s)
	}
	return hh*3600 + mm*60, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// Always reports whether h is open at every moment ("" or "24/7").
func (h Hours) Always() bool { return len(h.groups) == 0 }

// String is the canonical form: ParseHours(h.String()) equals h. Always-open
// hours give "".
func (h Hours) String() string {
	parts := make([]string, 0, len(h.groups))
	for _, g := range h.groups {
		spans := make([]string, 0, len(g.spans))
		for _, sp := range g.spans {
			spans = append(spans, clock(sp.start)+"-"+clock(sp.end))
		}
		parts = append(parts, daysString(g.days)+" "+strings.Join(spans, ","))
	}
	return strings.Join(parts, "; ")
}

func clock(sec int) string { return fmt.Sprintf("%02d:%02d", sec/3600, sec%3600/60) }

// daysString renders a day mask as runs in week order mon..sun.
func daysString(mask uint8) string {
	order := [7]int{1, 2, 3, 4, 5, 6, 0}
	var out []string
	for i := 0; i < 7; {
		if mask&(1<<order[i]) == 0 {
			i++
			continue
		}
		j := i
		for j+1 < 7 && mask&(1<<order[j+1]) != 0 {
			j++
		}
		if j == i {
			out = append(out, dayNames[order[i]])
		} else {
			out = append(out, dayNames[order[i]]+"-"+dayNames[order[j]])
		}
		i = j + 1
	}
	return strings.Join(out, ",")
}

// Open reports whether h is open at t in loc's wall-clock time. Across DST
// changes this is wall-clock time: on a spring-forward day the skipped hour
// never happens, on a fall-back day the repeated hour is open twice.
func (h Hours) Open(t time.Time, loc *time.Location) bool {
	if h.Always() {
		return true
	}
	lt := t.In(loc)
	wd := int(lt.Weekday())
	prev := (wd + 6) % 7
	sec := lt.Hour()*3600 + lt.Minute()*60 + lt.Second()
	for _, g := range h.groups {
		today := g.days&(1<<wd) != 0
		yesterday := g.days&(1<<prev) != 0
		for _, sp := range g.spans {
			if sp.start < sp.end {
				if today && sec >= sp.start && sec < sp.end {
					return true
				}
				continue
			}
			// overnight: from start today to end tomorrow
			if (today && sec >= sp.start) || (yesterday && sec < sp.end) {
				return true
			}
		}
	}
	return false
}
