package writeback

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/matterline/matterline/clio"
)

// fileError is a message file that cannot be read: retrying does not help.
type fileError struct{ err error }

func (e *fileError) Error() string { return "message file: " + e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

// uploadURLLife is how long a signed put_url is trusted (Clio: about 10 min).
const uploadURLLife = 8 * time.Minute

// send writes one item to Clio and returns the id of what it wrote. Progress of
// a document is saved on it as steps complete.
func (w *Worker) send(ctx context.Context, it *Item) (int64, error) {
	if w.o.Client == nil {
		return 0, clio.ErrNotConnected
	}
	p := it.Payload
	matter := &clio.Ref{ID: p.MatterID}
	switch it.Kind {
	case KindCommunication:
		// A retry after a lost answer must not post twice: look first.
		found, _, err := w.o.Client.Communications.FindByExternalProperty(ctx, PropertyName, it.CallID)
		if err != nil {
			return 0, err
		}
		if len(found) > 0 {
			return found[0].ID, nil
		}
		cm := clio.Communication{Type: "PhoneCommunication", Subject: p.Subject, Body: p.Body,
			ReceivedAt: p.Time.Format(time.RFC3339), Date: clio.Date(p.Time), Matter: matter,
			ExternalProperties: []clio.ExternalProperty{{Name: PropertyName, Value: it.CallID}}}
		if p.ContactID != 0 {
			cm.Senders = []clio.Ref{{ID: p.ContactID, Type: "Contact"}}
		}
		if p.UserID != 0 {
			cm.Receivers = []clio.Ref{{ID: p.UserID, Type: "User"}}
		}
		out, _, err := w.o.Client.Communications.Create(ctx, cm)
		if err != nil {
			return 0, err
		}
		return out.ID, nil
	case KindTimeEntry:
		te := clio.TimeEntry{Date: p.Date, Quantity: p.Seconds, User: &clio.Ref{ID: p.UserID, Type: "User"},
			Matter: matter, Note: p.Body, NonBillable: p.NonBillable}
		if id, err := w.communicationID(ctx, it.CallID); err != nil {
			return 0, err
		} else if id != 0 {
			te.Communication = &clio.Ref{ID: id}
		}
		out, _, err := w.o.Client.Activities.CreateTimeEntry(ctx, te)
		if err != nil {
			return 0, err
		}
		return out.ID, nil
	case KindTask:
		out, _, err := w.o.Client.Tasks.Create(ctx, clio.Task{Name: p.Subject, Description: p.Body,
			Assignee: &clio.Ref{ID: p.UserID, Type: "User"}, DueAt: p.Date, Priority: p.Priority,
			Matter: matter, NotifyAssignee: true})
		if err != nil {
			return 0, err
		}
		return out.ID, nil
	case KindDocument:
		return w.sendDocument(ctx, it)
	}
	return 0, &fileError{fmt.Errorf("unknown item kind %q", it.Kind)}
}

// communicationID is the Clio id of the call's communication, 0 when it has
// none or it failed (the link is then left out).
func (w *Worker) communicationID(ctx context.Context, callID string) (int64, error) {
	st, id, err := w.o.Outbox.communicationOf(ctx, callID)
	if err != nil || st != StateDone {
		return 0, err
	}
	return id, nil
}

// sendDocument runs the three steps (create with the signed upload, PUT the
// bytes with exactly the put headers, PATCH fully_uploaded), saving progress so
// a retry resumes: after an upload only the PATCH is repeated; an upload URL
// older than uploadURLLife is not trusted and the document is created again.
func (w *Worker) sendDocument(ctx context.Context, it *Item) (int64, error) {
	p := it.Payload
	data, err := os.ReadFile(p.File)
	if err != nil {
		return 0, &fileError{err}
	}
	pr := &it.Progress
	fresh := pr.DocumentID != 0 && w.now().Sub(pr.CreatedAt) < uploadURLLife
	if pr.DocumentID == 0 || (!pr.Uploaded && !fresh) {
		d := clio.Document{Name: p.Name, Parent: &clio.Ref{ID: p.MatterID, Type: "Matter"}, ContentType: "audio/wav"}
		if d.CommunicationID, err = w.communicationID(ctx, it.CallID); err != nil {
			return 0, err
		}
		out, _, err := w.o.Client.Documents.Create(ctx, d)
		if err != nil {
			return 0, err
		}
		*pr = Progress{DocumentID: out.ID, UUID: out.LatestVersion.UUID, PutURL: out.LatestVersion.PutURL, CreatedAt: w.now()}
		for _, h := range out.LatestVersion.PutHeaders {
			pr.PutHeaders = append(pr.PutHeaders, map[string]string{"name": h.Name, "value": h.Value})
		}
		w.saveProgress(ctx, *it)
	}
	if !pr.Uploaded {
		v := clio.DocumentVersion{UUID: pr.UUID, PutURL: pr.PutURL}
		for _, h := range pr.PutHeaders {
			v.PutHeaders = append(v.PutHeaders, clio.ExternalProperty{Name: h["name"], Value: h["value"]})
		}
		if err := w.o.Client.Documents.Upload(ctx, v, data); err != nil {
			pr.CreatedAt = time.Time{} // a failed upload starts over with a new URL
			w.saveProgress(ctx, *it)
			// The signed URL's answer says nothing about the app's permissions:
			// keep it a plain error, retried like a network failure.
			return 0, fmt.Errorf("document upload: %v", err)
		}
		pr.Uploaded = true
		w.saveProgress(ctx, *it)
	}
	if _, err := w.o.Client.Documents.MarkUploaded(ctx, pr.DocumentID, pr.UUID); err != nil {
		return 0, err
	}
	return pr.DocumentID, nil
}

func (w *Worker) saveProgress(ctx context.Context, it Item) {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := w.o.Outbox.update(uctx, it); err != nil {
		w.log.Warn("clio write-back: progress not saved", "item", it.ID, "err", err)
	}
}
