package workload

// DiffAction says what a deploy of a spec would do to a service.
type DiffAction string

// The diff actions.
const (
	// DiffNone: the backend already runs what the spec asks for.
	DiffNone DiffAction = "none"
	// DiffCreate: the service does not exist; deploy would create it.
	DiffCreate DiffAction = "create"
	// DiffUpdate: changed in place, running instances kept (a replica
	// count, a label the backend updates live).
	DiffUpdate DiffAction = "update"
	// DiffReplace: running instances are replaced or a new revision rolls
	// (a new image, env, command; a new task definition or Cloud Run
	// revision).
	DiffReplace DiffAction = "replace"
	// DiffRecreate: the backend object is deleted and created again
	// because the backend cannot update what changed in place (ACI); the
	// Reason says which property forces it.
	DiffRecreate DiffAction = "recreate"
)

// Diff is what `deploy` of a spec would change on the backend, in the
// backend's own terms, computed without changing anything.
//
// A Diff never carries a secret value: secret references appear as the
// references the spec holds, and config values (which may be sensitive)
// only as "(set)", "(changed)" or "(removed)", never the value itself, nor
// a hash of it (a hash of a short value can be guessed).
type Diff struct {
	Target   string     `json:"target"`
	Service  string     `json:"service"`
	Provider string     `json:"provider"`
	Action   DiffAction `json:"action"`
	// Reason says why Action is what it is where the backend decides it
	// ("ACI cannot update ports in place; the group is recreated").
	Reason  string   `json:"reason,omitempty"`
	Changes []Change `json:"changes"`
	// Native is the backend's own rendering of the change where it has
	// one (kubernetes: the server-side-apply dry run's objects diffed
	// against the live ones, unified format), redacted like Changes.
	Native string `json:"native,omitempty"`
	// Revision is the recorded revision whose spec was previewed, for the
	// diff of a revision (what a rollback to it would deploy; revision 0,
	// "the one before the current one", resolved); 0 for the diff of a
	// spec.
	Revision int `json:"revision,omitempty"`
	// Admission is whether the operation previewed (a deploy of the spec,
	// or a rollback to the revision) would be let through to the backend
	// now: the checks it runs before any lock, run as a dry run. Set by the
	// runtime, never by a provider.
	Admission *Admission `json:"admission,omitempty"`
}

// AdmissionVerdict says what the checks an operation runs before its lock
// would answer it.
type AdmissionVerdict string

// The admission verdicts.
const (
	// AdmissionAllowed: the operation would reach the backend.
	AdmissionAllowed AdmissionVerdict = "allowed"
	// AdmissionRefused: the operation would be refused, with the Code,
	// Message and Fields of the error it would get.
	AdmissionRefused AdmissionVerdict = "refused"
	// AdmissionUnchecked: the checks were not run, because the caller's
	// role may not perform the operation (its refusal would be the role's,
	// and the policies' verdict is not its to learn); Message says so.
	AdmissionUnchecked AdmissionVerdict = "unchecked"
)

// Admission is the verdict of the checks an operation runs before any lock
// (the halt switch, the target's static policy, the admin's Rego policies
// and, for a rollback, whether the revision's references still resolve)
// on the operation a Diff previews, run as a dry run of the same code:
// nothing is recorded and no lock is taken.
type Admission struct {
	// Action is the operation judged: start for the diff of a spec,
	// rollback for the diff of a revision.
	Action  Action           `json:"action"`
	Verdict AdmissionVerdict `json:"verdict"`
	// Code, Message and Fields are those of the error the operation would
	// get (Verdict refused); Message alone says why nothing was checked
	// (Verdict unchecked).
	Code    Code         `json:"code,omitempty"`
	Message string       `json:"message,omitempty"`
	Fields  []FieldError `json:"fields,omitempty"`
}

// Refused reports whether the operation the diff previews would be refused.
func (d Diff) Refused() bool { return d.Admission != nil && d.Admission.Verdict == AdmissionRefused }

// Change is one field that differs, named by the backend's own path
// ("spec.template.spec.containers[0].image",
// "containerDefinitions[0].environment.LOG_LEVEL", "template.containers[0].image").
// From is empty when the field is added, To when it is removed.
type Change struct {
	Path string `json:"path"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Replaces is set when this change alone replaces running instances
	// (or rolls a new revision, or recreates the group).
	Replaces bool `json:"replaces,omitempty"`
}

// Changed reports whether deploying would change anything.
func (d Diff) Changed() bool { return d.Action != DiffNone && d.Action != "" }
