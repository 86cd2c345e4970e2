package records

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Message is a recorded voice message: who called, whom they wanted, and where the
// audio is. Clio contact and matter appear by id only.
type Message struct {
	ID   int64     `json:"id"`
	Time time.Time `json:"time"`
	// CallID is matterline's id of the call (CallRecord.ID), empty when unknown.
	CallID    string `json:"call_id,omitempty"`
	Caller    string `json:"caller"`
	ContactID int64  `json:"contact_id,omitempty"`
	MatterID  int64  `json:"matter_id,omitempty"`
	// Rule is the rule the caller was being transferred by when nobody answered.
	Rule     string        `json:"rule,omitempty"`
	Duration time.Duration `json:"-"`
	// File is the WAV file's path relative to the messages folder.
	File string `json:"file"`
	// Size is the file size in bytes when the message was stored.
	Size int64 `json:"size"`
}

// MarshalJSON writes Duration as duration_seconds.
func (m Message) MarshalJSON() ([]byte, error) {
	type plain Message
	return json.Marshal(struct {
		plain
		DurationSeconds float64 `json:"duration_seconds"`
	}{plain(m), roundSeconds(m.Duration)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (m *Message) UnmarshalJSON(b []byte) error {
	type plain Message
	var v struct {
		plain
		DurationSeconds float64 `json:"duration_seconds"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*m = Message(v.plain)
	m.Duration = time.Duration(v.DurationSeconds * float64(time.Second))
	return nil
}

// MessageFilter selects messages. Zero fields do not filter.
type MessageFilter struct {
	// Since and Until bound the recording time: Since <= time < Until.
	Since, Until time.Time
	// Limit caps the number of messages (newest first); zero or less means no cap.
	Limit int
}

// MessageStore keeps message rows and owns the files in the messages folder. It is
// safe for concurrent use.
type MessageStore struct {
	db  *sql.DB
	dir string // absolute
}

// NewMessageStore migrates the records tables in db and returns a store whose
// recordings live in dir (config transfer.messages_dir; a relative dir is taken
// from the working directory). The folder is created 0700 when missing. The caller
// keeps ownership of db.
func NewMessageStore(ctx context.Context, db *sql.DB, dir string) (*MessageStore, error) {
	if strings.TrimSpace(dir) == "" {
		return nil, fmt.Errorf("%w: empty messages folder", ErrInvalid)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("records: messages folder %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("records: create messages folder: %w", err)
	}
	if err := Migrate(ctx, db); err != nil {
		return nil, err
	}
	return &MessageStore{db: db, dir: abs}, nil
}

// Dir is the absolute messages folder.
func (s *MessageStore) Dir() string { return s.dir }

// NewRecording starts a WAV recording for call callID at t in the messages folder
// (MessagePath names it). Store it with Add after Close.
func (s *MessageStore) NewRecording(t time.Time, callID string) (*WAVWriter, error) {
	return NewWAVWriter(MessagePath(s.dir, t, callID))
}

// MessagePath returns a new file path in dir for a recording of call callID made at
// t: "20261124T160005.123Z-<call id>-<random>.wav". The call id is reduced to at
// most 32 letters, digits, '-' and '_' (a SIP Call-ID is caller-supplied text); the
// random part keeps names unique even for equal times and ids.
func MessagePath(dir string, t time.Time, callID string) string {
	var b strings.Builder
	b.WriteString(t.UTC().Format("20060102T150405.000Z"))
	if id := sanitizeID(callID); id != "" {
		b.WriteByte('-')
		b.WriteString(id)
	}
	var r [4]byte
	_, _ = rand.Read(r[:]) // never fails (crypto/rand)
	b.WriteByte('-')
	b.WriteString(hex.EncodeToString(r[:]))
	b.WriteString(".wav")
	return filepath.Join(dir, b.String())
}

func sanitizeID(s string) string {
	const maxLen = 32
	var b strings.Builder
	for _, c := range s {
		if b.Len() >= maxLen {
			break
		}
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	return strings.Trim(b.String(), "_-")
}

// Path returns the absolute path of m's file. A File that would leave the messages
// folder (absolute, "..") is refused.
func (s *MessageStore) Path(m Message) (string, error) {
	if !filepath.IsLocal(m.File) {
		return "", fmt.Errorf("%w: message %d: file %q is outside the messages folder", ErrInvalid, m.ID, m.File)
	}
	return filepath.Join(s.dir, m.File), nil
}

// relFile turns a path in the messages folder (absolute, relative to the working
// directory, or already relative to the folder) into a name relative to the folder.
func (s *MessageStore) relFile(file string) (string, error) {
	if file == "" {
		return "", fmt.Errorf("%w: message without a file", ErrInvalid)
	}
	if !filepath.IsAbs(file) && filepath.IsLocal(file) {
		if _, err := os.Stat(filepath.Join(s.dir, file)); err == nil {
			return filepath.ToSlash(filepath.Clean(file)), nil
		}
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", fmt.Errorf("records: message file %s: %w", file, err)
	}
	rel, err := filepath.Rel(s.dir, abs)
	if err != nil || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%w: message file %s is not in the messages folder %s", ErrInvalid, file, s.dir)
	}
	return filepath.ToSlash(rel), nil
}

// Add stores m and returns it with its new ID, File made relative to the messages
// folder and Size read from the file. The file must exist in the messages folder
// (write it with NewRecording or NewWAVWriter and Close it first). A zero Time
// means now.
func (s *MessageStore) Add(ctx context.Context, m Message) (Message, error) {
	rel, err := s.relFile(m.File)
	if err != nil {
		return Message{}, err
	}
	m.File = rel
	p, err := s.Path(m)
	if err != nil {
		return Message{}, err
	}
	st, err := os.Stat(p)
	if err != nil {
		return Message{}, fmt.Errorf("records: message file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return Message{}, fmt.Errorf("%w: message file %s is not a regular file", ErrInvalid, p)
	}
	m.Size = st.Size()
	if m.Duration < 0 {
		return Message{}, fmt.Errorf("%w: negative message duration", ErrInvalid)
	}
	if m.ContactID < 0 || m.MatterID < 0 {
		return Message{}, fmt.Errorf("%w: negative clio id", ErrInvalid)
	}
	if m.Time.IsZero() {
		m.Time = time.Now()
	}
	m.Time = m.Time.UTC().Truncate(time.Millisecond)
	res, err := s.db.ExecContext(ctx, `INSERT INTO messages
		(recorded_at, call_id, caller, contact_id, matter_id, rule, duration_ms, file, size)
		VALUES (?,?,?,?,?,?,?,?,?)`,
		formatTime(m.Time), m.CallID, m.Caller, nullID(m.ContactID), nullID(m.MatterID), m.Rule,
		m.Duration.Milliseconds(), m.File, m.Size)
	if err != nil {
		return Message{}, fmt.Errorf("records: add message: %w", err)
	}
	if m.ID, err = res.LastInsertId(); err != nil {
		return Message{}, fmt.Errorf("records: add message: %w", err)
	}
	return m, nil
}

const messageColumns = `id, recorded_at, call_id, caller, contact_id, matter_id, rule, duration_ms, file, size`

// Get returns message id; no such message is ErrNotFound.
func (s *MessageStore) Get(ctx context.Context, id int64) (Message, error) {
	m, err := scanMessage(s.db.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Message{}, fmt.Errorf("records: message %d %w", id, ErrNotFound)
	}
	if err != nil {
		return Message{}, fmt.Errorf("records: read message %d: %w", id, err)
	}
	return m, nil
}

// List returns the messages that match f, newest first.
func (s *MessageStore) List(ctx context.Context, f MessageFilter) ([]Message, error) {
	var (
		where []string
		args  []any
	)
	if !f.Since.IsZero() {
		where = append(where, "recorded_at >= ?")
		args = append(args, formatTime(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "recorded_at < ?")
		args = append(args, formatTime(f.Until))
	}
	q := `SELECT ` + messageColumns + ` FROM messages`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY recorded_at DESC, id DESC"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("records: list messages: %w", err)
	}
	defer rows.Close()
	out := []Message{}
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("records: list messages: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("records: list messages: %w", err)
	}
	return out, nil
}

// Delete removes message id: its file first (a file already gone is fine), then its
// row. A file that cannot be removed keeps the row, so the admin can retry. Files
// are removed through an os.Root on the messages folder, so a row edited to point
// elsewhere (or a symlink) cannot delete anything outside it.
func (s *MessageStore) Delete(ctx context.Context, id int64) error {
	m, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	if err := s.removeFile(m); err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM messages WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("records: delete message %d: %w", id, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("records: message %d %w", id, ErrNotFound)
	}
	return nil
}

func (s *MessageStore) removeFile(m Message) error {
	if !filepath.IsLocal(m.File) {
		return fmt.Errorf("%w: message %d: file %q is outside the messages folder", ErrInvalid, m.ID, m.File)
	}
	root, err := os.OpenRoot(s.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil // no folder, no file
	}
	if err != nil {
		return fmt.Errorf("records: open messages folder: %w", err)
	}
	defer root.Close()
	if err := root.Remove(m.File); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("records: remove message %d file: %w", m.ID, err)
	}
	return nil
}

func scanMessage(sc scanner) (Message, error) {
	var (
		m                   Message
		at                  string
		contactID, matterID sql.NullInt64
		durMS               int64
	)
	if err := sc.Scan(&m.ID, &at, &m.CallID, &m.Caller, &contactID, &matterID, &m.Rule, &durMS, &m.File, &m.Size); err != nil {
		return Message{}, err
	}
	t, err := parseTime(at)
	if err != nil {
		return Message{}, err
	}
	m.Time = t
	m.ContactID, m.MatterID = contactID.Int64, matterID.Int64
	m.Duration = time.Duration(durMS) * time.Millisecond
	return m, nil
}
