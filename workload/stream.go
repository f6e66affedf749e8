package workload

import "time"

// MetricSample is one aggregated observation of a service's resource use.
// Per-instance values are summed (CPU, memory, network) across the
// instances that reported in the sample's window.
type MetricSample struct {
	Service   string    `json:"service"`
	Time      time.Time `json:"time"`
	Instances int       `json:"instances"`
	// CPUPercent is the sum over instances, 100 = one core.
	CPUPercent       float64 `json:"cpuPercent"`
	MemoryBytes      uint64  `json:"memoryBytes"`
	MemoryLimitBytes uint64  `json:"memoryLimitBytes,omitempty"`
	NetRxBytes       uint64  `json:"netRxBytes"`
	NetTxBytes       uint64  `json:"netTxBytes"`
	// Resolution is the backend's sampling period for this stream.
	Resolution Duration `json:"resolution,omitzero"`
	// Extra carries backend-specific series (request count, task count).
	Extra map[string]float64 `json:"extra,omitempty"`
	// Dropped is how many samples this subscriber lost before this one
	// because it read too slowly.
	Dropped int `json:"dropped,omitempty"`
}

// LogLine is one line of a workload's output.
type LogLine struct {
	Time     time.Time `json:"time"`
	Instance string    `json:"instance"`
	Stream   string    `json:"stream"` // stdout or stderr
	Text     string    `json:"text"`
}
