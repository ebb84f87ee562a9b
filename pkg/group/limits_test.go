package group

import (
	"errors"
	"testing"
)

func TestStreamLimit(t *testing.T) {
	m := newTestManager(1, nil)
	m.cfg.MaxStreams = 2
	a, err := m.Publish(info("P1", "a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Publish(info("P2", "b")); err != nil {
		t.Fatal(err)
	}
	// A subscriber-only group is not a stream.
	waiting := m.Subscribe(info("S1", "d"), 0)
	defer waiting.Close()
	_, err = m.Publish(info("P3", "c"))
	var le *LimitError
	if !errors.Is(err, ErrStreamLimit) || !errors.As(err, &le) || le.Max != 2 {
		t.Fatalf("third stream: %v, want ErrStreamLimit (2)", err)
	}
	if m.Group("c") != nil {
		t.Error("the refused publish left a group behind")
	}
	a.Close()
	p, err := m.Publish(info("P4", "c"))
	if err != nil {
		t.Fatalf("after a stream ended: %v", err)
	}
	p.Close()
}

func TestSubscriberLimit(t *testing.T) {
	m := newTestManager(1, nil)
	m.cfg.MaxSubscribersPerStream = 2
	s1, err := m.TrySubscribe(info("S1", "a"), 0)
	if err != nil {
		t.Fatal(err)
	}
	internal := info("PUSH", "a")
	internal.Internal = true
	push := m.Subscribe(internal, 0) // not counted
	defer push.Close()
	s2, err := m.TrySubscribe(info("S2", "a"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := m.TrySubscribe(info("S3", "a"), 0); !errors.Is(err, ErrSubscriberLimit) {
		t.Fatalf("third subscriber: %v, want ErrSubscriberLimit", err)
	}
	// Another stream has its own count.
	other, err := m.TrySubscribe(info("S4", "b"), 0)
	if err != nil {
		t.Fatal(err)
	}
	other.Close()
	s1.Close()
	s3, err := m.TrySubscribe(info("S5", "a"), 0)
	if err != nil {
		t.Fatalf("after a subscriber left: %v", err)
	}
	s3.Close()
}
