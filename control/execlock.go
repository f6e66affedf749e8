package control

// Exec and the service lock.
//
// An exec is audited like every mutating action (an intent before the
// provider call, a result after it), but an interactive session can last
// up to its one-hour timeout, and a forgotten shell must not block a scale
// or an emergency stop of its service. So Do holds the service lock for an
// exec only until the intent is written, then releases it:
//
//   - the idempotency key's lock (idempotency.go) stays held for the whole
//     run, so a retry with the same key still waits for the session and
//     replays its answer instead of running the command again;
//   - a lock on the run itself (runLockKey) is taken before the intent is
//     written and held until the result is. Recovery takes that key rather
//     than the service's for an exec intent, so a controller that starts
//     while another one's session is live leaves the run open instead of
//     closing it as interrupted; a run whose controller died has no holder
//     and is closed as before.

// runLockKey is the lock key of one exec run.
func runLockKey(runID string) string { return "run\x00" + runID }
