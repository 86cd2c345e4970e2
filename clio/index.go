package clio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/matterline/matterline/lookup"
)

// ErrIndexNotBuilt is a poll or a webhook renewal asked of an index that has not
// finished its first full sync.
var ErrIndexNotBuilt = errors.New("clio index: not built yet (run `matterline clio sync`)")

// IndexOptions configure OpenIndex; zero values mean the lookup defaults.
type IndexOptions struct {
	// Storage is the database the index lives in (required); its sealer, when
	// set, also seals the webhook secrets.
	Storage *Storage
	// Client is the Clio client syncs, polls and webhook registrations use.
	Client          *Client
	DefaultCountry  string
	MatterStatus    []MatterStatus
	MatterPolicy    MatterPolicy
	StaffPreference []StaffField
	// RateLimitReserve: a sync waits for the rate window to reset rather than
	// spend the last requests that calls' lookups need.
	RateLimitReserve int
	// Budget, when set, is the rate budget shared with write-back (serve sets
	// it): syncs and polls then ask it before each request, so they see every
	// Clio response and 429 of the process and keep its reserve, instead of
	// RateLimitReserve against the client's own view.
	Budget *Budget
	Logger *slog.Logger
	Now    func() time.Time
}

// indexPhone is one stored number of a contact: the E.164 match key (empty when
// the text is not a number), the extension kept apart, and the text as typed.
type indexPhone struct {
	Number string `json:"number,omitempty"`
	Ext    string `json:"ext,omitempty"`
	Raw    string `json:"raw"`
	Name   string `json:"name,omitempty"`
}

// indexContact is a contact as the index holds it, with the matter and staff
// member the lookup policy picks for it.
type indexContact struct {
	id     int64
	name   string
	phones []indexPhone
	matter *Matter
	staff  *User
}

// Index is the local phone index (DESIGN.md "Caller matching", CLIO-API.md §9):
// every contact's numbers normalized to E.164 with the matters whose status
// counts, kept in SQLite and in memory. Lookups read a precomputed result per
// number under a read lock, so a known caller costs no request to Clio.
// Sync builds it, Poll and the webhook receiver keep it fresh, and the lookup
// Service teaches it the callers Clio finds. Methods are safe for concurrent
// use; a nil *Index answers nothing.
type Index struct {
	o     IndexOptions
	rules matterRules
	st    *indexStore
	log   *slog.Logger
	now   func() time.Time

	// syncMu serializes Sync and Poll (one cursor, one state row).
	syncMu sync.Mutex

	mu       sync.RWMutex
	ready    bool  // a full pass has completed
	gen      int64 // generation written rows are marked with
	contacts map[int64]*indexContact
	matters  map[int64]*Matter
	byClient map[int64][]int64  // matter ids by client id, ascending
	byNumber map[string][]int64 // contact ids by E.164 number, ascending
	results  map[string]lookup.Result

	hits, misses, learned atomic.Uint64
}

// OpenIndex applies the index's migrations and loads it from the database.
func OpenIndex(ctx context.Context, o IndexOptions) (*Index, error) {
	if o.Storage == nil {
		return nil, errors.New("clio index: no storage")
	}
	if o.DefaultCountry == "" {
		o.DefaultCountry = "US"
	}
	if len(o.MatterStatus) == 0 {
		o.MatterStatus = []MatterStatus{MatterOpen}
	}
	if o.MatterPolicy == PolicyUnknown {
		o.MatterPolicy = PolicyRecent
	}
	if len(o.StaffPreference) == 0 {
		o.StaffPreference = []StaffField{StaffResponsibleStaff, StaffResponsibleAttorney}
	}
	o.MatterStatus = slices.Clone(o.MatterStatus)
	o.StaffPreference = slices.Clone(o.StaffPreference)
	st, err := openIndexStore(ctx, o.Storage)
	if err != nil {
		return nil, err
	}
	ix := &Index{o: o, st: st, log: o.Logger, now: o.Now,
		rules: matterRules{status: o.MatterStatus, policy: o.MatterPolicy, prefs: o.StaffPreference}}
	if ix.log == nil {
		ix.log = slog.New(slog.DiscardHandler)
	}
	if ix.now == nil {
		ix.now = time.Now
	}
	if err := ix.load(ctx); err != nil {
		return nil, err
	}
	return ix, nil
}

