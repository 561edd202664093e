package main

import "fmt"

// count writes n with its noun, singular for 1 and plural otherwise
// ("1 event", "0 events", "2 events"): output is read by people, and a
// count of one is common (one change waiting, one record fetched).
func count[N ~int | ~int64 | ~uint64 | ~uint32 | ~uint16](n N, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// pick is one or many as count would choose, for the words around a
// count ("1 record is", "2 records are").
func pick[N ~int | ~int64 | ~uint64 | ~uint32 | ~uint16](n N, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
