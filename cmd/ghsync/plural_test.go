package main

import "testing"

func TestCount(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{count(0, "event", "events"), "0 events"},
		{count(1, "event", "events"), "1 event"},
		{count(uint64(2), "index", "indexes"), "2 indexes"},
		{count(1, "record is", "records are"), "1 record is"},
		{pick(3, "was", "were"), "were"},
		{pick(uint16(1), "was", "were"), "was"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
