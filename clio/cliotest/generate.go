package cliotest

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// GenOptions describe a generated fixture (Generate); zero values mean defaults.
type GenOptions struct {
	// Contacts is the number of contacts (default 5,000).
	Contacts int
	// Staff is the number of users matters are assigned to (default 12).
	Staff int
	// Families is the share of contacts (per cent, default 8) that live in a
	// family of 2-4 persons sharing one home number; each member has a matter
	// with a different responsible staff member, so the number is ambiguous.
	Families int
	// Last4Pool is how many distinct last-four digit groups the numbers use
	// (default 400): at 5,000 contacts most callers share their last four
	// digits with someone else, as in a real firm.
	Last4Pool int
	// Seed makes the fixture reproducible (default 1).
	Seed uint64
	// Token is the static access token (default "test-token").
	Token string
}

// Generated is a generated fixture and what tests need to know about it.
type Generated struct {
	*Fixture
	// FamilyNumbers are the home numbers shared by a family, as E.164.
	FamilyNumbers []string
	// Numbers maps each contact id to its first number as E.164.
	Numbers map[int64]string
}

// phoneFormats are the ways staff type a NANP number into Clio (CLIO-API.md
// "Contacts"); %s are area code, exchange and line.
var phoneFormats = []string{
	"(%s) %s-%s", "%s-%s-%s", "%s.%s.%s", "1 (%s) %s-%s", "+1%s%s%s", "+1 %s-%s-%s", "%s%s%s",
	"(%s) %s-%s ext 12", "%s-%s-%s x4", "Cell: (%s) %s-%s", "(%s) %s-%s (mobile)",
}

var (
	firstNames = []string{"Ada", "Marcus", "Elena", "Omar", "Priya", "Jonas", "Mei", "Tobias", "Grace", "Ruben",
		"Sofia", "Kwame", "Ingrid", "Mateo", "Hana", "Dmitri", "Leila", "Connor", "Yuki", "Beatriz"}
	lastNames = []string{"Quist", "Bell", "Voss", "Haddad", "Raman", "Lindqvist", "Chen", "Adler", "Okafor", "Moreno",
		"Novak", "Mensah", "Berg", "Alvarez", "Sato", "Ivanova", "Farouk", "Byrne", "Tanaka", "Costa"}
	areaCodes = []string{"217", "312", "773", "630", "847", "309", "618", "815", "224", "331"}
)

