# Change freeze: no mutating operation on a target during its freeze
# windows, except a halt (stopping everything must stay possible).
package alphaswarm

# Target -> windows [start, end) in RFC 3339. Edit to taste.
freeze_windows := {"prod": [{
	"start": "2026-12-23T00:00:00Z",
	"end": "2027-01-04T00:00:00Z",
	"reason": "year-end freeze",
}]}

deny contains msg if {
	input.action != "halt"
	some w in freeze_windows[input.target]
	now := time.parse_rfc3339_ns(input.time)
	now >= time.parse_rfc3339_ns(w.start)
	now < time.parse_rfc3339_ns(w.end)
	msg := sprintf("target %s is frozen until %s (%s)", [input.target, w.end, w.reason])
}
