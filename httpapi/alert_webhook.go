package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Webhook delivery: one goroutine POSTs transitions in order, retrying the
// oldest with exponential backoff until the receiver takes it. The server
// only appends to a bounded queue; when a dead receiver lets it fill, the
// oldest transition is dropped and counted.
const (
	webhookQueueMax   = 256 // transitions waiting at most: minutes of a bad on-sale
	webhookTimeout    = 5 * time.Second
	webhookBackoffMin = 250 * time.Millisecond
	webhookBackoffMax = 30 * time.Second
	webhookBodyMax    = 4 << 10 // bytes of a receiver's answer read, to reuse the connection
)

// webhookPayload is what a receiver gets. Text makes a Slack incoming
// webhook show it as a message.
type webhookPayload struct {
	Alert
	Dashboard string `json:"dashboard,omitempty"`
	Text      string `json:"text"`
}

type webhook struct {
	url     string
	client  *http.Client
	log     *slog.Logger
	m       *Metrics
	backMin time.Duration // webhookBackoffMin; tests shorten it
	backMax time.Duration

	mu    sync.Mutex
	queue [][]byte      // guarded by mu; encoded payloads, oldest first, at most webhookQueueMax
	wake  chan struct{} // capacity 1: something was queued
}

func newWebhook(url string, m *Metrics, log *slog.Logger) *webhook {
	return &webhook{
		url: url, log: log, m: m,
		client:  &http.Client{Timeout: webhookTimeout},
		backMin: webhookBackoffMin, backMax: webhookBackoffMax,
		wake: make(chan struct{}, 1),
	}
}

// send queues a transition; it never blocks.
func (w *webhook) send(a Alert, dashboard string) {
	p := webhookPayload{Alert: a, Dashboard: dashboard, Text: alertText(a, dashboard)}
	b, err := json.Marshal(p)
	if err != nil {
		panic(fmt.Sprintf("alert payload: %v", err)) // strings and numbers only
	}
	w.mu.Lock()
	if len(w.queue) >= webhookQueueMax {
		w.queue[0] = nil
		w.queue = w.queue[1:]
		w.m.webhookDropped.Inc()
	}
	w.queue = append(w.queue, b)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func alertText(a Alert, dashboard string) string {
	icon := ":rotating_light:"
	if a.State == alertStateResolved {
		icon = ":white_check_mark:"
	}
	t := fmt.Sprintf("%s onsale alert %s %s: %g %s (threshold %g)", icon, a.Rule, a.State, a.Value, a.Unit, a.Threshold)
	if a.Sale != "" {
		t += " sale " + a.Sale
	}
	t += " since " + a.StartedAt
	if dashboard != "" {
		t += " " + dashboard
	}
	return t
}

func (w *webhook) head() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		return nil
	}
	return w.queue[0]
}

// pop removes b if it is still the head (send may have dropped it).
func (w *webhook) pop(b []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) > 0 && &w.queue[0][0] == &b[0] {
		w.queue[0] = nil
		w.queue = w.queue[1:]
	}
}

func (w *webhook) run(closing <-chan struct{}) {
	back := w.backMin
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for {
		b := w.head()
		if b == nil {
			select {
			case <-closing:
				return
			case <-w.wake:
				continue
			}
		}
		err := w.post(b)
		if err == nil {
			w.pop(b)
			back = w.backMin
			continue
		}
		w.m.webhookFailures.Inc()
		w.log.Warn("alert webhook failed; retrying", "err", err, "in", back)
		t.Reset(back)
		select {
		case <-closing:
			return
		case <-t.C:
		}
		back = min(back*2, w.backMax)
	}
}

func (w *webhook) post(b []byte) error {
	resp, err := w.client.Post(w.url, "application/json", bytes.NewReader(b))
	if err != nil {
		// Not the url.Error itself: it quotes the URL, and a Slack
		// webhook's URL is its secret.
		var ue *url.Error
		if errors.As(err, &ue) {
			return fmt.Errorf("POST to the alert webhook: %w", ue.Err)
		}
		return err
	}
	_, cerr := io.Copy(io.Discard, io.LimitReader(resp.Body, webhookBodyMax))
	if err := resp.Body.Close(); err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return cerr
}