// load replaces the memory side with what the database holds.
func (ix *Index) load(ctx context.Context) error {
	cs, ms, err := ix.st.loadAll(ctx)
	if err != nil {
		return err
	}
	state, err := ix.st.loadSyncState(ctx)
	if err != nil {
		return err
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.contacts = make(map[int64]*indexContact, len(cs))
	ix.matters = make(map[int64]*Matter, len(ms))
	ix.byClient = map[int64][]int64{}
	ix.byNumber = make(map[string][]int64, len(cs))
	ix.results = make(map[string]lookup.Result, len(cs))
	for i := range ms {
		ix.putMatterLocked(&ms[i], false)
	}
	for _, c := range cs {
		ix.putContactLocked(c, false)
	}
	for _, c := range ix.contacts {
		ix.repickLocked(c)
	}
	for num := range ix.byNumber {
		ix.recomputeLocked(num)
	}
	ix.ready = state.CompleteGen > 0
	ix.gen = state.Gen
	return nil
}

// Lookup answers num (E.164) from the index: ok is false when the index is not
// built yet or does not know the number (then Clio is asked). The result's
// Source is lookup.SourceIndex.
func (ix *Index) Lookup(num string) (lookup.Result, bool) {
	if ix == nil {
		return lookup.Result{}, false
	}
	ix.mu.RLock()
	r, ok := ix.results[num]
	ok = ok && ix.ready
	ix.mu.RUnlock()
	if !ok {
		ix.misses.Add(1)
		return lookup.Result{}, false
	}
	ix.hits.Add(1)
	r = cloneResult(r)
	r.Source = lookup.SourceIndex
	return r, true
}

// Ready reports whether a full sync has completed (only then are lookups
// answered from the index).
func (ix *Index) Ready() bool {
	if ix == nil {
		return false
	}
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.ready
}

// IndexStats describe the index for `clio status`, metrics and `clio sync`.
type IndexStats struct {
	Ready    bool
	Contacts int
	Matters  int
	Numbers  int
	Hits     uint64
	Misses   uint64
	Learned  uint64
}

// Stats returns the index's size and counters.
func (ix *Index) Stats() IndexStats {
	if ix == nil {
		return IndexStats{}
	}
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return IndexStats{Ready: ix.ready, Contacts: len(ix.contacts), Matters: len(ix.matters), Numbers: len(ix.results),
		Hits: ix.hits.Load(), Misses: ix.misses.Load(), Learned: ix.learned.Load()}
}

// Learn stores contacts Clio found for a caller, with their matters (by
// contact id), so that the next call from the number is answered locally.
func (ix *Index) Learn(ctx context.Context, cs []Contact, matters map[int64][]Matter) {
	if ix == nil || len(cs) == 0 {
		return
	}
	var ms []Matter
	for _, c := range cs {
		for _, m := range matters[c.ID] {
			if m.Client == nil || m.Client.ID == 0 {
				m.Client = &Contact{ID: c.ID}
			}
			ms = append(ms, m)
		}
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := ix.apply(wctx, cs, ms, nil); err != nil {
		ix.log.Warn("clio index: learning a caller failed", "err", err)
		return
	}
	ix.learned.Add(uint64(len(cs)))
}

// apply stores contacts and matters (the whole record: phone numbers replace
// the stored ones; a matter whose status does not count is removed) and, in the
// same transaction, the sync state when it is not nil.
func (ix *Index) apply(ctx context.Context, cs []Contact, ms []Matter, state *IndexSyncState) error {
	ix.mu.RLock()
	gen := ix.gen
	ix.mu.RUnlock()
	if state != nil {
		gen = state.Gen
	}
	scs := make([]storedContact, len(cs))
	for i, c := range cs {
		scs[i] = ix.toStored(c)
	}
	var keep []Matter
	var drop []int64
	for _, m := range ms {
		if ix.rules.counts(m.Status) && m.Client != nil && m.Client.ID != 0 {
			keep = append(keep, m)
		} else {
			drop = append(drop, m.ID)
		}
	}
	if err := ix.st.write(ctx, scs, keep, nil, drop, gen, state); err != nil {
		return err
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	touched := map[string]bool{}
	repick := map[int64]bool{}
	for _, c := range scs {
		for _, n := range ix.putContactLocked(c, true) {
			touched[n] = true
		}
		repick[c.ID] = true
	}
	for i := range keep {
		for _, id := range ix.putMatterLocked(&keep[i], true) {
			repick[id] = true
		}
	}
	for _, id := range drop {
		for _, cid := range ix.delMatterLocked(id) {
			repick[cid] = true
		}
	}
	ix.refreshLocked(repick, touched)
	return nil
}

// remove deletes contacts and matters (deleted in Clio).
func (ix *Index) remove(ctx context.Context, contactIDs, matterIDs []int64) error {
	if len(contactIDs)+len(matterIDs) == 0 {
		return nil
	}
	if err := ix.st.write(ctx, nil, nil, contactIDs, matterIDs, 0, nil); err != nil {
		return err
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.removeLocked(contactIDs, matterIDs)
	return nil
}

func (ix *Index) removeLocked(contactIDs, matterIDs []int64) {
	touched := map[string]bool{}
	repick := map[int64]bool{}
	for _, id := range contactIDs {
		for _, n := range ix.delContactLocked(id) {
			touched[n] = true
		}
	}
	for _, id := range matterIDs {
		for _, cid := range ix.delMatterLocked(id) {
			repick[cid] = true
		}
	}
	ix.refreshLocked(repick, touched)
}

// refreshLocked repicks the matters of the contacts in repick and recomputes
// the results of their numbers and of the numbers in touched.
func (ix *Index) refreshLocked(repick map[int64]bool, touched map[string]bool) {
	for id := range repick {
		if c := ix.contacts[id]; c != nil {
			ix.repickLocked(c)
			for _, p := range c.phones {
				if p.Number != "" {
					touched[p.Number] = true
				}
			}
		}
	}
	for n := range touched {
		ix.recomputeLocked(n)
	}
}

func (ix *Index) toStored(c Contact) storedContact {
	sc := storedContact{ID: c.ID, Name: c.Name, Phones: make([]indexPhone, 0, len(c.PhoneNumbers))}
	for _, p := range c.PhoneNumbers {
		ip := indexPhone{Raw: p.Number, Name: p.Name, Ext: Extension(p.Number)}
		if n, prob := NormalizeStored(p.Number, ix.o.DefaultCountry); prob == NumberOK {
			ip.Number = n
		}
		sc.Phones = append(sc.Phones, ip)
	}
	return sc
}

// putContactLocked replaces a contact and returns the numbers whose result
// changes (its old and new numbers). With recompute false the caller repicks
// and recomputes everything afterwards (load).
func (ix *Index) putContactLocked(sc storedContact, recompute bool) []string {
	var touched []string
	if old := ix.contacts[sc.ID]; old != nil {
		touched = ix.unlinkLocked(old)
	}
	c := &indexContact{id: sc.ID, name: sc.Name, phones: sc.Phones}
	ix.contacts[sc.ID] = c
	for _, p := range c.phones {
		if p.Number == "" {
			continue
		}
		ids := ix.byNumber[p.Number]
		if i, found := slices.BinarySearch(ids, c.id); !found {
			ix.byNumber[p.Number] = slices.Insert(ids, i, c.id)
		}
		touched = append(touched, p.Number)
	}
	if recompute {
		ix.repickLocked(c)
	}
	return touched
}

// unlinkLocked removes c from the numbers map and returns its numbers.
func (ix *Index) unlinkLocked(c *indexContact) []string {
	var nums []string
	for _, p := range c.phones {
		if p.Number == "" {
			continue
		}
		ids := ix.byNumber[p.Number]
		if i, found := slices.BinarySearch(ids, c.id); found {
			ids = slices.Delete(ids, i, i+1)
		}
		if len(ids) == 0 {
			delete(ix.byNumber, p.Number)
		} else {
			ix.byNumber[p.Number] = ids
		}
		nums = append(nums, p.Number)
	}
	return nums
}

func (ix *Index) delContactLocked(id int64) []string {
	c := ix.contacts[id]
	if c == nil {
		return nil
	}
	delete(ix.contacts, id)
	return ix.unlinkLocked(c)
}

// putMatterLocked stores a matter and returns the client ids whose pick may change.
func (ix *Index) putMatterLocked(m *Matter, _ bool) []int64 {
	changed := ix.delMatterLocked(m.ID)
	cp := *m
	ix.matters[m.ID] = &cp
	cid := cp.Client.ID
	ids := ix.byClient[cid]
	if i, found := slices.BinarySearch(ids, m.ID); !found {
		ix.byClient[cid] = slices.Insert(ids, i, m.ID)
	}
	return append(changed, cid)
}

// delMatterLocked removes a matter and returns its client id, if it was known.
func (ix *Index) delMatterLocked(id int64) []int64 {
	m := ix.matters[id]
	if m == nil {
		return nil
	}
	delete(ix.matters, id)
	cid := m.Client.ID
	ids := ix.byClient[cid]
	if i, found := slices.BinarySearch(ids, id); found {
		ids = slices.Delete(ids, i, i+1)
	}
	if len(ids) == 0 {
		delete(ix.byClient, cid)
	} else {
		ix.byClient[cid] = ids
	}
	return []int64{cid}
}

// repickLocked applies the matter policy to c's matters, in id order as Clio
// returns them.
func (ix *Index) repickLocked(c *indexContact) {
	ids := ix.byClient[c.id]
	ms := make([]Matter, 0, len(ids))
	for _, id := range ids {
		ms = append(ms, *ix.matters[id])
	}
	c.matter, c.staff = ix.rules.pick(ms)
}

// recomputeLocked stores the lookup result of num from its contacts.
func (ix *Index) recomputeLocked(num string) {
	ids := ix.byNumber[num]
	if len(ids) == 0 {
		delete(ix.results, num)
		return
	}
	picks := make([]candidate, 0, len(ids))
	for _, id := range ids {
		c := ix.contacts[id]
		picks = append(picks, candidate{c: Contact{ID: c.id, Name: c.name}, m: c.matter, staff: c.staff})
	}
	ix.results[num] = decide(num, picks)
}

// Extension returns the extension written after a stored number ("ext 2",
// "ext. 12", "x2", "#2", ", 2"), or "". It is kept apart from the number and is
// never part of the match key.
func Extension(raw string) string {
	s := strings.ToLower(raw)
	start := strings.IndexAny(s, "+0123456789")
	if start < 0 {
		return ""
	}
	n := 0
	i := start
	for ; i < len(s); i++ {
		ch := s[i]
		if ch >= '0' && ch <= '9' {
			n++
			continue
		}
		if strings.IndexByte(" -./()+\t", ch) >= 0 && !(n >= 7 && (ch == '(' || ch == ')')) {
			continue
		}
		break
	}
	if n < 7 || i >= len(s) {
		return ""
	}
	rest := strings.TrimLeft(s[i:], " ")
	for _, p := range []string{"extension", "ext.", "ext", "x", "#", ",", ";"} {
		if strings.HasPrefix(rest, p) {
			rest = strings.TrimLeft(rest[len(p):], " .:")
			j := 0
			for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
				j++
			}
			return rest[:j]
		}
	}
	return ""
}

func (ix *Index) String() string {
	st := ix.Stats()
	return fmt.Sprintf("clio index: %d contacts, %d matters, %d numbers", st.Contacts, st.Matters, st.Numbers)
}
