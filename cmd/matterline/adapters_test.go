package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matterline/matterline/httpapi"
	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/routing"
	"github.com/matterline/matterline/store"
)

// POST and PUT /v1/rules (through rulesAPI) refuse destinations outside
// routing.allowed_destinations and message audio outside the audio directory
// with a validation error naming the field.
func TestRulesAPIRefusesDestinationsAndAudio(t *testing.T) {
	dir := t.TempDir()
	audio := filepath.Join(dir, "audio")
	if err := os.Mkdir(audio, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(audio, "felix.wav"), media.EncodeWAV(make([]int16, 800)), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(dir, "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	st, err := routing.NewStore(ctx, db, routing.Firm{TimeZone: "UTC", AllowedDestinations: []string{"+1217555*", "1??"}, AudioDir: audio})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	api := rulesAPI{store: st}
	if _, err := api.Create(ctx, json.RawMessage(`{"name":"felix","to":"+12175550101","message_audio":"felix.wav"}`)); err != nil {
		t.Fatalf("allowed rule: %v", err)
	}
	for _, tt := range []struct{ body, field, want string }{
		{`{"name":"x","to":"+19005550123"}`, "to", `matches none of routing.allowed_destinations ["+1217555*" "1??"]`},
		{`{"name":"x","to":"+442071234567"}`, "to", `routing.allowed_destinations`},
		{`{"name":"x","to":"101","message_audio":"/etc/passwd"}`, "message_audio", `"/etc/passwd" is outside the audio directory`},
		{`{"name":"x","to":"101","message_audio":"../m.db"}`, "message_audio", `"../m.db" is outside the audio directory`},
	} {
		_, err := api.Create(ctx, json.RawMessage(tt.body))
		var ve *httpapi.ValidationError
		if !errors.As(err, &ve) || ve.Field != tt.field || !strings.Contains(ve.Message, tt.want) {
			t.Errorf("Create(%s) = %v, want %s: %q", tt.body, err, tt.field, tt.want)
		}
	}
	_, err = api.Put(ctx, "felix", json.RawMessage(`{"to":"+19005550123"}`))
	var ve *httpapi.ValidationError
	if !errors.As(err, &ve) || ve.Field != "to" {
		t.Errorf("Put premium = %v", err)
	}
}
