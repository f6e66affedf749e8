# Change freeze: no mutating operation on a target during its freeze
# windows, except a halt (stopping everything must stay possible).
package alphaswarm

# Target -> windows [start, end) in RFC 3339. Edit to taste.
freeze_windows := {"prod": [{
	"start": "2026-12-23T00:00:00Z",
	"end": "2027-01-04T00:00:00Z",
	"reason": "year-end freeze",
}]}

# The windows with their bounds in Unix nanoseconds. It reads no input, so
# the evaluator computes it once per bundle, not on every request.
frozen_ns := {target: [{"start": time.parse_rfc3339_ns(w.start), "end": time.parse_rfc3339_ns(w.end), "window": w} |
	some w in windows
] | some target, windows in freeze_windows}

deny contains msg if {
	input.action != "halt"
	some w in frozen_ns[input.target]
	now := time.parse_rfc3339_ns(input.time)
	now >= w.start
	now < w.end
	msg := sprintf("target %s is frozen until %s (%s)", [input.target, w.window.end, w.window.reason])
}
