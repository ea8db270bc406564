// Package render turns the coordinator's messages into the Go client's output,
// the same as the Node client's: a record as one JSON line of dom0's log
// (RecordLine) and the coordinator's state as text (StatusLines) or JSON
// (StatusJSON).
package render