// Generate builds a large fixture: persons and some companies with realistic
// phone formats (extensions, labels, notes, international and national forms),
// numbers that share their last four digits, families on one home number, and
// open and closed matters spread over the staff.
func Generate(o GenOptions) *Generated {
	if o.Contacts <= 0 {
		o.Contacts = 5000
	}
	if o.Staff <= 0 {
		o.Staff = 12
	}
	if o.Families <= 0 {
		o.Families = 8
	}
	if o.Last4Pool <= 0 {
		o.Last4Pool = 400
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Token == "" {
		o.Token = "test-token"
	}
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	fx := &Fixture{Tokens: []string{o.Token}, WhoAmI: 500}
	for i := range o.Staff {
		id := int64(501 + i)
		fx.Users = append(fx.Users, User{ID: id, Name: fmt.Sprintf("Staff %02d", i+1),
			Email: fmt.Sprintf("staff%02d@firm.example", i+1), PhoneNumber: fmt.Sprintf("217-555-%04d", 100+i)})
	}
	g := &Generated{Fixture: fx, Numbers: map[int64]string{}}
	last4s := make([]string, o.Last4Pool)
	for i := range last4s {
		last4s[i] = fmt.Sprintf("%04d", rng.IntN(10000))
	}
	used := map[string]bool{}
	newNumber := func() (area, exch, line string) {
		for {
			area = areaCodes[rng.IntN(len(areaCodes))]
			exch = fmt.Sprintf("%d%02d", 2+rng.IntN(8), rng.IntN(100))
			line = last4s[rng.IntN(len(last4s))]
			if k := area + exch + line; !used[k] {
				used[k] = true
				return
			}
		}
	}
	base := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	var matterID int64 = 10001
	addMatter := func(client int64, status string, staff int64, age int) {
		m := Matter{ID: matterID, DisplayNumber: fmt.Sprintf("%05d-%d", matterID-10000, client), Status: status,
			ClientID: client, UpdatedAt: base.Add(time.Duration(age) * time.Hour)}
		if rng.IntN(3) == 0 {
			m.ResponsibleAttorneyID = staff // older firms fill only the attorney
		} else {
			m.ResponsibleStaffID = staff
		}
		fx.Matters = append(fx.Matters, m)
		matterID++
	}
	staffID := func() int64 { return int64(501 + rng.IntN(o.Staff)) }
	id := int64(100001)
	for len(fx.Contacts) < o.Contacts {
		famSize := 1
		if rng.IntN(100) < o.Families/2 {
			famSize = 2 + rng.IntN(3)
		}
		famSize = min(famSize, o.Contacts-len(fx.Contacts))
		area, exch, line := newNumber()
		home := fmt.Sprintf(phoneFormats[rng.IntN(7)], area, exch, line)
		last := lastNames[rng.IntN(len(lastNames))]
		var famStaff []int64
		for k := range famSize {
			c := Contact{ID: id, FirstName: firstNames[rng.IntN(len(firstNames))], LastName: last,
				UpdatedAt: base.Add(time.Duration(rng.IntN(5000)) * time.Minute)}
			if famSize == 1 && rng.IntN(10) == 0 {
				c = Contact{ID: id, Type: "Company", Name: last + " " + []string{"Holdings", "LLC", "Farms", "Inc."}[rng.IntN(4)],
					UpdatedAt: c.UpdatedAt}
			}
			if famSize > 1 {
				c.Phones = append(c.Phones, Phone{Number: home, Name: "Home", Primary: true})
				g.Numbers[id] = "+1" + area + exch + line
				if k == 0 {
					g.FamilyNumbers = append(g.FamilyNumbers, "+1"+area+exch+line)
				}
				if rng.IntN(2) == 0 {
					a, e, l := newNumber()
					c.Phones = append(c.Phones, Phone{Number: fmt.Sprintf(phoneFormats[rng.IntN(len(phoneFormats))], a, e, l), Name: "Mobile"})
				}
			} else {
				a, e, l := area, exch, line
				c.Phones = append(c.Phones, Phone{Number: fmt.Sprintf(phoneFormats[rng.IntN(len(phoneFormats))], a, e, l), Name: "Work", Primary: true})
				g.Numbers[id] = "+1" + a + e + l
				if rng.IntN(4) == 0 {
					a, e, l := newNumber()
					c.Phones = append(c.Phones, Phone{Number: fmt.Sprintf(phoneFormats[rng.IntN(len(phoneFormats))], a, e, l), Name: "Mobile"})
				}
			}
			// Most clients have an open matter; some a closed one too, or only closed ones.
			switch r := rng.IntN(10); {
			case famSize > 1:
				// A different staff member per family member: the home number stays ambiguous.
				s := staffID()
				for slicesContains(famStaff, s) && len(famStaff) < o.Staff {
					s = staffID()
				}
				famStaff = append(famStaff, s)
				addMatter(id, "Open", s, rng.IntN(2000))
			case r < 6:
				addMatter(id, "Open", staffID(), rng.IntN(2000))
			case r < 8:
				addMatter(id, "Open", staffID(), rng.IntN(2000))
				addMatter(id, []string{"Closed", "Pending", "Open"}[rng.IntN(3)], staffID(), rng.IntN(2000))
			case r < 9:
				addMatter(id, "Closed", staffID(), rng.IntN(2000))
			}
			fx.Contacts = append(fx.Contacts, c)
			id++
		}
	}
	return g
}

func slicesContains(s []int64, v int64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
