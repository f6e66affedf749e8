package ledger

// Kinds lists every record kind, for validating filters.
var Kinds = []Kind{KindIntent, KindResult, KindRejected}

// Outcomes lists every outcome, for validating filters.
var Outcomes = []Outcome{OutcomeOK, OutcomeError, OutcomeInterrupted, OutcomeInvalid, OutcomeDenied, OutcomeHalted}
