package cliotest

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/matterline/matterline/configs"
)

// Fixture is the data a Fake serves. It reads from JSON (see configs/demo/clio.json).
type Fixture struct {
	// Clients are the OAuth apps the fake accepts (client_id, client_secret).
	Clients []OAuthClient `json:"clients"`
	// Tokens are access tokens accepted without the OAuth flow (static tokens).
	Tokens []string `json:"tokens"`
	// WhoAmI is the user id the tokens belong to.
	WhoAmI   int64     `json:"who_am_i"`
	Users    []User    `json:"users"`
	Contacts []Contact `json:"contacts"`
	Matters  []Matter  `json:"matters"`
}

// OAuthClient is a registered Clio app.
type OAuthClient struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}

// User is a Clio user.
type User struct {
	ID               int64  `json:"id"`
	Name             string `json:"name"`
	FirstName        string `json:"first_name"`
	LastName         string `json:"last_name"`
	Email            string `json:"email"`
	PhoneNumber      string `json:"phone_number"`
	Enabled          *bool  `json:"enabled"`
	SubscriptionType string `json:"subscription_type"` // Attorney | NonAttorney
}

// Phone is a contact's phone number as typed.
type Phone struct {
	Number  string `json:"number"`
	Name    string `json:"name"`
	Primary bool   `json:"primary"`
}

// Email is a contact's email address.
type Email struct {
	Address string `json:"address"`
	Name    string `json:"name"`
	Primary bool   `json:"primary"`
}

// Address is a contact's postal address.
type Address struct {
	Street     string `json:"street"`
	City       string `json:"city"`
	Province   string `json:"province"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
	Name       string `json:"name"`
}

// Contact is a person or company.
type Contact struct {
	ID        int64     `json:"id"`
	Type      string    `json:"type"` // Person | Company
	Name      string    `json:"name"` // derived from first/last for persons when empty
	FirstName string    `json:"first_name"`
	LastName  string    `json:"last_name"`
	Title     string    `json:"title"`
	CompanyID int64     `json:"company_id"`
	Phones    []Phone   `json:"phone_numbers"`
	Emails    []Email   `json:"email_addresses"`
	Addresses []Address `json:"addresses"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Matter is a matter; user ids of 0 are null in responses.
type Matter struct {
	ID                    int64     `json:"id"`
	DisplayNumber         string    `json:"display_number"`
	Description           string    `json:"description"`
	Status                string    `json:"status"` // Open | Pending | Closed
	UpdatedAt             time.Time `json:"updated_at"`
	ClientID              int64     `json:"client_id"`
	ResponsibleStaffID    int64     `json:"responsible_staff_id"`
	ResponsibleAttorneyID int64     `json:"responsible_attorney_id"`
	OriginatingAttorneyID int64     `json:"originating_attorney_id"`
}

// DemoFixture is the demo data of `matterline demo` (configs/demo), which the
// sandbox Clio and the tests serve.
func DemoFixture() (*Fixture, error) {
	f, err := configs.Demo.Open(configs.DemoClioFixture)
	if err != nil {
		return nil, fmt.Errorf("demo clio fixture: %w", err)
	}
	defer f.Close()
	return ParseFixture(f)
}

// ParseFixture decodes a JSON fixture, rejecting unknown keys.
func ParseFixture(r io.Reader) (*Fixture, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var f Fixture
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("cliotest: fixture: %w", err)
	}
	return &f, nil
}

// LoadFixture reads a JSON fixture file.
func LoadFixture(path string) (*Fixture, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cliotest: %w", err)
	}
	defer f.Close()
	return ParseFixture(f)
}

func (c *Contact) displayName() string {
	if c.Name != "" {
		return c.Name
	}
	if c.FirstName != "" && c.LastName != "" {
		return c.FirstName + " " + c.LastName
	}
	return c.FirstName + c.LastName
}
